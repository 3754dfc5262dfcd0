"""How a rollout's machines fare per package version while it runs: the canary beside the machines
still on the previous package, so that a bad package shows before the next wave takes it.

Over the rollout's window (from its start to its end, or now), for the rollout's machines only:
- an order counts under the package its machine ran when the order was received (stamped on the order
  at ingest, from the machine's last reported `package_version`), except an order of a backlog that was
  made (machine clock) before its machine installed this rollout's package and arrived after it: it
  counts under the package it was made with, the machine's previous one;
- a failed brew is a `make_product` command the machine answered `failed`, or the machine going into
  `fault` (a state change in its status history), counted under the package it ran at that moment
  (this rollout's once it installed it, its previous one before);
- the failed-brew rate is failed brews over brew attempts (orders plus failed brews), in percent.
Four queries whatever the number of machines and orders.
"""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db.models import BooleanField, Count, ExpressionWrapper, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from devices.models import DeviceState, DeviceStatusHistory, StatusEvent
from operations.models import CommandStatus, CommandType, RemoteCommand
from orders.models import Order, PaymentStatus
from recipes.models import Rollout, RolloutMachine

NOT_A_SALE = (PaymentStatus.FAILED, PaymentStatus.UNPAID)


def health_of(rollout: Rollout, now: datetime | None = None) -> list[dict]:
    """One row per package version the rollout's machines ran in its window, this rollout's first:
    `version`, `machines` (running it at the window's end), `orders`, `sales` (by currency, paid at the
    machine), `failed_brews` and `failed_brew_rate_pct` (None before any attempt)."""
    since, until = rollout.created_at, rollout.finished_at or now or timezone.now()
    new = rollout.package.version
    installed_at, previous = {}, {}
    for device_id, status, previous_version, finished_at in rollout.machines.values_list(
        "device_id", "status", "previous_version", "finished_at"
    ):
        previous[device_id] = previous_version
        if status == RolloutMachine.Status.INSTALLED:
            installed_at[device_id] = finished_at

    def version_at(device_id: int, moment: datetime) -> str:
        at = installed_at.get(device_id)
        return new if at is not None and moment >= at else previous[device_id]

    rows: dict[str, dict] = defaultdict(
        lambda: {"machines": 0, "orders": 0, "sales": defaultdict(Decimal), "failed_brews": 0}
    )
    _ = rows[new]  # this rollout's package has its row from the start, machines or not
    for device_id in previous:
        rows[version_at(device_id, until)]["machines"] += 1
    for order in _orders_by_machine_and_version(rollout, since, until):
        version = order["package_version"]
        if version == new and order["made_before_install"]:
            version = previous[order["device_id"]]
        row = rows[version]
        row["orders"] += order["orders"]
        if order["sales"] is not None:
            row["sales"][order["currency"]] += order["sales"]
    for device_id, moment in _failed_brews(rollout, since, until):
        rows[version_at(device_id, moment)]["failed_brews"] += 1
    ordered = sorted(rows, key=lambda version: (version != new, -rows[version]["machines"], version))
    return [_shown(version, rows[version]) for version in ordered]


def _shown(version: str, row: dict) -> dict:
    attempts = row["orders"] + row["failed_brews"]
    return {
        "version": version,
        "machines": row["machines"],
        "orders": row["orders"],
        "sales": {currency: f"{total:.2f}" for currency, total in sorted(row["sales"].items())},
        "failed_brews": row["failed_brews"],
        "failed_brew_rate_pct": round(100 * row["failed_brews"] / attempts, 1) if attempts else None,
    }


def _orders_by_machine_and_version(rollout: Rollout, since: datetime, until: datetime):
    installed = RolloutMachine.objects.filter(
        rollout=rollout, device_id=OuterRef("device_id"), status=RolloutMachine.Status.INSTALLED
    ).values("finished_at")[:1]
    return (
        Order.objects.filter(
            device_id__in=rollout.machines.values("device_id"),
            received_at__gte=since,
            received_at__lte=until,
            is_test=False,
        )
        .annotate(
            made_before_install=ExpressionWrapper(
                Q(device_created_at__lt=Subquery(installed)), output_field=BooleanField()
            )
        )
        .values("device_id", "package_version", "made_before_install", "currency")
        .annotate(orders=Count("pk"), sales=Sum("total", filter=~Q(payment_status__in=NOT_A_SALE)))
        .order_by()
    )


def _failed_brews(rollout: Rollout, since: datetime, until: datetime) -> list[tuple[int, datetime]]:
    machines = rollout.machines.values("device_id")
    failed_commands = RemoteCommand.objects.filter(
        type=CommandType.MAKE_PRODUCT, status=CommandStatus.FAILED
    ).values_list("device_id", "finished_at")
    faults = DeviceStatusHistory.objects.filter(
        event=StatusEvent.STATE_CHANGED, state=DeviceState.FAULT
    ).values_list("device_id", "recorded_at")
    return [
        *failed_commands.filter(device_id__in=machines, finished_at__range=(since, until)),
        *faults.filter(device_id__in=machines, recorded_at__range=(since, until)),
    ]
