"""What the web and Celery worker processes count of their own, beside django-prometheus's request and
database metrics.

With PROMETHEUS_MULTIPROC_DIR set (`make run-prod` sets it for every process) each process writes its
values to a file of its own in that directory and /metrics merges them all (coffeeshop/metrics.py):
counters are summed and outlive the process that wrote them, so a killed worker's requests and tasks
stay counted; `coffeeshop_web_workers` counts only the live ones, since gunicorn's master deletes a
worker's gauge file when the worker exits, however it died (gunicorn.conf.py, `child_exit`).
"""

from celery.signals import task_postrun
from prometheus_client import Counter, Gauge

WEB_WORKERS = Gauge(
    "coffeeshop_web_workers",
    "gunicorn workers serving HTTP (each live worker counts 1).",
    multiprocess_mode="livesum",
)
CELERY_TASKS = Counter(
    "coffeeshop_celery_tasks",
    "Celery tasks run by the workers, by task name and outcome (SUCCESS, FAILURE, RETRY …).",
    ["task", "state"],
)


def count_web_worker() -> None:
    """Called by gunicorn in each worker once it has loaded the application (post_worker_init)."""
    WEB_WORKERS.set(1)


@task_postrun.connect
def count_task(sender=None, state=None, **_kwargs) -> None:
    CELERY_TASKS.labels(task=getattr(sender, "name", "unknown"), state=state or "UNKNOWN").inc()
