"""/metrics carries the business figures, parsed as Prometheus parses them, and they move with the fleet."""

from decimal import Decimal

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from devices.models import Device
from operations.models import AlarmType, Severity
from operations.services import alarms, commands
from orders.models import PaymentStatus
from recipes.services import rollouts
from tests.factories import DeviceBinFactory, DeviceFactory, OrderFactory
from tests.recipes.test_rollouts import package

pytestmark = pytest.mark.django_db


def scraped() -> dict[tuple, float]:
    """Every coffeeshop_* sample as {(name, frozenset(labels)): value}."""
    reply = Client().get("/metrics")
    assert reply.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.content.decode())
        if family.name.startswith("coffeeshop_")
        for sample in family.samples
    }


def value(samples, name, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def business(merchant, other_merchant, make_user):
    lobby = DeviceFactory(merchant=merchant, is_online=True, state="idle")
    DeviceFactory(merchant=merchant, is_online=True, state="idle")
    broken = DeviceFactory(merchant=merchant, is_online=False, state="fault")
    DeviceFactory(merchant=other_merchant, is_online=True, state="brewing")
    DeviceBinFactory(device=lobby, index=1, material_code="MILK-POWDER", remaining=50, level_pct=5)
    DeviceBinFactory(device=lobby, index=2, material_code="SUGAR", remaining=0, level_pct=0)
    DeviceBinFactory(device=lobby, index=3, material_code="BEAN-ARABICA", remaining=800, level_pct=80)
    commands.send_command(lobby, "clean", {"program": "rinse"}, user=make_user(merchants=[merchant]))
    alarms.open_or_bump_alarm(broken, AlarmType.OFFLINE, Severity.CRITICAL, message="Gone")
    OrderFactory(device=lobby, total=Decimal("18.00"))
    OrderFactory(device=lobby, total=Decimal("30.00"), payment_status=PaymentStatus.UNPAID)
    machines = Device.objects.filter(pk=lobby.pk)
    rollouts.start_rollout(package=package(merchant, "2026.12.7"), devices=machines, canary={"count": 1})
    return lobby, broken


def test_the_business_figures_are_on_metrics(business, merchant, other_merchant):
    samples = scraped()

    a, b = merchant.name, other_merchant.name
    assert value(samples, "coffeeshop_machines", merchant=a, connectivity="online", state="idle") == 2
    assert value(samples, "coffeeshop_machines", merchant=a, connectivity="offline", state="fault") == 1
    assert value(samples, "coffeeshop_machines", merchant=b, connectivity="online", state="brewing") == 1
    assert value(samples, "coffeeshop_online_rate", merchant=a) == pytest.approx(2 / 3)
    assert value(samples, "coffeeshop_pending_commands", type="clean") == 1
    assert (
        value(samples, "coffeeshop_orders_today", merchant=a, currency="CNY") == 1
    )  # the unpaid one is no sale
    assert value(samples, "coffeeshop_sales_today", merchant=a, currency="CNY") == 18.0
    assert value(samples, "coffeeshop_open_alarms", merchant=a, severity="critical") == 1
    assert value(samples, "coffeeshop_low_bins", merchant=a) == 2
    assert value(samples, "coffeeshop_empty_bins", merchant=a) == 1
    assert value(samples, "coffeeshop_rollouts_in_progress", merchant=a) == 1
    assert value(samples, "coffeeshop_orders_today", merchant=b, currency="CNY") is None


def test_the_figures_move_when_the_fleet_does(business, merchant):
    lobby, broken = business
    Device.objects.filter(pk=broken.pk).update(is_online=True, state="idle")
    OrderFactory(device=lobby, total=Decimal("20.00"))

    samples = scraped()

    assert value(samples, "coffeeshop_online_rate", merchant=merchant.name) == 1.0
    assert (
        value(samples, "coffeeshop_machines", merchant=merchant.name, connectivity="online", state="idle")
        == 3
    )
    assert value(samples, "coffeeshop_sales_today", merchant=merchant.name, currency="CNY") == 38.0


def test_metrics_still_answer_when_the_figures_cannot_be_read(business, monkeypatch):
    from django.db import OperationalError

    from coffeeshop.business_metrics import BusinessCollector

    def database_gone(self):
        raise OperationalError("the database is restarting")
        yield  # a generator, as the real one

    monkeypatch.setattr(BusinessCollector, "_figures", database_gone)

    samples = scraped()

    assert value(samples, "coffeeshop_business_metrics_up") == 0
    # Leave out what this process counts of its own (workers, Celery tasks, shed requests): not figures.
    own = ("coffeeshop_web_workers", "coffeeshop_celery_tasks", "coffeeshop_requests_shed")
    figures = [name for name, _labels in samples if not name.startswith(own)]
    assert figures == ["coffeeshop_business_metrics_up"]


def open_alarms(samples, merchant) -> float:
    return sum(
        figure
        for (name, labels), figure in samples.items()
        if name == "coffeeshop_open_alarms" and ("merchant", merchant.name) in labels
    )


def test_a_heartbeat_an_order_and_an_alarm_through_the_machine_api_move_the_scraped_figures(
    machine, merchant
):
    """The same figures, moved by what a machine sends (not by writing the rows by hand)."""
    from django.utils import timezone

    from devices.services import flush_heartbeats
    from tests.conftest import protocol_order

    def beat(**body):
        status = {"state": "idle", **body}
        reply = machine.post(f"/api/v1/devices/{machine.device.pk}/status", status, format="json")
        assert reply.status_code == 200, reply.content
        flush_heartbeats()  # with Redis a heartbeat is written behind

    before = scraped()
    assert value(before, "coffeeshop_online_rate", merchant=merchant.name) in (None, 0)

    beat()
    online = scraped()
    assert value(online, "coffeeshop_online_rate", merchant=merchant.name) == 1.0
    labels = {"merchant": merchant.name, "connectivity": "online", "state": "idle"}
    assert value(online, "coffeeshop_machines", **labels) == 1

    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/orders/create",
        protocol_order(created_at=timezone.now().isoformat()),
        format="json",
    )
    assert reply.status_code in (200, 201), reply.content
    sold = scraped()
    assert value(sold, "coffeeshop_orders_today", merchant=merchant.name, currency="CNY") == 1
    assert value(sold, "coffeeshop_sales_today", merchant=merchant.name, currency="CNY") == 36.0
    assert open_alarms(sold, merchant) == 0

    beat(temperature_c=104)
    beat(temperature_c=105)
    assert open_alarms(scraped(), merchant) == 1

    beat(temperature_c=93)  # cooled down: the alarm clears
    assert open_alarms(scraped(), merchant) == 0
