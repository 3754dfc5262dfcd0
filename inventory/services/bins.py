"""Refills and thresholds: every write to a bin that is not a machine's level report.

The admin and the API call the same two staff functions (`refill_bin`, `set_bin_threshold`); the
machine protocol calls `record_machine_refills` for the refills a machine flags. A refill, whoever
reports it, starts the bin's drain anew (see `forecast`) and clears its low-stock alarms.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit import services as audit
from coffeeshop.exceptions import Invalid
from devices.models import Device, DeviceBin
from devices.rules import bin_is_low, level_pct_of
from inventory.models import Material, Refill, RefillSource
from inventory.services.forecast import empty_at
from operations.services import alarms

# A report that says "refilled" again this soon after a refill, with no more in the bin, is the same
# refill (a retried report, or the level the forecast had already seen rise).
SAME_REFILL_WINDOW = timedelta(minutes=10)
SAME_REFILL_MARGIN_SHARE = 0.05


def _field_error(field: str, message: str) -> Invalid:
    return Invalid(message, details={"fields": {field: [message]}})


def _start_drain(bin_: DeviceBin, at: datetime) -> None:
    """After a refill the bin drains from its new level; its pace so far still predicts when it empties."""
    bin_.drain_since_at, bin_.drain_since_remaining = at, bin_.remaining
    bin_.forecast_at, bin_.forecast_remaining = bin_.reported_at, bin_.remaining
    bin_.empty_at = empty_at(bin_)


DRAIN_FIELDS = ["drain_since_at", "drain_since_remaining", "forecast_at", "forecast_remaining", "empty_at"]


def _judge_alarms(bin_: DeviceBin, reason: str | None = None) -> None:
    device = Device(pk=bin_.device_id, merchant_id=bin_.device.merchant_id)
    alarms.bins_reported(device, [bin_], reason=reason)


@transaction.atomic
def refill_bin(bin_: DeviceBin, *, amount: float, user=None, now: datetime | None = None) -> Refill:
    """Staff put `amount` (in the bin's unit) into a bin: more than fits, or nothing, is refused."""
    now = now or timezone.now()
    bin_ = DeviceBin.objects.select_for_update().select_related("device").get(pk=bin_.pk)
    room = bin_.capacity - bin_.remaining
    if amount is None or amount <= 0:
        raise _field_error("amount", _("Say how much went in: more than 0."))
    if amount > room + 1e-9:
        raise _field_error(
            "amount",
            _("Bin %(index)s holds %(remaining)g of %(capacity)g %(unit)s: at most %(room)g %(unit)s fit.")
            % {
                "index": bin_.index,
                "remaining": bin_.remaining,
                "capacity": bin_.capacity,
                "unit": bin_.unit,
                "room": room,
            },
        )
    before = bin_.remaining
    bin_.remaining = min(bin_.capacity, before + amount)
    bin_.level_pct = level_pct_of(bin_.remaining, bin_.capacity)
    # Stamped as a reading, so that an older level a quiet heartbeat left in Redis cannot overwrite it.
    bin_.reported_at = bin_.last_refilled_at = now
    _start_drain(bin_, now)
    bin_.save(update_fields=["remaining", "level_pct", "reported_at", "last_refilled_at", *DRAIN_FIELDS])
    refill = Refill.of(
        bin_,
        source=RefillSource.STAFF,
        before=before,
        at=now,
        user=user if getattr(user, "is_authenticated", False) else None,
    )
    refill.save()
    audit.record(
        "bin.refilled",
        bin_,
        merchant_id=bin_.device.merchant_id,
        changes={
            "bin": bin_.index,
            "amount": audit.as_text(amount),
            "remaining": [str(before), str(bin_.remaining)],
        },
    )
    _judge_alarms(bin_)
    return refill


@transaction.atomic
def set_bin_threshold(bin_: DeviceBin, low_threshold_pct: float | None) -> DeviceBin:
    """Staff set a bin's own low threshold, or give it back to its material's default (None)."""
    bin_ = DeviceBin.objects.select_for_update().select_related("device").get(pk=bin_.pk)
    if low_threshold_pct is None:
        default = (
            Material.objects.filter(merchant_id=bin_.device.merchant_id, code=bin_.material_code)
            .values_list("low_threshold_pct", flat=True)
            .first()
        )
        values = {"low_threshold_pct": float(default if default is not None else bin_.low_threshold_pct)}
        values["threshold_follows_material"] = True
    elif not 0 <= low_threshold_pct <= 100:
        raise _field_error("low_threshold_pct", _("A threshold is a percentage, from 0 to 100."))
    else:
        values = {"low_threshold_pct": float(low_threshold_pct), "threshold_follows_material": False}
    was_low = bin_.is_low
    changed = audit.save_changes(bin_, values, update_fields=list(values))
    if changed:
        audit.record(
            "bin.threshold_changed",
            bin_,
            merchant_id=bin_.device.merchant_id,
            changes={"bin": bin_.index, **changed},
        )
        if bin_.is_low != was_low:
            _judge_alarms(bin_, reason=_("threshold changed"))
    return bin_


def follow_material_threshold(material: Material) -> int:
    """A material's default threshold changed: the bins that follow it take the new one, and the bins
    it makes low (or no longer low) have their alarms opened or cleared now. Returns how many bins."""
    bins = DeviceBin.objects.filter(
        device__merchant_id=material.merchant_id, material_code=material.code, threshold_follows_material=True
    )
    new_pct = float(material.low_threshold_pct)
    crossing = [
        b
        for b in bins.select_related("device").only(
            "pk",
            "index",
            "material_code",
            "level_pct",
            "remaining",
            "low_threshold_pct",
            "device__merchant_id",
        )
        if bin_is_low(b.level_pct, b.low_threshold_pct) != bin_is_low(b.level_pct, new_pct)
    ]
    count = bins.update(low_threshold_pct=new_pct)
    by_device = {}
    for bin_ in crossing:
        bin_.low_threshold_pct = new_pct
        device = by_device.setdefault(
            bin_.device_id, Device(pk=bin_.device_id, merchant_id=material.merchant_id)
        )
        alarms.bins_reported(device, [bin_], reason=_("threshold changed"))
    return count


# --- What machines report ------------------------------------------------------------------------------


def levels_before_refill(device_id: int, readings) -> dict[int, float]:
    """The stored levels of the bins a report flags as refilled, read before the report writes them
    (no query when none is flagged, which is almost always)."""
    indexes = [r.index for r in readings if r.refilled]
    if not indexes:
        return {}
    return dict(
        DeviceBin.objects.filter(device_id=device_id, index__in=indexes).values_list("index", "remaining")
    )


@transaction.atomic
def record_machine_refills(
    device_id: int, readings, levels_before: dict[int, float], now=None
) -> list[Refill]:
    """One refill event per bin the machine flagged `refilled: true`, unless it is one already known:
    a report sent again, or a rise the forecast already booked as a refill nobody reported (which is
    then marked as reported)."""
    flagged = {r.index for r in readings if r.refilled}
    if not flagged:
        return []
    now = now or timezone.now()
    bins = list(DeviceBin.objects.select_for_update().filter(device_id=device_id, index__in=flagged))
    latest = {}
    for refill in Refill.objects.filter(bin__in=bins, refilled_at__gte=now - SAME_REFILL_WINDOW).exclude(
        source=RefillSource.STAFF
    ):
        latest.setdefault(refill.bin_id, refill)
    created = []
    for bin_ in bins:
        known = latest.get(bin_.pk)
        if (
            known is not None
            and bin_.remaining <= known.remaining_after + SAME_REFILL_MARGIN_SHARE * bin_.capacity
        ):
            if known.source == RefillSource.INFERRED:
                known.source = RefillSource.MACHINE
                known.save(update_fields=["source"])
            continue
        created.append(
            Refill.of(bin_, source=RefillSource.MACHINE, before=levels_before.get(bin_.index), at=now)
        )
        _start_drain(bin_, now)
        bin_.save(update_fields=DRAIN_FIELDS)
    return Refill.objects.bulk_create(created)
