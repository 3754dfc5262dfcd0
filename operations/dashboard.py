"""The dashboard's figures, one selector for the admin's home page and `GET /api/v1/dashboard/summary`.

Every figure is computed from what was recorded, never made up: sales are `orders.selectors.sales_of`
(paid orders net of refunds, test orders left out, one figure per currency), counted by when the
machine sold; days and hours are those of the time zone the reader reads in (their merchant's, see
accounts/time_zones.py); the online-rate history comes from the hours of recorded connectivity
(devices.DeviceStatusHour), and a day with no record has no point rather than a copy of today.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Q, Sum
from django.db.models.functions import ExtractHour, TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.tenancy import can_access_merchant
from accounts.time_zones import merchant_zone, time_zone_for
from coffeeshop.exceptions import Invalid
from devices.models import Device, DeviceState, DeviceStatusHour, Location
from inventory.models import Bin
from operations.models import UNFINISHED_COMMAND_STATUSES, Alarm, RemoteCommand, Severity
from orders.models import MONEY, Order, OrderItem
from orders.selectors import CENT, SOLD_STATUSES, net_amount, sales_of

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 7
TOP = 10


@dataclass(frozen=True)
class Scope:
    """What the reader looks at: their machines, maybe of one merchant or location, over local days."""

    user: object
    merchant_id: int | None
    location_id: int | None
    first_day: date
    last_day: date
    zone: object

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time(), tzinfo=self.zone)

    def mine(self, manager):
        """The reader's rows; a scope without a reader (a merchant's own report) sees its merchant's."""
        return manager.for_user(self.user) if self.user is not None else manager.all()

    def narrow(self, queryset, *, device_path: str):
        """`queryset` (already the user's) narrowed to the merchant and location chosen."""
        if self.merchant_id is not None:
            queryset = queryset.filter(**{f"{device_path}merchant_id": self.merchant_id})
        if self.location_id is not None:
            queryset = queryset.filter(**{f"{device_path}location_id": self.location_id})
        return queryset


def _invalid(name: str, message: str) -> Invalid:
    return Invalid(message, details={"fields": {name: [message]}})


def scope_for(user, *, first_day=None, last_day=None, merchant_id=None, location_id=None, now=None) -> Scope:
    """The scope of a request; raises Invalid naming the parameter that cannot be (another merchant's
    merchant or location is unknown, exactly like one that does not exist)."""
    if merchant_id is not None and not can_access_merchant(user, merchant_id):
        raise _invalid("merchant_id", _("unknown merchant"))
    if location_id is not None:
        location = Location.objects.for_user(user).filter(pk=location_id).first()
        if location is None or (merchant_id is not None and location.merchant_id != merchant_id):
            raise _invalid("location", _("unknown location"))
        merchant_id = location.merchant_id
    zone = time_zone_for(user, merchant_id)
    today = timezone.localdate(now or timezone.now(), zone)
    last_day = last_day or today
    first_day = first_day or last_day - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if first_day > last_day:
        raise _invalid("from", _("The range starts after it ends."))
    if (last_day - first_day).days >= MAX_RANGE_DAYS:
        raise _invalid("from", _("The range is longer than %(days)s days.") % {"days": MAX_RANGE_DAYS})
    return Scope(user, merchant_id, location_id, first_day, last_day, zone)


def merchant_scope(merchant, first_day: date, last_day: date) -> Scope:
    """The scope of a merchant's own report: its machines only, its days."""
    return Scope(None, merchant.pk, None, first_day, last_day, merchant_zone(merchant))


def _money(amount) -> str:
    return str(Decimal(amount or 0).quantize(CENT))


def _sold(scope: Scope):
    orders = scope.narrow(scope.mine(Order.objects), device_path="")
    return orders.filter(is_test=False, payment_status__in=SOLD_STATUSES)


def _in_range(orders, scope: Scope):
    return orders.filter(device_created_at__gte=scope.start, device_created_at__lt=scope.end)


def sold_in_range(scope: Scope):
    """The sold orders of the scope's range: what every sales figure counts (analytics too)."""
    return _in_range(_sold(scope), scope)


def machine_counts(scope: Scope) -> dict:
    machines = scope.narrow(scope.mine(Device.objects), device_path="")
    counts = machines.aggregate(
        total=Count("pk"),
        online=Count("pk", filter=Q(is_online=True)),
        in_fault=Count("pk", filter=Q(state=DeviceState.FAULT)),
    )
    counts["offline"] = counts["total"] - counts["online"]
    counts["online_rate"] = round(counts["online"] / counts["total"], 4) if counts["total"] else None
    return counts


def sales_figures(orders) -> list[dict]:
    """sales_of, with the average ticket of each currency."""
    figures = sales_of(orders)
    for figure in figures:
        figure["average_ticket"] = _money(Decimal(figure["amount"]) / figure["orders"])
    return figures


