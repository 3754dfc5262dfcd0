"""The rules a machine's readings are judged by, each in one function that every path asks."""

import pytest

from devices.rules import bin_is_empty, bin_is_low, temperature_in_range
from devices.services import StatusReading
from devices.services.heartbeat import status_fingerprint
from operations.models import Alarm, AlarmType
from operations.services import alarms
from tests.factories import DeviceBinFactory


@pytest.mark.parametrize(
    ("temperature_c", "in_range"),
    [(None, True), (80.0, True), (92.5, True), (98.0, True), (79.9, False), (98.1, False), (-5.0, False)],
)
def test_a_temperature_is_in_the_brewing_range_with_both_ends_included(temperature_c, in_range):
    assert temperature_in_range(temperature_c) is in_range


def test_the_brewing_range_comes_from_the_settings_for_every_path(settings, registered):
    """Narrow the range: the quiet lane's fingerprint and the alarms change their mind together."""
    device = registered.device
    reading = StatusReading(state="idle", temperature_c=96.0)
    before = status_fingerprint(reading)
    alarms.temperature_reported(device, 96.0)
    assert not Alarm.objects.filter(device=device, type=AlarmType.TEMPERATURE_OUT_OF_RANGE).exists()

    settings.BREW_TEMPERATURE_RANGE_C = (80.0, 95.0)
    assert status_fingerprint(reading) != before, "96 °C is news once it is out of range"
    alarms.temperature_reported(device, 96.0)
    alarm = Alarm.objects.get(device=device, type=AlarmType.TEMPERATURE_OUT_OF_RANGE, is_active=True)
    assert "80–95 °C" in alarm.message


@pytest.mark.parametrize(
    ("level_pct", "threshold_pct", "low"),
    [(15.0, 15.0, True), (14.9, 15.0, True), (15.1, 15.0, False), (0, 0, True)],
)
def test_a_bin_at_or_under_its_threshold_is_low(level_pct, threshold_pct, low):
    assert bin_is_low(level_pct, threshold_pct) is low


@pytest.mark.parametrize(("remaining", "empty"), [(0, True), (-1, True), (0.5, False)])
def test_a_bin_with_nothing_left_is_empty(remaining, empty):
    assert bin_is_empty(remaining) is empty


def test_the_bin_page_and_the_alarms_agree_on_a_low_bin(registered):
    """The bin's own `is_low` (shown in the admin and the API) is what opens the low-stock alarm."""
    device = registered.device
    bin_ = DeviceBinFactory(device=device, index=1, capacity=1000, remaining=10, level_pct=80)
    bin_.level_pct = bin_.low_threshold_pct
    bin_.save()
    alarms.bins_reported(device, [bin_])
    assert bin_.is_low and not bin_.is_empty
    assert Alarm.objects.filter(device=device, type=AlarmType.MATERIAL_LOW, bin_index=bin_.index).exists()
