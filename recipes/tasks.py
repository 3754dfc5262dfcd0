"""Recipes' Celery tasks: thin wrappers over services, safe to run twice, acknowledged late."""

from celery import shared_task

from recipes.services import rollouts


@shared_task(name="recipes.advance_rollouts", acks_late=True)
def advance_rollouts() -> dict:
    """Settle the offers of running rollouts and decide their stages (advance, halt, complete)."""
    return rollouts.advance_rollouts()
