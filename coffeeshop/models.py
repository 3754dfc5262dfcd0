from django.db import models
from django.utils.translation import gettext_lazy as _


class WorkerPulse(models.Model):
    """When each Celery worker process last started a task: health tells answering workers from gone
    ones by it (coffeeshop/workers.py). One row per worker process, overwritten; rows of processes
    gone for a day are deleted."""

    worker = models.CharField(_("worker"), max_length=255, unique=True, help_text=_("hostname and pid"))
    seen_at = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("worker pulse")
        verbose_name_plural = _("worker pulses")

    def __str__(self):
        return self.worker
