"""Follow-up work a service queues once its transaction commits, named by its task.

Services sit below tasks: they never import `operations.tasks` (which imports them). A service that
must start background work after its change is committed queues it here, by the task's registered
name; this module imports no service and no task.
"""

import logging

import kombu.exceptions
from celery import current_app
from django.db import transaction

from coffeeshop.redis import REDIS_OUTAGE_ERRORS, redis_failed, redis_is_down

logger = logging.getLogger(__name__)

NOTIFY_ALARM = "operations.notify_alarm"

# The task that runs each kind of background job: a job a dead worker left behind is queued again by
# this name. A new kind of job adds its line here (a test checks that every kind has a task).
JOB_TASKS = {
    "orders_export": "orders.export_orders",
    "command_batch": "operations.dispatch_command_batch",
    "package_build": "recipes.build_package",
    "material_import": "inventory.run_material_import",
    "analytics_export": "operations.export_analytics",
}


def queue_after_commit(task_name: str, *args) -> None:
    """Send `task_name(*args)` to the workers when the current transaction commits (now, outside one)."""
    transaction.on_commit(lambda: send(task_name, *args))


def queue_job(job) -> None:
    """Send a background job to the workers again (now, not on commit)."""
    send(JOB_TASKS[job.kind], job.pk)


def send(task_name: str, *args) -> bool:
    """Send a task; False when the broker (Redis) cannot take it. What was committed stays committed and
    the request that committed it succeeds: a job left pending is queued again by "Reclaim stalled
    background jobs", an alarm's notification by the recovery hook `queue_unsent_notifications`."""
    if redis_is_down():
        logger.warning("Redis is out: %s%r not queued", task_name, args)
        return False
    try:
        current_app.send_task(task_name, args=args)
    except (kombu.exceptions.OperationalError, *REDIS_OUTAGE_ERRORS) as error:
        redis_failed(error)
        logger.warning("the broker is out: %s%r not queued", task_name, args)
        return False
    return True
