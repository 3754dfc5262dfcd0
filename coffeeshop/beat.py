"""Beat's scheduler: django-celery-beat's, the schedules in the database, with a request id per send.

Each due task beat sends gets a new id, held while beat logs "Sending due task" and publishes it, so
that line and the worker's lines for the run carry the same `request_id` (coffeeshop.request_id), as
a task queued by a request does.
"""

import uuid

from django_celery_beat.schedulers import DatabaseScheduler

from coffeeshop.request_id import holding


class Scheduler(DatabaseScheduler):
    def apply_entry(self, entry, producer=None):
        with holding(f"beat-{uuid.uuid4().hex}"):
            return super().apply_entry(entry, producer=producer)
