from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Material(models.Model):
    """An ingredient in the catalogue. Machines name it by `code` in their bin reports."""

    code = models.CharField(
        _("code"), max_length=64, unique=True, help_text=_("As machines report it, e.g. BEAN-ARABICA.")
    )
    name = models.CharField(_("name"), max_length=120)
    unit = models.CharField(_("unit"), max_length=16, default="g")
    category = models.CharField(_("category"), max_length=64, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("material")
        verbose_name_plural = _("materials")
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} · {self.name}"
