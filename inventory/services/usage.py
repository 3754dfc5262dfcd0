"""Each bin's use from the consumption ledger: its curve by hour of the day, and its variance.

`profile_bins` (run by the consumption job after booking) recomputes, for each bin not profiled for
CONSUMPTION_PROFILE_EVERY_S, what the forecast needs so that it is pure computation with no query per
bin: `use_by_hour`, 24 figures, the bin's average use in each hour of the day (UTC: merchants keep no
time zone) over the last 7 days (or the days it has sold in, if fewer), and from it `empty_at`.

Variance compares the ledger with the level. Over the longest window of the last 7 days in which the
level's story is known (from the earliest refill after which every refill's level before and after is
known, or from where the current drain began), the level dropped by the level after that refill less
the current level plus what every later refill put in; the ledger expected its sum of the window's
consumption. A bin whose drop differs from what the ledger expects by more than
CONSUMPTION_VARIANCE_PCT of it is flagged (leak, grinder drift or unrecorded sales), once the ledger
expects at least CONSUMPTION_VARIANCE_MIN_SHARE of the bin's capacity (less says nothing).
"""

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q, Sum
from django.db.models.functions import ExtractHour
from django.utils import timezone

from devices.models import DeviceBin
from inventory.models import Consumption, Refill
from inventory.services.forecast import empty_at

WINDOW = timedelta(days=7)
PROFILE_FIELDS = [
    "use_by_hour",
    "use_profiled_at",
    "variance_since",
    "expected_use",
    "reported_drop",
    "variance_pct",
    "is_variance_flagged",
    "empty_at",
]


def variance_window(bin_: DeviceBin, refills: list[tuple], since: datetime) -> tuple[datetime, float] | None:
    """(start, drop of the level since then) over the longest known window after `since`; `refills` are
    the bin's (refilled_at, remaining_before, remaining_after) after `since`, oldest first."""
    window, put_in = None, 0.0
    for refilled_at, before, after in reversed(refills):
        window = (refilled_at, after - bin_.remaining + put_in)
        if before is None:  # what went in is unknown: the story starts at this refill
            break
        put_in += after - before
    if window is None and bin_.drain_since_at is not None and bin_.drain_since_at >= since:
        window = (bin_.drain_since_at, bin_.drain_since_remaining - bin_.remaining)
    return window


def judge_variance(bin_: DeviceBin, expected: float | None, drop: float | None) -> None:
    """Set the bin's expected use, drop, variance and flag."""
    bin_.expected_use, bin_.reported_drop = expected, drop
    bin_.variance_pct, bin_.is_variance_flagged = None, False
    if expected is None or drop is None or expected < settings.CONSUMPTION_VARIANCE_MIN_SHARE * bin_.capacity:
        return
    bin_.variance_pct = round((drop - expected) / expected * 100, 1)
    bin_.is_variance_flagged = abs(bin_.variance_pct) > settings.CONSUMPTION_VARIANCE_PCT


def _write(bins: list[DeviceBin], names: list[str]) -> None:
    """One UPDATE a bin, sent as one batch: Django's bulk_update builds a CASE per field and row, which
    took nine tenths of the job's time for a thousand bins."""
    fields = [DeviceBin._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(DeviceBin._meta.db_table)} SET {assignments} WHERE {quote('id')} = %s"
    rows = [[field.get_db_prep_save(getattr(bin_, field.attname), connection) for field in fields] + [bin_.pk]
            for bin_ in bins]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _profile_chunk(bins: list[DeviceBin], now: datetime) -> None:
    since = now - WINDOW
    ids = [bin_.pk for bin_ in bins]
    refills = defaultdict(list)
    for bin_id, *refill in (
        Refill.objects.filter(bin_id__in=ids, refilled_at__gte=since, refilled_at__lte=now)
        .order_by("bin_id", "refilled_at", "pk")
        .values_list("bin_id", "refilled_at", "remaining_before", "remaining_after")
    ):
        refills[bin_id].append(refill)
    drops = {}
    for bin_ in bins:
        window = variance_window(bin_, refills[bin_.pk], since)
        bin_.variance_since, drops[bin_.pk] = window if window else (None, None)
    _write(bins, ["variance_since"])
    by_hour, expected, first = defaultdict(lambda: [0.0] * 24), defaultdict(float), {}
    for row in (
        Consumption.objects.filter(bin_id__in=ids, occurred_at__gte=since, occurred_at__lte=now)
        .annotate(hour=ExtractHour("occurred_at", tzinfo=UTC))
        .values("bin_id", "hour")
        .annotate(
            total=Sum("amount"),
            first=Min("occurred_at"),
            in_window=Sum(
                "amount",
                filter=Q(occurred_at__gt=F("bin__variance_since"), occurred_at__lte=F("bin__reported_at")),
            ),
        )
    ):
        by_hour[row["bin_id"]][row["hour"]] += row["total"]
        expected[row["bin_id"]] += row["in_window"] or 0.0
        first[row["bin_id"]] = min(first.get(row["bin_id"], row["first"]), row["first"])
    for bin_ in bins:
        if bin_.pk in first:
            days = min(WINDOW.days, max(1, math.ceil((now - first[bin_.pk]) / timedelta(days=1))))
            bin_.use_by_hour = [round(total / days, 4) for total in by_hour[bin_.pk]]
        else:
            bin_.use_by_hour = None
        has_window = bin_.variance_since is not None
        judge_variance(bin_, expected.get(bin_.pk, 0.0) if has_window else None, drops[bin_.pk])
        bin_.use_profiled_at = now
        bin_.empty_at = empty_at(bin_)


def profile_bins(now: datetime | None = None, chunk: int | None = None) -> dict:
    """Every bin not profiled for CONSUMPTION_PROFILE_EVERY_S, in chunks of locked rows (others skip)."""
    now = now or timezone.now()
    chunk = chunk or settings.CONSUMPTION_PROFILE_CHUNK
    stale = now - timedelta(seconds=settings.CONSUMPTION_PROFILE_EVERY_S)
    due = DeviceBin.objects.filter(Q(use_profiled_at__isnull=True) | Q(use_profiled_at__lte=stale))
    done, flagged, after = 0, 0, 0
    while True:
        with transaction.atomic():
            bins = list(due.filter(pk__gt=after).order_by("pk").select_for_update(skip_locked=True)[:chunk])
            if not bins:
                break
            _profile_chunk(bins, now)
            _write(bins, PROFILE_FIELDS)
        done, after = done + len(bins), bins[-1].pk
        flagged += sum(bin_.is_variance_flagged for bin_ in bins)
    return {"profiled": done, "variance_flagged": flagged}
