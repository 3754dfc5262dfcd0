"""Follow-up work a service queues once its transaction commits, named by its task.

Services sit below tasks: they never import `operations.tasks` (which imports them). A service that
must start background work after its change is committed queues it here, by the task's registered
name; this module imports no service and no task.
"""

from celery import current_app
from django.db import transaction

NOTIFY_ALARM = "operations.notify_alarm"

# The task that runs each kind of background job: a job a dead worker left behind is queued again by
# this name. A new kind of job adds its line here (a test checks that every kind has a task).
JOB_TASKS = {
    "orders_export": "orders.export_orders",
    "command_batch": "operations.dispatch_command_batch",
}


def queue_after_commit(task_name: str, *args) -> None:
    """Send `task_name(*args)` to the workers when the current transaction commits (now, outside one)."""
    transaction.on_commit(lambda: current_app.send_task(task_name, args=args))


def queue_job(job) -> None:
    """Send a background job to the workers again (now, not on commit)."""
    current_app.send_task(JOB_TASKS[job.kind], args=[job.pk])
