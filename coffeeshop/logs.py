"""How every process logs: the web (gunicorn's own lines included), the worker and beat write the same
lines through one handler, each naming the request it serves (coffeeshop.request_id).

LOG_FORMAT=json (the default in production) writes one JSON object a line, a traceback inside its
`exc_info` field; LOG_FORMAT=text writes lines to read by eye. This module reads no Django setting:
gunicorn's master uses it before Django is set up.
"""

import logging
import logging.config
import os
import sys

from pythonjsonlogger.core import RESERVED_ATTRS

LOG_FORMATS = ("json", "text")


def log_format(environ=os.environ) -> str:
    """LOG_FORMAT as the environment says, json by default in production (DJANGO_ENV) and text elsewhere;
    the caller checks it is one of LOG_FORMATS."""
    is_production = environ.get("DJANGO_ENV", "development").strip().lower() == "production"
    return environ.get("LOG_FORMAT", "json" if is_production else "text").strip().lower()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id] message`, the bracket left out outside a request."""

    def formatMessage(self, record):
        request_id = getattr(record, "request_id", None)
        record.request_tag = f"[{request_id}] " if request_id else ""
        return super().formatMessage(record)


def logging_config(log_format: str, level: str) -> dict:
    """The dictConfig of every process: one console handler on the root logger, in `log_format`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "coffeeshop.request_id.RequestIdFilter"}},
        "formatters": {
            "text": {
                "()": "coffeeshop.logs.TextFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s %(request_tag)s%(message)s",
            },
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                # Django hands its request to some records (django.request, django.server): its repr
                # carries the query string, where a download's signature may be. Never a field.
                "reserved_attrs": [*RESERVED_ATTRS, "request", "request_tag"],
            },
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["request_id"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.channels.server": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
            "axes": {"level": "WARNING"},
        },
    }


def log_uncaught_exceptions() -> None:
    """An exception nothing caught is logged as one record (its traceback in `exc_info`), not printed."""
    crash_logger = logging.getLogger("coffeeshop.crash")

    def log_it(kind, value, traceback):
        crash_logger.critical("Uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, traceback))

    sys.excepthook = log_it


def configure(logging_settings: dict) -> None:
    """Log through `logging_settings` (Django's LOGGING): Celery's worker and beat call this in place of
    their own set-up (coffeeshop/celery.py), so their lines are the web's, warnings and crashes included."""
    logging.config.dictConfig(logging_settings)
    logging.captureWarnings(True)
    log_uncaught_exceptions()
