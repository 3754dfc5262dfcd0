"""gunicorn's settings, read from the directory gunicorn starts in (README, "Running in production").

Sync workers that answer 503 at once to a request that waited past MAX_QUEUE_WAIT_MS in the listen
backlog, instead of serving it after the machine gave up (coffeeshop/shedding.py). gunicorn's own
lines are written as the application's are, in LOG_FORMAT (coffeeshop/gunicorn_logging.py).
"""

worker_class = "coffeeshop.shedding.SheddingSyncWorker"
logger_class = "coffeeshop.gunicorn_logging.SharedFormatLogger"
