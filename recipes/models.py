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


# --- Rollouts -------------------------------------------------------------------------------------------


class RolloutQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class Rollout(models.Model):
    """A package given to chosen machines in stages: a canary, then waves. Each stage is offered once the
    one before it met the success threshold (by itself or on approval); failures past the failure
    threshold halt the whole rollout. A rollback is a rollout of the previous package to the machines
    that took this one."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
        PAUSED = "paused", _("Paused")
        HALTED = "halted", _("Halted by failures")
        COMPLETED = "completed", _("Completed")
        ABORTED = "aborted", _("Aborted")

    ACTIVE = (Status.RUNNING, Status.AWAITING_APPROVAL)
    FINISHED = (Status.COMPLETED, Status.ABORTED)

    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="rollouts", verbose_name=_("merchant")
    )
    package = models.ForeignKey(
        RecipePackage, on_delete=models.PROTECT, related_name="rollouts", verbose_name=_("package")
    )
    previous_package = models.ForeignKey(
        RecipePackage, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("previous package"), help_text=_("What a rollback rolls out again."),
    )  # fmt: skip
    rollback_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="rollbacks",
        verbose_name=_("rollback of"),
    )  # fmt: skip
    status = models.CharField(_("status"), max_length=24, choices=Status.choices, default=Status.RUNNING)
    send_upgrade_command = models.BooleanField(
        _("send an upgrade command"),
        default=False,
        help_text=_(
            "Besides offering the package in heartbeat replies, send each machine an upgrade command."
        ),
    )
    success_threshold_pct = models.PositiveSmallIntegerField(
        _("success threshold (%)"), default=90,
        help_text=_("A stage is done when this share of its machines installed the package."),
    )  # fmt: skip
    failure_threshold_pct = models.PositiveSmallIntegerField(
        _("failure threshold (%)"), default=20,
        help_text=_("The rollout halts by itself when this share of a stage's machines failed."),
    )  # fmt: skip
    auto_advance = models.BooleanField(
        _("advance by itself"), default=True, help_text=_("Otherwise each next stage waits for approval.")
    )
    halted_reason = models.CharField(_("halted because"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        verbose_name = _("rollout")
        verbose_name_plural = _("rollouts")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(success_threshold_pct__gte=1, success_threshold_pct__lte=100)
                & Q(failure_threshold_pct__gte=1, failure_threshold_pct__lte=100),
                name="rollout_thresholds_in_range",
            ),
        ]

    def __str__(self):
        names = {"version": self.package.version, "merchant": self.merchant}
        return str(_("%(version)s to %(merchant)s") % names)


class RolloutStage(models.Model):
    class Status(models.TextChoices):
        WAITING = "waiting", _("Waiting")
        ACTIVE = "active", _("Active")
        SUCCEEDED = "succeeded", _("Succeeded")
        HALTED = "halted", _("Halted")
        ABORTED = "aborted", _("Aborted")

    rollout = models.ForeignKey(
        Rollout, on_delete=models.CASCADE, related_name="stages", verbose_name=_("rollout")
    )
    index = models.PositiveSmallIntegerField(_("stage"), help_text=_("0 is the canary."))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.WAITING)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("approved by"),
    )  # fmt: skip

    class Meta:
        verbose_name = _("rollout stage")
        verbose_name_plural = _("rollout stages")
        ordering = ["rollout_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "index"], name="rollout_stage_unique_index")
        ]

    def __str__(self):
        return str(_("canary") if self.index == 0 else _("wave %(n)d") % {"n": self.index})


class RolloutMachineQuerySet(TenantQuerySet):
    merchant_path = "rollout__merchant"


class RolloutMachine(models.Model):
    """One machine in a rollout: waiting for its stage, offered the package, then installed or failed.
    A machine is offered one package at a time: a newer offer supersedes the older one."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        OFFERED = "offered", _("Offered")
        INSTALLED = "installed", _("Installed")
        FAILED = "failed", _("Failed")
        SUPERSEDED = "superseded", _("Superseded")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    rollout = models.ForeignKey(
        Rollout, on_delete=models.CASCADE, related_name="machines", verbose_name=_("rollout")
    )
    stage = models.ForeignKey(
        RolloutStage, on_delete=models.CASCADE, related_name="machines", verbose_name=_("stage")
    )
    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="rollouts", verbose_name=_("device")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    previous_version = models.CharField(_("previous package"), max_length=32, blank=True)
    command = models.ForeignKey(
        "operations.RemoteCommand", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("upgrade command"),
    )  # fmt: skip
    offered_at = models.DateTimeField(_("offered"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=255, blank=True)

    objects = RolloutMachineQuerySet.as_manager()

    class Meta:
        verbose_name = _("machine in a rollout")
        verbose_name_plural = _("machines in rollouts")
        ordering = ["rollout_id", "stage__index", "device_id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "device"], name="rollout_machine_once"),
            models.UniqueConstraint(
                fields=["device"], condition=Q(status="offered"), name="rollout_machine_one_offer"
            ),
        ]
        indexes = [models.Index(fields=["status", "rollout"], name="rollout_machine_status")]

    def __str__(self):
        return f"{self.device_id} @ {self.rollout_id}: {self.status}"
