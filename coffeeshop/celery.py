"""The Celery app. Periodic schedules live in the database (django-celery-beat), editable in the admin."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeshop.settings")

app = Celery("coffeeshop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
