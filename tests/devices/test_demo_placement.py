"""The demo fleet stands somewhere: simulate-fleet places its merchant's unplaced machines at the
merchant's locations, round robin, as staff would (so the demo's pick list has machines to visit)."""

import importlib

import pytest

from tests.factories import DeviceFactory, LocationFactory

pytestmark = pytest.mark.django_db

simulate_fleet = importlib.import_module("devices.management.commands.simulate-fleet")


def test_unplaced_machines_are_placed_round_robin_and_placed_ones_stay(merchant, other_merchant):
    hall = LocationFactory(merchant=merchant, name="Hall")
    lobby = LocationFactory(merchant=merchant, name="Lobby")
    kept = DeviceFactory(merchant=merchant, location=hall)
    new = [DeviceFactory(merchant=merchant, location=None) for _ in range(3)]
    elsewhere = DeviceFactory(merchant=other_merchant, location=None)

    assert simulate_fleet.place_unplaced_machines(merchant.provisioning_secret) == 3
    assert simulate_fleet.place_unplaced_machines(merchant.provisioning_secret) == 0

    for device in (kept, *new, elsewhere):
        device.refresh_from_db()
    assert kept.location == hall
    assert [d.location for d in new] == [lobby, hall, lobby]
    assert elsewhere.location is None
