"""What a machine's readings mean: each rule that several parts of the product judge by, once.

The heartbeat's quiet lane, the full path and the alarms all ask these questions; none of them
answers it again.
"""

from collections.abc import Callable

from django.conf import settings

DEFAULT_LOW_THRESHOLD_PCT = 15.0


def brewing_range_c() -> tuple[float, float]:
    """The temperatures (°C, both ends included) a machine brews at (`BREW_TEMPERATURE_MIN_C/_MAX_C`)."""
    return settings.BREW_TEMPERATURE_RANGE_C


def temperature_in_range(temperature_c: float | None) -> bool:
    """Whether a reading is in the brewing range; a machine that reports no temperature is not out of it."""
    low, high = brewing_range_c()
    return temperature_c is None or low <= temperature_c <= high


def level_pct_of(remaining: float, capacity: float) -> float:
    """A bin's fill level in percent, one decimal, within [0, 100]."""
    return round(min(100.0, max(0.0, remaining / capacity * 100)), 1)


def bin_is_empty(remaining: float) -> bool:
    return remaining <= 0


def bin_is_low(level_pct: float, low_threshold_pct: float) -> bool:
    """At or under its threshold; an empty bin is low too."""
    return level_pct <= low_threshold_pct


# (merchant id, material code) -> the material's default low threshold, or None for an unknown code.
ThresholdSource = Callable[[int, str], float | None]
_threshold_source: ThresholdSource | None = None


def use_threshold_source(source: ThresholdSource | None) -> None:
    """Where a new bin's threshold comes from: the material catalogue registers itself here when the
    apps load (devices stands below inventory and cannot import it)."""
    global _threshold_source
    _threshold_source = source


def low_threshold_for(merchant_id: int, material_code: str) -> float:
    """The threshold a bin starts with: its material's default, else DEFAULT_LOW_THRESHOLD_PCT."""
    found = _threshold_source(merchant_id, material_code) if _threshold_source else None
    return DEFAULT_LOW_THRESHOLD_PCT if found is None else float(found)
