"""The material catalogue: each merchant's own, since machines name their bins' contents by code."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Merchant
from accounts.tenancy import TenantQuerySet
from devices.models import Device, DeviceBin, DeviceBinQuerySet
from orders.models import OrderItem


class MaterialKind(models.TextChoices):
    BEAN = "bean", _("Beans")
    POWDER = "powder", _("Powder")
    MILK = "milk", _("Milk")
    SYRUP = "syrup", _("Syrup")
    WATER = "water", _("Water")
    CUP = "cup", _("Cups")
    SUPPLIES = "supplies", _("Supplies")


class MaterialUnit(models.TextChoices):
    GRAM = "g", _("grams (g)")
    MILLILITRE = "ml", _("millilitres (ml)")
    PIECE = "pcs", _("pieces (pcs)")


DEFAULT_LOW_THRESHOLD_PCT = 15
# What staff may edit, by hand, through the API and by import; the code never changes once created.
EDITABLE_FIELDS = (
    "name",
    "kind",
    "unit",
    "density",
    "low_threshold_pct",
    "cost_per_unit",
    "supplier",
    "pack_size",
)


class MaterialQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class Material(models.Model):
    """An ingredient or supply of one merchant. Its machines name it by `code` in their bin reports."""

    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="materials", verbose_name=_("merchant")
    )
    code = models.CharField(
        _("code"), max_length=64, help_text=_("As machines report it, e.g. BEAN-ARABICA.")
    )
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=16, choices=MaterialKind.choices)
    unit = models.CharField(_("unit"), max_length=8, choices=MaterialUnit.choices, default=MaterialUnit.GRAM)
    density = models.DecimalField(
        _("density (g/ml)"),
        max_digits=6,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text=_("Grams per millilitre, to convert a level reported in one unit to the other."),
    )
    low_threshold_pct = models.PositiveSmallIntegerField(
        _("low threshold %"),
        default=DEFAULT_LOW_THRESHOLD_PCT,
        validators=[MaxValueValidator(100)],
        help_text=_("A bin of this material is low below this level, unless the bin says otherwise."),
    )
    cost_per_unit = models.DecimalField(
        _("cost per unit"),
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
    )
    supplier = models.CharField(_("supplier"), max_length=120, blank=True)
    pack_size = models.DecimalField(
        _("pack size"),
        max_digits=10,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text=_(
            "How much one pack holds, in the material's unit (1000 for a 1 kg bag of beans). "
            "The pick list brings whole packs; blank: no rounding."
        ),
    )
    is_enabled = models.BooleanField(
        _("enabled"), default=True, help_text=_("Machines may report only enabled materials.")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = MaterialQuerySet.as_manager()

    class Meta:
        verbose_name = _("material")
        verbose_name_plural = _("materials")
        ordering = ["merchant_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "code"], name="material_unique_code_per_merchant"),
            models.CheckConstraint(
                condition=models.Q(low_threshold_pct__lte=100), name="material_low_threshold_pct_range"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=MaterialKind.values), name="material_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(unit__in=MaterialUnit.values), name="material_unit_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(pack_size__gt=0) | models.Q(pack_size__isnull=True),
                name="material_pack_size_positive",
            ),
        ]

    def __str__(self):
        return f"{self.code} · {self.name}"


BIN_STATES = ("empty", "low", "ok")
# A bin's state in SQL, as `DeviceBin.is_empty` / `is_low` judge it in Python.
BIN_STATE = models.Case(
    models.When(remaining__lte=0, then=models.Value("empty")),
    models.When(level_pct__lte=models.F("low_threshold_pct"), then=models.Value("low")),
    default=models.Value("ok"),
)
URGENCY = models.Case(
    models.When(remaining__lte=0, then=models.Value(0)),
    models.When(level_pct__lte=models.F("low_threshold_pct"), then=models.Value(1)),
    default=models.Value(2),
)
# Empty, then low, then the rest; within each, the one that will be empty soonest (bins with no
# forecast after), then the lowest.
BIN_URGENCY = ["urgency", models.F("empty_at").asc(nulls_last=True), "level_pct", "pk"]


class BinManager(models.Manager.from_queryset(DeviceBinQuerySet)):
    def get_queryset(self):
        return super().get_queryset().annotate(state=BIN_STATE, urgency=URGENCY)


class Bin(DeviceBin):
    """A machine's bin seen from the stock side: the fleet-wide bin page, refills and thresholds. Every
    query of it knows each bin's `state` (empty, low, ok) and `urgency` (to sort by)."""

    objects = BinManager()

    class Meta:
        proxy = True
        verbose_name = _("bin")
        verbose_name_plural = _("bins")


