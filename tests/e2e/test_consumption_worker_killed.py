"""The consumption job whose Celery worker is SIGKILLed midway is finished by the next run (as beat
sends it every minute): every sold item booked exactly once, every bin profiled. Real worker
processes, real Redis."""

import os
import secrets
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import DeviceBin
from inventory.models import Consumption, LedgerCursor
from inventory.tasks import book_consumption
from orders.models import Order, OrderItem
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for
from tests.factories import (
    DeviceBinFactory,
    DeviceFactory,
    MaterialFactory,
    OrderFactory,
    RecipeFactory,
    RecipeVersionFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES, ORDERS_EACH = 20, 150
# Small chunks: many transactions, so the kill lands between two of them.
WORKER_ENV = {"CONSUMPTION_ORDER_CHUNK": "20", "CONSUMPTION_SETTLE_S": "0"}


def test_a_consumption_run_whose_worker_is_killed_is_finished_by_the_next_booking_each_item_once(
    django_db_blocker, tmp_path, merchant
):
    for code, kind in (("BEAN-ARABICA", "bean"), ("MILK-POWDER", "powder"), ("WATER", "water")):
        MaterialFactory(merchant=merchant, code=code, kind=kind)
    RecipeVersionFactory(recipe=RecipeFactory(merchant=merchant, product_id="latte"), status="published")
    devices = [DeviceFactory(merchant=merchant) for _ in range(MACHINES)]
    for device in devices:
        for index, code in enumerate(("BEAN-ARABICA", "MILK-POWDER", "WATER"), start=1):
            DeviceBinFactory(device=device, index=index, material_code=code, capacity=100000, remaining=50000)
    start = timezone.now() - timedelta(hours=2)
    times = [start + timedelta(seconds=n) for n in range(ORDERS_EACH)]
    orders = Order.objects.bulk_create(
        OrderFactory.build(device=device, device_created_at=at, received_at=at)
        for at in times
        for device in devices
    )
    OrderItem.objects.bulk_create(
        OrderItem(order=order, position=0, product_id="latte", name="Latte", qty=1, unit_price="18.00",
                  recipe_version="1")
        for order in orders
    )  # fmt: skip
    total = 3 * len(orders)  # beans, milk and water of each latte
    queue = f"e2e-consumption-kill-{os.getpid()}-{secrets.token_hex(3)}"

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV) as first:
        book_consumption.apply_async(queue=queue)
        wait_for(Consumption.objects.exists, timeout_s=60, what="the booking to start", every_s=0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    booked_by_the_first = Consumption.objects.count()
    assert 0 < booked_by_the_first < total, "the worker was killed after the booking finished: no test"

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV):
        book_consumption.apply_async(queue=queue)  # the next minute's run
        wait_for(
            lambda: not DeviceBin.objects.filter(use_profiled_at=None).exists(),
            timeout_s=180,
            what="the next run to book and profile",
            every_s=0.2,
        )

    assert Consumption.objects.count() == total
    assert Consumption.objects.filter(bin=None).count() == 0
    last = Order.objects.order_by("received_at", "pk").last()
    assert (LedgerCursor.objects.get().received_at, LedgerCursor.objects.get().order_id) == (
        last.received_at,
        last.pk,
    )
    beans = DeviceBin.objects.filter(material_code="BEAN-ARABICA")
    assert {sum(bin_.use_by_hour) for bin_ in beans} == {ORDERS_EACH * 18}  # all sold within a day
