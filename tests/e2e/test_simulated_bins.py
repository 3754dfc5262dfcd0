"""The demo the materials issue asks for, end to end: simulated machines sell and drain their bins over
HTTP, staff rounds refill them (some refills unreported), and the server follows with alarms opened and
cleared, refill events from the machine and seen in the level, and a bin page that shows it all. The
periodic jobs (flush, forecast) run here as beat would run them."""

import asyncio

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role
from inventory.models import Refill, RefillSource
from inventory.tasks import forecast_bins
from operations.models import Alarm, AlarmType
from operations.tasks import flush_heartbeats
from simulator import run_fleet
from tests.e2e.conftest import in_thread
from tests.factories import UserFactory, merchant_with_catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def run_the_periodic_jobs():
    flush_heartbeats()
    forecast_bins()


async def test_a_simulated_fleet_drains_and_refills_its_bins_with_alarms_following(
    live_asgi_server, settings
):
    if not settings.REDIS_URL:
        pytest.skip(reason="the demo's quiet heartbeats are written behind through Redis, as in production")
    merchant = await in_thread(merchant_with_catalogue, name="Draining Coffee")
    fleet = asyncio.create_task(
        run_fleet(
            live_asgi_server.url,
            merchant.provisioning_secret,
            devices=4,
            duration_s=30,
            heartbeat_interval_s=0.25,
            offline_probability=0,
            serial_prefix="BIN",
            seed=11,
            refill_round_intervals=12,
            forget_refill_probability=0.5,
        )
    )
    while not fleet.done():
        await asyncio.sleep(1)
        await in_thread(run_the_periodic_jobs)
    stats = await fleet
    await in_thread(run_the_periodic_jobs)

    assert stats.registered == 4 and stats.heartbeats_failed == 0
    low = await in_thread(
        lambda: list(Alarm.objects.filter(device__merchant=merchant, type=AlarmType.MATERIAL_LOW))
    )
    assert low, "no bin went low"
    assert any(not alarm.is_active and alarm.clear_reason == "refilled" for alarm in low), "no alarm cleared"
    sources = await in_thread(
        lambda: set(Refill.objects.filter(device__merchant=merchant).values_list("source", flat=True))
    )
    assert {RefillSource.MACHINE, RefillSource.INFERRED} <= sources

    def admin_pages():
        client = Client()
        client.force_login(UserFactory(role=Role.VIEWER, merchants=[merchant]))
        bins = client.get(reverse("admin:inventory_bin_changelist"))
        refills = client.get(reverse("admin:inventory_refill_changelist") + "?source=inferred")
        return bins, refills

    bins, refills = await in_thread(admin_pages)
    assert bins.status_code == 200 and len(bins.context["cl"].result_list) > 0
    assert all(b.device.merchant_id == merchant.pk for b in bins.context["cl"].result_list)
    assert "BIN-0000" in bins.content.decode()
    assert refills.status_code == 200 and len(refills.context["cl"].result_list) > 0