class RefillSource(models.TextChoices):
    MACHINE = "machine", _("Reported by the machine")
    INFERRED = "inferred", _("Seen in the level (not reported)")
    STAFF = "staff", _("Recorded by staff")


class RefillQuerySet(TenantQuerySet):
    merchant_path = "device__merchant"


class Refill(models.Model):
    """One refill of one bin: who or what reported it, when, and how much went in."""

    bin = models.ForeignKey(
        DeviceBin, on_delete=models.CASCADE, related_name="refills", verbose_name=_("bin")
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="refills", verbose_name=_("device")
    )
    bin_index = models.PositiveSmallIntegerField(_("bin"))
    material_code = models.CharField(_("material"), max_length=64)
    unit = models.CharField(_("unit"), max_length=16)
    remaining_before = models.FloatField(_("remaining before"), null=True, blank=True)
    remaining_after = models.FloatField(_("remaining after"))
    source = models.CharField(_("source"), max_length=16, choices=RefillSource.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    refilled_at = models.DateTimeField(_("refilled"), default=timezone.now)

    objects = RefillQuerySet.as_manager()

    class Meta:
        verbose_name = _("refill")
        verbose_name_plural = _("refills")
        ordering = ["-refilled_at", "-pk"]
        indexes = [models.Index(fields=["bin", "-refilled_at"], name="refill_bin_latest")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(remaining_after__gte=0), name="refill_remaining_after_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(source__in=RefillSource.values), name="refill_source_valid"
            ),
        ]

    def __str__(self):
        return f"{self.device_id} #{self.bin_index} {self.material_code} @ {self.refilled_at:%Y-%m-%d %H:%M}"

    @classmethod
    def of(cls, bin_: DeviceBin, *, source: str, before: float | None, at, user=None) -> "Refill":
        """A refill of `bin_` that left it as it stands now (not saved)."""
        return cls(
            bin=bin_,
            device_id=bin_.device_id,
            bin_index=bin_.index,
            material_code=bin_.material_code,
            unit=bin_.unit,
            remaining_before=before,
            remaining_after=bin_.remaining,
            source=source,
            user=user,
            refilled_at=at,
        )

    @property
    def amount(self) -> float | None:
        """What went in; unknown when the level before is (a bin's first report said it was refilled)."""
        if self.remaining_before is None:
            return None
        return max(0.0, self.remaining_after - self.remaining_before)


class Unmatched(models.TextChoices):
    """Why a sold item's consumption could not be put against a bin: counted, never silently lost."""

    NO_RECIPE = "no_recipe", _("No recipe for the product")
    UNKNOWN_VERSION = "unknown_version", _("Recipe version not published")
    NO_BIN = "no_bin", _("The machine has no bin of the material")
    UNIT_MISMATCH = "unit_mismatch", _("The recipe's unit does not convert to the bin's")


class ConsumptionQuerySet(TenantQuerySet):
    merchant_path = "device__merchant"


class Consumption(models.Model):
    """What one sold item took from one bin, by its recipe version: the consumption ledger. One row per
    item and material, so each sale is booked exactly once however often the job runs. An item that
    cannot be booked against a bin is a row too, with no bin and the reason (`unmatched`)."""

    bin = models.ForeignKey(
        DeviceBin,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="consumption",
        verbose_name=_("bin"),
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="consumption", verbose_name=_("device")
    )
    order_item = models.ForeignKey(
        OrderItem, on_delete=models.CASCADE, related_name="consumption", verbose_name=_("order item")
    )
    material_code = models.CharField(_("material"), max_length=64, blank=True)
    amount = models.FloatField(_("amount"), default=0.0)
    unit = models.CharField(_("unit"), max_length=16, blank=True)
    occurred_at = models.DateTimeField(_("sold"))
    unmatched = models.CharField(
        _("not booked because"), max_length=16, choices=Unmatched.choices, blank=True
    )

    objects = ConsumptionQuerySet.as_manager()

    class Meta:
        verbose_name = _("consumption")
        verbose_name_plural = _("consumption")
        ordering = ["-occurred_at", "-pk"]
        indexes = [
            models.Index(fields=["bin", "occurred_at"], name="consumption_bin_occurred"),
            models.Index(fields=["device", "-occurred_at"], name="consumption_device_occurred"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["order_item", "material_code"], name="consumption_once_per_item_material"
            ),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="consumption_amount_not_negative"),
        ]

    def __str__(self):
        return f"{self.material_code or '–'} {self.amount:g} {self.unit} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class LedgerCursor(models.Model):
    """How far a job that reads orders in arrival order has got: the last order it booked."""

    name = models.CharField(max_length=64, primary_key=True)
    received_at = models.DateTimeField(null=True, blank=True)
    order_id = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("ledger cursor")
        verbose_name_plural = _("ledger cursors")

    def __str__(self):
        return self.name