def _sales_by(scope: Scope, name: str, bucket, label) -> list[dict]:
    """Sold orders of the range by `bucket` (an expression of the sale's local time) and currency."""
    rows = (
        _in_range(_sold(scope), scope)
        .annotate(bucket=bucket)
        .values("bucket", "currency")
        .annotate(orders=Count("pk"), amount=Sum(net_amount()))
        .order_by("bucket", "currency")
    )
    return [
        {
            name: label(r["bucket"]),
            "currency": r["currency"],
            "orders": r["orders"],
            "amount": _money(r["amount"]),
        }
        for r in rows
    ]


def sales_per_day(scope: Scope) -> list[dict]:
    return _sales_by(scope, "date", TruncDate("device_created_at", tzinfo=scope.zone), date.isoformat)


def sales_per_hour(scope: Scope) -> list[dict]:
    return _sales_by(scope, "hour", ExtractHour("device_created_at", tzinfo=scope.zone), int)


def online_rate_per_day(scope: Scope) -> list[dict]:
    """Per local day, the share of known machine-time that was online, from the folded hours."""
    hours = scope.narrow(scope.mine(DeviceStatusHour.objects), device_path="device__").filter(
        hour__gte=scope.start, hour__lt=scope.end
    )
    rows = (
        hours.annotate(day=TruncDate("hour", tzinfo=scope.zone))
        .values("day")
        .annotate(online=Sum("online_s"), known=Sum("known_s"))
        .order_by("day")
    )
    return [
        {"date": r["day"].isoformat(), "online_rate": round(r["online"] / r["known"], 4)}
        for r in rows
        if r["known"]
    ]


def top_products(scope: Scope) -> list[dict]:
    items = OrderItem.objects.filter(order__in=_in_range(_sold(scope), scope))
    rows = (
        items.values("product_id", "name", "order__currency")
        .annotate(sold=Sum("qty"), amount=Sum(F("qty") * F("unit_price"), output_field=DecimalField(**MONEY)))
        .order_by("-sold", "product_id")[:TOP]
    )
    return [
        {
            "product_id": r["product_id"],
            "name": r["name"],
            "currency": r["order__currency"],
            "qty": r["sold"],
            "amount": _money(r["amount"]),
        }
        for r in rows
    ]


def top_and_silent_machines(scope: Scope) -> dict:
    sold = _in_range(_sold(scope), scope)
    top = (
        sold.values("device_id", "device__serial", "device__alias", "currency")
        .annotate(orders=Count("pk"), amount=Sum(net_amount()))
        .order_by("-orders", "device_id")[:TOP]
    )
    machines = scope.narrow(scope.mine(Device.objects), device_path="")
    silent = machines.exclude(pk__in=sold.values("device_id")).order_by("-is_online", "serial")
    return {
        "top": [
            {
                "device_id": r["device_id"],
                "name": r["device__alias"] or r["device__serial"],
                "currency": r["currency"],
                "orders": r["orders"],
                "amount": _money(r["amount"]),
            }
            for r in top
        ],
        "silent": [
            {
                "device_id": d.pk,
                "name": d.alias or d.serial,
                "is_online": d.is_online,
                "last_seen_at": d.last_seen_at,
            }
            for d in silent.only("pk", "alias", "serial", "is_online", "last_seen_at")[:TOP]
        ],
    }


def open_alarms(scope: Scope) -> dict:
    alarms = scope.narrow(scope.mine(Alarm.objects), device_path="device__").filter(is_active=True)
    return alarms.aggregate(
        **{severity: Count("pk", filter=Q(severity=severity)) for severity in Severity.values},
        unacknowledged=Count("pk", filter=Q(acknowledged_at__isnull=True)),
    )


def bin_counts(scope: Scope) -> dict:
    bins = scope.narrow(scope.mine(Bin.objects), device_path="device__")  # each bin knows its state
    return bins.aggregate(low=Count("pk", filter=Q(state="low")), empty=Count("pk", filter=Q(state="empty")))


def running_rollouts(scope: Scope) -> int:
    from recipes.models import Rollout

    rollouts = scope.mine(Rollout.objects).filter(status__in=Rollout.ACTIVE)
    if scope.merchant_id is not None:
        rollouts = rollouts.filter(merchant_id=scope.merchant_id)
    return rollouts.count()


def dashboard_summary(scope: Scope, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localdate(now, scope.zone)
    today_start = datetime.combine(today, time(), tzinfo=scope.zone)
    commands = scope.narrow(scope.mine(RemoteCommand.objects), device_path="device__")
    sold = _sold(scope)
    return {
        "time_zone": str(scope.zone),
        "from": scope.first_day.isoformat(),
        "to": scope.last_day.isoformat(),
        "machines": machine_counts(scope),
        "sales_today": sales_figures(sold.filter(device_created_at__gte=today_start)),
        "sales": sales_figures(_in_range(sold, scope)),
        "open_alarms": open_alarms(scope),
        "bins": bin_counts(scope),
        "pending_commands": commands.filter(status__in=UNFINISHED_COMMAND_STATUSES).count(),
        "running_rollouts": running_rollouts(scope),
        "sales_per_day": sales_per_day(scope),
        "sales_per_hour": sales_per_hour(scope),
        "online_rate_per_day": online_rate_per_day(scope),
        "top_products": top_products(scope),
        **{f"{k}_machines": v for k, v in top_and_silent_machines(scope).items()},
    }
