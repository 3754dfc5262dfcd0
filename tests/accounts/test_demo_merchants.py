"""The demo data shows two merchants in different time zones and currencies, and loads twice unchanged."""

import pytest
from django.core.management import call_command

from accounts.models import Merchant
from devices.models import Location

pytestmark = pytest.mark.django_db


def test_the_demo_has_two_merchants_in_different_zones_and_currencies_and_loads_idempotently(
    settings, tmp_path
):
    settings.DATA_DIR = tmp_path  # where the demo fleets' order counters go
    for _ in range(2):
        call_command("seed-demo", "--fleet-size=1", "--london-fleet-size=1", "--no-history", verbosity=0)

    merchants = {m.name: (m.time_zone, m.currency) for m in Merchant.objects.all()}
    assert merchants == {
        "Demo Coffee Co": ("Asia/Shanghai", "CNY"),
        "Bean Machine Ltd": ("Europe/London", "GBP"),
    }
    assert Location.objects.filter(merchant__name="Bean Machine Ltd", city="London").count() == 2
