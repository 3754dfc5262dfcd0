"""The demo fleets and their week behind the dashboard: each merchant's simulated machines registered
through the registration service (the serials, models and aliases the live simulator will register, so
its re-registration just issues a new token), placed at the merchant's locations round robin, and
given the sales and connectivity of the week before `now`.

Once per machine: a machine that already has orders (seeded before, or sold live) is left as it is, so
seeding again adds nothing and a database the live fleet has been running on keeps its data.
"""

import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.utils import timezone

from accounts.models import Merchant
from coffeeshop.demo.connectivity import fold_hours, record_week
from coffeeshop.demo.history import refund_some, sell_week
from devices.models import Device
from devices.services.fleet import update_device_settings
from devices.services.registration import register_device
from orders.models import Order
from orders.services.rollups import rebuild_sales_rollups
from simulator import CHINA, UK, OrderNumbers, Region, build_fleet
from simulator.cli import default_state_file

HISTORY_DAYS = 7
# The rate the live fleets run at too (Procfile: --sales-per-hour $DEMO_SALES_PER_HOUR), so the day
# charts run on into today at the same height.
DEFAULT_SALES_PER_HOUR = 2.0
DEFAULT_FLEET_SIZE = 20
DEFAULT_LONDON_FLEET_SIZE = 3
DEFAULT_SEED = 13


@dataclass(frozen=True)
class DemoFleet:
    merchant: str
    serial_prefix: str
    size: int
    region: Region


def demo_fleets(fleet_size: int | None = None, london_fleet_size: int | None = None) -> list[DemoFleet]:
    """Shanghai's fleet (FLEET_SIZE machines, as `make run` exports it) and London's."""
    if fleet_size is None:
        fleet_size = int(os.environ.get("FLEET_SIZE") or DEFAULT_FLEET_SIZE)
    if london_fleet_size is None:
        london_fleet_size = int(os.environ.get("LONDON_FLEET_SIZE") or DEFAULT_LONDON_FLEET_SIZE)
    return [
        DemoFleet("Demo Coffee Co", "SIM", fleet_size, CHINA),
        DemoFleet("Bean Machine Ltd", "BML", london_fleet_size, UK),
    ]


def demo_sales_per_hour() -> float:
    return float(os.environ.get("DEMO_SALES_PER_HOUR") or DEFAULT_SALES_PER_HOUR)


@dataclass
class SeedReport:
    registered: int = 0
    with_history: int = 0
    orders: int = 0
    refunds: int = 0
    status_records: int = 0
    machines: dict[str, int] = field(default_factory=dict)


def history_start(now: datetime, zone: ZoneInfo) -> datetime:
    """The local midnight HISTORY_DAYS before today: full days behind today's dashboard."""
    first_day = timezone.localdate(now, zone) - timedelta(days=HISTORY_DAYS)
    return datetime.combine(first_day, time(), tzinfo=zone)


def register_machines(merchant: Merchant, machines) -> list[Device]:
    """The fleet's machines, registering those the server does not know yet and placing the
    merchant's unplaced machines at its locations, round robin (as staff would)."""
    serials = [machine.serial for machine in machines]
    known = set(Device.objects.filter(serial__in=serials).values_list("serial", flat=True))
    for machine in machines:
        if machine.serial not in known:
            identity = {name: getattr(machine, name) for name in ("serial", "model", "firmware", "alias")}
            register_device(provisioning_secret=merchant.provisioning_secret, **identity)
    locations = list(merchant.locations.order_by("pk"))
    if locations:
        placed = Device.objects.filter(merchant=merchant, location__isnull=False).count()
        unplaced = Device.objects.filter(merchant=merchant, location__isnull=True).order_by("serial")
        for n, device in enumerate(unplaced):
            update_device_settings(device, location=locations[(placed + n) % len(locations)])
    by_serial = {device.serial: device for device in Device.objects.filter(serial__in=serials)}
    return [by_serial[m.serial] for m in machines]


def seed_week(
    fleets: list[DemoFleet],
    *,
    refunded_by,
    data_dir: Path,
    now: datetime | None = None,
    sales_per_hour: float | None = None,
    seed: int = DEFAULT_SEED,
    history: bool = True,
) -> SeedReport:
    """Register the fleets and, unless `history` is off, write the week before `now` of each machine
    that has no order yet. The live simulator's order counters (its state file under `data_dir`) are
    moved past the history's numbers, so its first sale of today cannot reuse an order id."""
    now = now or timezone.now()
    sales_per_hour = demo_sales_per_hour() if sales_per_hour is None else sales_per_hour
    report = SeedReport()
    first_start = None
    for fleet in fleets:
        merchant = Merchant.objects.get(name=fleet.merchant)
        machines = build_fleet(fleet.size, fleet.serial_prefix, seed, fleet.region)
        before = Device.objects.filter(merchant=merchant).count()
        devices = register_machines(merchant, machines)
        report.registered += Device.objects.filter(merchant=merchant).count() - before
        report.machines[fleet.merchant] = len(devices)
        if not history or not machines:
            continue
        sold = set(Order.objects.filter(device__in=devices).values_list("device_id", flat=True).distinct())
        fresh = [(m, d) for m, d in zip(machines, devices, strict=True) if d.pk not in sold]
        if not fresh:
            continue
        zone = ZoneInfo(merchant.time_zone)
        start = history_start(now, zone)
        numbers = OrderNumbers(default_state_file(data_dir, fleet.serial_prefix))
        for machine, device in fresh:
            machine.next_order_number = numbers.first_free(machine.serial)
            rng = random.Random(f"{seed}:sales:{machine.serial}")
            report.orders += sell_week(
                machine, device, start=start, end=now, zone=zone, sales_per_hour=sales_per_hour, rng=rng
            )
        first_day, last_day = start.astimezone(UTC).date(), now.astimezone(UTC).date()
        rebuild_sales_rollups(merchant_id=merchant.pk, first_day=first_day, last_day=last_day)
        numbers.continue_after({machine.serial: machine.next_order_number for machine, _ in fresh})
        fresh_devices = [d for _, d in fresh]
        report.refunds += refund_some(
            [d.pk for d in fresh_devices],
            user=refunded_by,
            end=now,
            rng=random.Random(f"{seed}:refunds:{fleet.serial_prefix}"),
        )
        report.status_records += record_week(fresh_devices, start=start, end=now, seed=seed)
        first_start = start if first_start is None else min(first_start, start)
        Device.objects.filter(pk__in=[d.pk for d in fresh_devices], registered_at__gt=start).update(
            registered_at=start
        )
        report.with_history += len(fresh)
    if first_start is not None:
        fold_hours(first_start, now)
    return report
