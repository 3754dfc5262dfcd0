"""What a machine's readings mean: each rule that several parts of the product judge by, once.

The heartbeat's quiet lane, the full path and the alarms all ask these questions; none of them
answers it again.
"""

from django.conf import settings


def brewing_range_c() -> tuple[float, float]:
    """The temperatures (°C, both ends included) a machine brews at (`BREW_TEMPERATURE_MIN_C/_MAX_C`)."""
    return settings.BREW_TEMPERATURE_RANGE_C


def temperature_in_range(temperature_c: float | None) -> bool:
    """Whether a reading is in the brewing range; a machine that reports no temperature is not out of it."""
    low, high = brewing_range_c()
    return temperature_c is None or low <= temperature_c <= high


def bin_is_empty(remaining: float) -> bool:
    return remaining <= 0


def bin_is_low(level_pct: float, low_threshold_pct: float) -> bool:
    """At or under its threshold; an empty bin is low too."""
    return level_pct <= low_threshold_pct
