"""Helpers for tests that make command batches: the batch's job runs as the Celery worker would run it."""

from contextlib import contextmanager

from django.test import TestCase

from coffeeshop.celery import app
from operations.models import CommandBatch
from operations.services import commands
from operations.tasks import dispatch_command_batch


@contextmanager
def worker_at_commit():
    """What the block queues for Celery on commit runs then, in this process, as the worker would run it
    (Celery's eager mode; the real worker is tested end to end in tests/e2e)."""
    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
            yield callbacks
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = before


def sent_batch(devices, command_type: str, payload: dict, *, user, target=None, **options) -> CommandBatch:
    """A batch made through the service, its job run to the end."""
    with worker_at_commit():
        batch = commands.start_batch(
            devices,
            command_type,
            payload,
            user=user,
            target=target or {},
            enqueue=dispatch_command_batch.delay,
            **options,
        )
    batch.refresh_from_db()
    return batch
