"""Recipes' Celery tasks: thin wrappers over services, safe to run twice, acknowledged late."""

from celery import shared_task

from recipes.services import rollouts
from recipes.services.packages import build_package as build_package_file


@shared_task(name="recipes.build_package", acks_late=True)
def build_package(job_id: int) -> int | None:
    """Build a package's file (its TaskJob); returns how many recipes it holds, None if it did nothing."""
    job = build_package_file(job_id)
    return job.result_rows if job else None


@shared_task(name="recipes.advance_rollouts", acks_late=True)
def advance_rollouts() -> dict:
    """Settle the offers of running rollouts and decide their stages (advance, halt, complete)."""
    return rollouts.advance_rollouts()
