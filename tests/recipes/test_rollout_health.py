"""A canary's health beside the machines still on the previous package: orders, sales and failed brews
per package version over the rollout's window, each counted under the package its machine ran."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from devices.models import Device
from operations.models import CommandType
from operations.services.commands import send_command
from orders.models import Order
from recipes.services import rollouts
from recipes.services.rollout_health import health_of
from tests.factories import DeviceFactory, OrderFactory
from tests.recipes.test_rollouts import heartbeat, package

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]
OLD, NEW = "2026.11.1", "2026.11.2"


@pytest.fixture
def machines(merchant, machine_client):
    package(merchant, OLD)
    return [
        machine_client(DeviceFactory(merchant=merchant, serial=f"HE-{n}", package_version=OLD))
        for n in range(4)
    ]


@pytest.fixture
def rollout(merchant, machines):
    """A canary of the first two machines; the first has installed the new package."""
    started = rollouts.start_rollout(
        package=package(merchant, NEW), devices=Device.objects.all(), canary={"count": 2}
    )
    heartbeat(machines[0], package_version=NEW)
    return started


def sell(client, order_id, *, made_at=None, status="paid", total="18.00"):
    reply = client.post(
        f"/api/v1/devices/{client.device.pk}/orders/create",
        {
            "order_id": order_id,
            "created_at": (made_at or timezone.now()).isoformat(),
            "currency": "CNY",
            "total": total,
            "payment": {"method": "wechat", "status": status, "transaction_id": f"wx-{order_id}"},
            "items": [{"product_id": "latte", "name": "Latte", "qty": 1, "unit_price": total}],
        },
        format="json",
    )
    assert reply.status_code == 201, reply.content


def fail_a_brew(client):
    command = send_command(client.device, CommandType.MAKE_PRODUCT, {"product_id": "latte", "options": {}})
    reply = client.post(
        f"/api/v1/devices/{client.device.pk}/commands/{command.pk}/result",
        {"status": "failed", "error": "grinder jammed"},
        format="json",
    )
    assert reply.status_code == 200, reply.content


def test_the_canary_and_the_previous_package_side_by_side(machines, rollout):
    installed, not_yet, _, on_old = machines
    sell(installed, "A-1")
    sell(installed, "A-2")
    sell(installed, "A-0", made_at=timezone.now() - timedelta(hours=1))  # a backlog made before the install
    sell(on_old, "D-1")
    sell(on_old, "D-2", status="failed")  # an order, not a sale
    heartbeat(installed, state="fault", package_version=NEW)
    fail_a_brew(not_yet)

    new, old = health_of(rollout)

    assert new == {
        "version": NEW,
        "machines": 1,
        "orders": 2,
        "sales": {"CNY": "36.00"},
        "failed_brews": 1,
        "failed_brew_rate_pct": 33.3,
    }
    assert old == {
        "version": OLD,
        "machines": 3,
        "orders": 3,
        "sales": {"CNY": "36.00"},
        "failed_brews": 1,
        "failed_brew_rate_pct": 25.0,
    }


def test_an_order_is_stamped_with_the_package_its_machine_last_reported(machines, rollout):
    sell(machines[0], "A-1")
    sell(machines[1], "B-1")

    assert dict(Order.objects.values_list("machine_order_id", "package_version")) == {"A-1": NEW, "B-1": OLD}


def test_what_happened_before_the_rollout_started_or_in_test_orders_is_left_out(machines, merchant):
    yesterday = timezone.now() - timedelta(days=1)
    OrderFactory(device=machines[0].device, received_at=yesterday, package_version=OLD)
    started = rollouts.start_rollout(
        package=package(merchant, NEW), devices=Device.objects.all(), canary={"count": 2}
    )
    OrderFactory(device=machines[1].device, is_test=True, package_version=OLD)

    new, old = health_of(started)

    assert (new["machines"], new["orders"], new["failed_brew_rate_pct"]) == (0, 0, None)
    assert (old["machines"], old["orders"], old["sales"]) == (4, 0, {})


def test_the_rollout_page_and_api_show_the_health_in_a_constant_number_of_queries(
    machines, rollout, make_user, merchant, client
):
    client.force_login(make_user(Role.OPS, merchants=[merchant]))
    api = reverse("rollout-detail", args=[rollout.pk])
    page = reverse("admin:recipes_rollout_change", args=[rollout.pk])
    sell(machines[0], "A-1")
    client.get(page)
    with CaptureQueriesContext(connection) as few_api:
        client.get(api)
    with CaptureQueriesContext(connection) as few_page:
        client.get(page)
    for n in range(5):
        sell(machines[n % 4], f"M-{n}")
        fail_a_brew(machines[n % 4])

    with CaptureQueriesContext(connection) as many_api:
        health = client.get(api).json()["data"]["health"]
    with CaptureQueriesContext(connection) as many_page:
        shown = client.get(page).content.decode()

    assert [row["version"] for row in health] == [NEW, OLD]
    assert sum(row["orders"] for row in health) == 6 and sum(row["failed_brews"] for row in health) == 5
    assert 'class="cs-rollout-health"' in shown and shown.count("CNY 54.00") == 2
    assert len(many_api) == len(few_api) and len(many_page) == len(few_page)


def test_the_list_leaves_the_health_to_each_rollouts_page(rollout, make_user, merchant, client):
    client.force_login(make_user(Role.VIEWER, merchants=[merchant]))

    (listed,) = client.get(reverse("rollout-list")).json()["data"]["results"]

    assert "health" not in listed and listed["id"] == rollout.pk
