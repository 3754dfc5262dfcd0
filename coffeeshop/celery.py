"""The Celery app. Periodic schedules live in the database (django-celery-beat), editable in the admin.

The worker and beat log as the web does (coffeeshop.logs), and a task queued while serving a request
carries that request's id into the worker's lines for it (coffeeshop.request_id).
"""

import logging
import os

from celery import Celery, signals
from celery.app.task import Task as CeleryTask
from celery.apps import worker as celery_worker_app
from celery.worker.request import Request

from coffeeshop import logs, request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeshop.settings")


class RequestNamingItsRequestId(Request):
    """A task message as the worker reads it, noting its request id before Celery logs "received"."""

    def __init__(self, message, *args, headers=None, **kwargs):
        read = headers if headers is not None else message.headers
        request_id.note_received((read or {}).get("id"), read)
        super().__init__(message, *args, headers=headers, **kwargs)


class Task(CeleryTask):
    Request = "coffeeshop.celery:RequestNamingItsRequestId"


app = Celery("coffeeshop", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

signals.before_task_publish.connect(request_id.add_request_id_header, weak=False)
signals.task_prerun.connect(request_id.hold_task_request_id, weak=False)
signals.task_postrun.connect(request_id.release_task_request_id, weak=False)


def log_as_the_web_does(**_):
    """Connected to setup_logging, it stands in for Celery's own logging set-up; to celeryd_init, it
    also covers the warnings a worker gives before that (running as root)."""
    from django.conf import settings

    logs.configure(settings.LOGGING)


signals.celeryd_init.connect(log_as_the_web_does, weak=False)
signals.setup_logging.connect(log_as_the_web_does, weak=False)


def say_through_the_log(message, f=None):
    """The worker's notices ("worker: Warm shutdown (MainProcess)") go through its log, as JSON lines
    when the rest are, instead of straight to the stream. Celery writes them from its signal handler
    with os.write to be safe under eventlet; this project runs prefork, where logging there is safe
    (the handlers' locks are re-entrant)."""
    logging.getLogger("celery.apps.worker").warning(message)


celery_worker_app.safe_say = say_through_the_log
