"""Recipes, their versions and the packages that bundle them for machines.

A recipe is a product a merchant sells (its `product_id` is what machines put in their orders). Its
definition lives in versions: a draft may change, a published version never does (orders name the
version they were brewed by, packages carry it), a new draft is cloned from one. A package bundles
published versions for some machine models as one immutable JSON file, the protocol's package format.
"""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Merchant
from accounts.tenancy import TenantQuerySet
from coffeeshop.exceptions import Conflict


class RecipeQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class Recipe(models.Model):
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="recipes", verbose_name=_("merchant")
    )
    product_id = models.CharField(
        _("product id"), max_length=64, help_text=_("As machines name it in their orders, e.g. latte.")
    )
    name = models.CharField(_("name"), max_length=120)
    category = models.CharField(_("category"), max_length=64, blank=True)
    price = models.DecimalField(
        _("price"), max_digits=10, decimal_places=2, validators=[MinValueValidator(0)]
    )
    is_retired = models.BooleanField(
        _("retired"), default=False, help_text=_("No longer sold: left out of new packages.")
    )
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = RecipeQuerySet.as_manager()

    class Meta:
        verbose_name = _("recipe")
        verbose_name_plural = _("recipes")
        ordering = ["merchant_id", "product_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "product_id"], name="recipe_unique_product_per_merchant"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="recipe_price_not_negative"),
        ]

    def __str__(self):
        return f"{self.product_id} · {self.name}"


class RecipeVersionQuerySet(TenantQuerySet):
    merchant_path = "recipe__merchant"


class RecipeVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    recipe = models.ForeignKey(
        Recipe, on_delete=models.CASCADE, related_name="versions", verbose_name=_("recipe")
    )
    number = models.PositiveIntegerField(_("version"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.DRAFT)
    definition = models.JSONField(
        _("definition"),
        default=dict,
        blank=True,
        help_text=_("The steps, as recipes/schema/recipe-definition.schema.json describes them."),
    )
    notes = models.TextField(_("notes"), blank=True)
    cloned_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("cloned from"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    published_at = models.DateTimeField(_("published"), null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("published by"),
    )  # fmt: skip

    objects = RecipeVersionQuerySet.as_manager()

    class Meta:
        verbose_name = _("recipe version")
        verbose_name_plural = _("recipe versions")
        ordering = ["recipe_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["recipe", "number"], name="recipe_version_unique_number"),
            # At most one draft per recipe: two drafts would fork the recipe's history.
            models.UniqueConstraint(
                fields=["recipe"], condition=Q(status="draft"), name="recipe_version_one_draft"
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(published_at__isnull=False),
                name="recipe_version_published_has_date",
            ),
        ]

    def __str__(self):
        return f"{self.recipe.product_id} v{self.number}"

    def save(self, *args, **kwargs):
        """A version read as published is never written again, whoever calls save(): the services refuse
        first with a friendlier message, this catches any code path that forgets to ask them."""
        if getattr(self, "_stored_status", None) == self.Status.PUBLISHED:
            raise Conflict(_("A published version never changes: clone it into a new draft."))
        super().save(*args, **kwargs)
        self._stored_status = self.status

    @classmethod
    def from_db(cls, db, field_names, values):
        version = super().from_db(db, field_names, values)
        version._stored_status = version.__dict__.get("status")  # absent when deferred
        return version

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        if fields is None or "status" in fields:
            self._stored_status = self.status

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED


class PackageQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class RecipePackage(models.Model):
    """Published recipe versions for some machine models, as one immutable file machines download."""

    class Status(models.TextChoices):
        BUILDING = "building", _("Building")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="recipe_packages", verbose_name=_("merchant")
    )
    version = models.CharField(
        _("version"), max_length=32, help_text=_("e.g. 2026.11.4; unique per merchant.")
    )
    machine_models = models.JSONField(
        _("machine models"), default=list, help_text=_('The models it may be offered to, e.g. ["CM-2000"].')
    )
    min_firmware = models.CharField(_("minimum firmware"), max_length=32, blank=True)
    recipe_versions = models.ManyToManyField(
        RecipeVersion, related_name="packages", verbose_name=_("recipe versions")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.BUILDING)
    file = models.FileField(_("file"), upload_to="packages/", blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    size = models.PositiveIntegerField(_("size (bytes)"), null=True, blank=True)
    job = models.ForeignKey(
        "operations.TaskJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("build job"),
    )  # fmt: skip
    notes = models.TextField(_("notes"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    built_at = models.DateTimeField(_("built"), null=True, blank=True)

    objects = PackageQuerySet.as_manager()

    class Meta:
        verbose_name = _("recipe package")
        verbose_name_plural = _("recipe packages")
        ordering = ["merchant_id", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "version"], name="package_unique_version_per_merchant"
            ),
            models.CheckConstraint(
                condition=~Q(status="ready") | (Q(size__isnull=False) & ~Q(sha256="")),
                name="package_ready_has_checksum",
            ),
        ]

    def __str__(self):
        return f"{self.version}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY
