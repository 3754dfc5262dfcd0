"""When each bin will be empty, and the refills nobody reported.

Machines report levels, not consumption. A periodic job (`forecast_bins`, every minute) looks at each
bin reported since it last looked: a level that rose by a tenth of the bin or more was refilled (a
refill the machine did not flag is booked as `inferred`); otherwise the drop since the last refill,
over the time it took, is the bin's pace (`drain_per_day`). Where the consumption ledger knows the
bin's use by hour of the day (`use_by_hour`, see inventory.services.usage), the expected use walks that
curve forward from the last reported level instead, so a bin that sells only in the mornings empties on
a morning; without one the level's pace is a straight line.
The job keeps nothing in memory and only moves forward (each bin remembers the reading it was last
forecast from), so a run cut short by a killed worker is finished by the next one, and two runs at
once take different bins.
"""

from datetime import UTC, datetime, timedelta

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


HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def expected_use(bin_: DeviceBin, start: datetime, end: datetime) -> float:
    """What the bin is expected to give out between `start` and `end`, in its unit: its use by hour of
    the day over the last week where the ledger has one, else its level's pace. Pure: no query."""
    if end <= start:
        return 0.0
    curve = bin_.use_by_hour
    if not curve:
        return (bin_.drain_per_day or 0.0) * ((end - start) / DAY)
    whole_days = int((end - start) / DAY)  # a whole day takes every hour of the curve once
    total, at = whole_days * sum(curve), start + whole_days * DAY
    while at < end:
        hour_ends = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + HOUR
        until = min(hour_ends, end)
        total += curve[at.astimezone(UTC).hour] * ((until - at) / HOUR)
        at = until
    return total


def _empty_along_curve(remaining: float, start: datetime, curve: list[float]) -> datetime | None:
    daily = sum(curve)
    if daily <= 0:
        return None
    whole_days = int(remaining // daily)
    if whole_days > HORIZON_DAYS:
        return None
    at, left = start + whole_days * DAY, remaining - whole_days * daily
    for _hour in range(49):  # less than a day's use is left: it runs out within the next 25 hours
        hour_ends = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + HOUR
        rate = curve[at.astimezone(UTC).hour]
        use = rate * ((hour_ends - at) / HOUR)
        if rate > 0 and use >= left:
            return at + HOUR * (left / rate)
        left, at = left - use, hour_ends
    return at


def empty_at(bin_: DeviceBin) -> datetime | None:
    """When the bin will be empty (now for an empty bin; None without a pace): along its use by hour
    of the day where it has one, else at its level's pace."""
    if bin_.remaining <= 0:
        return bin_.reported_at
    if bin_.use_by_hour and sum(bin_.use_by_hour) > 0:
        return _empty_along_curve(bin_.remaining, bin_.reported_at, bin_.use_by_hour)
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
