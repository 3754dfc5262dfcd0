"""gunicorn's own lines (its master and its workers: booting, timeouts, crashes) through the handler
every process logs with (coffeeshop.logs), in LOG_FORMAT. Its access log stays off: the application
writes one richer line a request (coffeeshop.access). gunicorn.conf.py sets `logger_class` to this."""

import logging.config
import os

from django.core.exceptions import ImproperlyConfigured
from gunicorn.glogging import Logger

from coffeeshop.logs import LOG_FORMATS, log_format, logging_config


class SharedFormatLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        chosen = log_format()
        if chosen not in LOG_FORMATS:
            raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'text'")
        config = logging_config(chosen, os.environ.get("LOG_LEVEL", "INFO"))
        # Named here, gunicorn's error logger loses the plain handler it set and hands its records on.
        level = cfg.loglevel.upper()
        config["loggers"]["gunicorn.error"] = {"handlers": [], "propagate": True, "level": level}
        logging.config.dictConfig(config)
