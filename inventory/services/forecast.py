"""When each bin will be empty, and the refills nobody reported.

Machines report levels, not consumption. A periodic job (`forecast_bins`, every minute) looks at each
bin reported since it last looked: a level that rose by a tenth of the bin or more was refilled (a
refill the machine did not flag is booked as `inferred`); otherwise the drop since the last refill,
over the time it took, is the bin's pace, and the level over that pace says when it will be empty.
The job keeps nothing in memory and only moves forward (each bin remembers the reading it was last
forecast from), so a run cut short by a killed worker is finished by the next one, and two runs at
once take different bins.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from devices.models import DeviceBin
from inventory.models import Refill, RefillSource

REFILL_RISE_SHARE = 0.10  # of the capacity: less is a sensor's wobble, not someone filling the bin
MIN_DRAIN_WINDOW = timedelta(hours=1)  # a pace measured over less is mostly noise
HORIZON_DAYS = 365  # a bin that lasts longer than this has no date worth showing
FORECAST_FIELDS = [
    "drain_since_at",
    "drain_since_remaining",
    "drain_per_day",
    "forecast_at",
    "forecast_remaining",
    "empty_at",
    "last_refilled_at",
]


def empty_at(bin_: DeviceBin) -> datetime | None:
    """When the bin will be empty at its pace (now for an empty bin; None without a pace)."""
    if bin_.remaining <= 0:
        return bin_.reported_at
    if not bin_.drain_per_day:
        return None
    days = bin_.remaining / bin_.drain_per_day
    return bin_.reported_at + timedelta(days=days) if days <= HORIZON_DAYS else None


def days_to_empty(bin_: DeviceBin, now: datetime | None = None) -> float | None:
    """Days from now until the bin is empty at its pace (0 when it is; None without a pace)."""
    if bin_.remaining <= 0:
        return 0.0
    if bin_.empty_at is None:
        return None
    return round(max(0.0, (bin_.empty_at - (now or timezone.now())) / timedelta(days=1)), 1)


def _inferred_refill(bin_: DeviceBin) -> Refill | None:
    """A rise since the last forecast is a refill; the machine flagged it if it said so since then."""
    if (
        bin_.forecast_remaining is None
        or bin_.remaining - bin_.forecast_remaining < REFILL_RISE_SHARE * bin_.capacity
    ):
        return None
    flagged = (
        bin_.last_refilled_at is not None
        and bin_.forecast_at is not None
        and bin_.last_refilled_at > bin_.forecast_at
    )
    return Refill.of(
        bin_,
        source=RefillSource.MACHINE if flagged else RefillSource.INFERRED,
        before=bin_.forecast_remaining,
        at=bin_.last_refilled_at if flagged else bin_.reported_at,
    )


def forecast_bin(bin_: DeviceBin) -> Refill | None:
    """Bring one bin's forecast up to its latest reading; returns the refill it saw, if any."""
    refill = _inferred_refill(bin_)
    if refill is not None:
        bin_.last_refilled_at = refill.refilled_at
    if refill is not None or bin_.drain_since_at is None or bin_.remaining > bin_.drain_since_remaining:
        bin_.drain_since_at, bin_.drain_since_remaining = bin_.reported_at, bin_.remaining
    else:
        elapsed = bin_.reported_at - bin_.drain_since_at
        drop = bin_.drain_since_remaining - bin_.remaining
        if elapsed >= MIN_DRAIN_WINDOW and drop > 0:
            bin_.drain_per_day = drop / (elapsed / timedelta(days=1))
    bin_.forecast_at, bin_.forecast_remaining = bin_.reported_at, bin_.remaining
    bin_.empty_at = empty_at(bin_)
    return refill


def forecast_bins(chunk: int | None = None) -> dict:
    """Every bin reported since its last forecast, in chunks of locked rows (others skip them)."""
    chunk = chunk or settings.BIN_FORECAST_CHUNK
    due = DeviceBin.objects.filter(Q(forecast_at__isnull=True) | Q(forecast_at__lt=F("reported_at")))
    done, refills, after = 0, 0, 0
    while True:
        with transaction.atomic():
            bins = list(due.filter(pk__gt=after).order_by("pk").select_for_update(skip_locked=True)[:chunk])
            if not bins:
                break
            seen = [refill for bin_ in bins if (refill := forecast_bin(bin_)) is not None]
            DeviceBin.objects.bulk_update(bins, FORECAST_FIELDS)
            Refill.objects.bulk_create(seen)
        done, refills, after = done + len(bins), refills + len(seen), bins[-1].pk
    return {"forecast": done, "refills_seen": refills}


def expected_use(bin_: DeviceBin, start: datetime, end: datetime) -> float:
    """What the bin is expected to give out between `start` and `end`, in its unit; 0 without a pace or
    for an empty span. Reads only the bin (no query), so a pick list of any size costs nothing more."""
    if not bin_.drain_per_day or end <= start:
        return 0.0
    return bin_.drain_per_day * ((end - start) / timedelta(days=1))
