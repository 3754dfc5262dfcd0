"""gunicorn's settings, read from the directory gunicorn starts in (README, "Running in production").

Sync workers that answer 503 at once to a request that waited past MAX_QUEUE_WAIT_MS in the listen
backlog, instead of serving it after the machine gave up (coffeeshop/shedding.py). gunicorn's own
lines are written as the application's are, in LOG_FORMAT (coffeeshop/gunicorn_logging.py).

With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics to its own files there and /metrics
merges them (coffeeshop/process_metrics.py): a worker that exits, even SIGKILLed, keeps its counters
and leaves the live-worker gauge, which its replacement joins once it has loaded the application.
"""

import os

worker_class = "coffeeshop.shedding.SheddingSyncWorker"
logger_class = "coffeeshop.gunicorn_logging.SharedFormatLogger"


def post_worker_init(worker):
    from coffeeshop.process_metrics import count_web_worker

    count_web_worker()


def child_exit(server, worker):
    # Runs in the master, which never loads Django: only prometheus_client here.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
