"""The dashboard's figures, one selector for the admin's home page and `GET /api/v1/dashboard/summary`.

Every figure is computed from what was recorded, never made up: sales are counted as
`orders.selectors.sales_of` counts them (paid orders net of refunds, test orders left out, one figure
per currency), by when the machine sold, and read from the hourly rollups of the orders
(orders.models.MerchantSalesHour, or the machines' SalesHour where a location is chosen, kept with
every order and refund) wherever whole UTC hours make up the reader's days, else from the orders
themselves (sales_source); machines are ranked on their days (DeviceSalesDay) and the hours or orders
at the range's edges (top_and_silent_machines); days and hours are those of the time
zone the reader reads in (their merchant's, see accounts/time_zones.py); the online-rate history comes
from the hours of recorded connectivity (devices.DeviceStatusHour), and a day with no record has no
point rather than a copy of today.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import partial

from django.db.models import Aggregate, Count, DecimalField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.db.models.functions import ExtractHour, TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.tenancy import can_access_merchant
from accounts.time_zones import merchant_zone, time_zone_for
from coffeeshop.exceptions import Invalid
from devices.models import Device, DeviceState, DeviceStatusHour, Location
from inventory.models import Bin
from operations import machine_ranking
from operations.models import UNFINISHED_COMMAND_STATUSES, Alarm, RemoteCommand, Severity
from orders.models import (
    MONEY,
    MerchantProductSalesHour,
    MerchantSalesHour,
    Order,
    OrderItem,
    ProductSalesHour,
    SalesHour,
)
from orders.selectors import SOLD_STATUSES, money_text, net_amount, sales_of

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


def hours_cut_days(zone, first_day: date, last_day: date) -> bool:
    """Whether UTC hours cut the local days `first_day`..`last_day` and their hours exactly: only where
    the zone is a whole number of hours from UTC on each of them (not Asia/Kolkata's +5:30, nor Lord
    Howe's +10:30 outside summer). Offsets change at most once a day, so its midnights tell."""
    day = first_day
    while day <= last_day + timedelta(days=1):
        if datetime.combine(day, time(), tzinfo=zone).utcoffset() % timedelta(hours=1):
            return False
        day += timedelta(days=1)
    return True


@dataclass(frozen=True)
class Sales:
    """Where the sales figures are read: the reader's sold orders, or the hours they were rolled up
    into (orders.models.SalesHour, ProductSalesHour, or the merchants' ones), which cost the same at
    any number of orders."""

    rows: QuerySet
    when: str
    orders: Aggregate
    amount: Aggregate
    product_lines: Callable  # the sold rows of the range -> their products, with `currency` and `line`
    from_orders: bool = False


def sales_source(
    scope: Scope, now: datetime, *, from_orders: bool = False, per_machine: bool = True
) -> Sales:
    """The hourly rollups wherever they give the exact figures (hours_cut_days), else the orders;
    `from_orders` forces the orders (the benchmark compares both). Without `per_machine`, the rollups are
    the merchants' (no machine or location in them) unless a location is chosen."""
    today = timezone.localdate(now, scope.zone)
    exact = hours_cut_days(scope.zone, scope.first_day, scope.last_day) and hours_cut_days(
        scope.zone, today, today
    )
    if from_orders or not exact:
        return _orders_source(scope)
    if per_machine or scope.location_id is not None:
        hour_models = (SalesHour, ProductSalesHour)
    else:
        hour_models = (MerchantSalesHour, MerchantProductSalesHour)
    hours, products = (scope.narrow(scope.mine(model.objects), device_path="") for model in hour_models)
    return Sales(hours, "hour", Sum("orders"), Sum("amount"), partial(_hour_lines, products, scope))


def _orders_source(scope: Scope) -> Sales:
    sold = scope.narrow(scope.mine(Order.objects), device_path="")
    sold = sold.filter(is_test=False, payment_status__in=SOLD_STATUSES)
    return Sales(sold, "device_created_at", Count("pk"), Sum(net_amount()), _order_lines, from_orders=True)


def _order_lines(sold_in_range):
    lines = OrderItem.objects.filter(order__in=sold_in_range)
    return lines.annotate(
        currency=F("order__currency"),
        line=ExpressionWrapper(F("qty") * F("unit_price"), DecimalField(**MONEY)),
    )


def _hour_lines(products, scope: Scope, hours_in_range):
    return products.filter(hour__gte=scope.start, hour__lt=scope.end).annotate(line=F("amount"))


def sales_in_range(sales: Sales, scope: Scope):
    return sales.rows.filter(**{f"{sales.when}__gte": scope.start, f"{sales.when}__lt": scope.end})


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
    return _with_average_ticket(sales_of(orders))


def _with_average_ticket(figures: list[dict]) -> list[dict]:
    for figure in figures:
        figure["average_ticket"] = money_text(Decimal(figure["amount"]) / figure["orders"])
    return figures


def _sales_totals(sales: Sales, rows) -> list[dict]:
    """Like sales_figures, from either source: one entry per currency."""
    totals = (
        rows.order_by().values("currency").annotate(n=sales.orders, total=sales.amount).order_by("currency")
    )
    return _with_average_ticket(
        [{"currency": r["currency"], "orders": r["n"], "amount": money_text(r["total"])} for r in totals]
    )


def _sales_by(sales: Sales, scope: Scope, name: str, bucket, label) -> list[dict]:
    """Sales of the range by `bucket` (an expression of the sale's local time) and currency."""
    rows = (
        sales_in_range(sales, scope)
        .annotate(bucket=bucket)
        .values("bucket", "currency")
        .annotate(n=sales.orders, total=sales.amount)
        .order_by("bucket", "currency")
    )
    return [
        {
            name: label(r["bucket"]),
            "currency": r["currency"],
            "orders": r["n"],
            "amount": money_text(r["total"]),
        }
        for r in rows
    ]


def _sales_from_orders(scope: Scope, sales: Sales, today_start: datetime) -> dict:
    """Sales today, over the range, per day and per hour of the day, each read from the orders."""
    return {
        "sales_today": _sales_totals(sales, sales.rows.filter(**{f"{sales.when}__gte": today_start})),
        "sales": _sales_totals(sales, sales_in_range(sales, scope)),
        "sales_per_day": sales_per_day(scope, sales),
        "sales_per_hour": sales_per_hour(scope, sales),
    }


def _hourly_sales(scope: Scope, sales: Sales, today_start: datetime) -> dict:
    """Sales today, over the range, per day and per hour of the day, from one read of the rolled-up
    hours of the range and of today (the four queries of the orders' path, at the cost of one): each
    hour and currency summed once in SQL, then added into its local day and hour here."""
    when = sales.when
    rows = (
        sales.rows.filter(
            Q(**{f"{when}__gte": scope.start, f"{when}__lt": scope.end}) | Q(**{f"{when}__gte": today_start})
        )
        .values(when, "currency")
        .annotate(n=sales.orders, total=sales.amount)
        .order_by()
    )
    today, in_range, per_day, per_hour = {}, {}, {}, {}
    for row in rows:
        hour, currency, tally = row[when], row["currency"], (row["n"], row["total"])
        if hour >= today_start:
            _add(today, currency, tally)
        if scope.start <= hour < scope.end:
            local = hour.astimezone(scope.zone)
            _add(in_range, currency, tally)
            _add(per_day, (local.date().isoformat(), currency), tally)
            _add(per_hour, (local.hour, currency), tally)
    return {
        "sales_today": _totals(today),
        "sales": _totals(in_range),
        "sales_per_day": _buckets("date", per_day),
        "sales_per_hour": _buckets("hour", per_hour),
    }


def _add(tallies: dict, key, tally: tuple[int, Decimal]) -> None:
    orders, amount = tallies.get(key, (0, Decimal(0)))
    tallies[key] = (orders + tally[0], amount + tally[1])


def _totals(tallies: dict) -> list[dict]:
    return _with_average_ticket(
        [
            {"currency": currency, "orders": n, "amount": money_text(total)}
            for currency, (n, total) in sorted(tallies.items())
        ]
    )


def _buckets(name: str, tallies: dict) -> list[dict]:
    return [
        {name: bucket, "currency": currency, "orders": n, "amount": money_text(total)}
        for (bucket, currency), (n, total) in sorted(tallies.items())
    ]


def sales_per_day(scope: Scope, sales: Sales) -> list[dict]:
    return _sales_by(sales, scope, "date", TruncDate(sales.when, tzinfo=scope.zone), date.isoformat)


def sales_per_hour(scope: Scope, sales: Sales) -> list[dict]:
    return _sales_by(sales, scope, "hour", ExtractHour(sales.when, tzinfo=scope.zone), int)


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


def top_products(scope: Scope, sales: Sales) -> list[dict]:
    lines = sales.product_lines(sales_in_range(sales, scope))
    rows = (
        lines.values("product_id", "name", "currency")
        .annotate(sold=Sum("qty"), total=Sum("line"))
        .order_by("-sold", "product_id")[:TOP]
    )
    return [
        {
            "product_id": r["product_id"],
            "name": r["name"],
            "currency": r["currency"],
            "qty": r["sold"],
            "amount": money_text(r["total"]),
        }
        for r in rows
    ]


def top_and_silent_machines(scope: Scope, sales: Sales) -> dict:
    """The ten machines that sold most (orders) in the range and ten of those that sold nothing."""
    if sales.from_orders:
        return _machines_from_orders(scope, sales)
    return machine_ranking.top_and_silent_machines(scope)


def _machines_from_orders(scope: Scope, sales: Sales) -> dict:
    sold = sales_in_range(sales, scope)
    top = (
        sold.values("device_id", "device__serial", "device__alias", "currency")
        .annotate(n=sales.orders, total=sales.amount)
        .order_by("-n", "device_id")[:TOP]
    )
    machines = scope.narrow(scope.mine(Device.objects), device_path="")
    silent = machines.exclude(pk__in=sold.values("device_id")).order_by("-is_online", "serial")
    return {
        "top": [
            {
                "device_id": r["device_id"],
                "name": r["device__alias"] or r["device__serial"],
                "currency": r["currency"],
                "orders": r["n"],
                "amount": money_text(r["total"]),
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


def dashboard_summary(scope: Scope, now: datetime | None = None, *, from_orders: bool = False) -> dict:
    """Every figure of the dashboard; the sales ones from sales_source (`from_orders`: see there)."""
    now = now or timezone.now()
    today = timezone.localdate(now, scope.zone)
    today_start = datetime.combine(today, time(), tzinfo=scope.zone)
    commands = scope.narrow(scope.mine(RemoteCommand.objects), device_path="device__")
    sales = sales_source(scope, now, from_orders=from_orders, per_machine=False)
    read_sales = _sales_from_orders if sales.from_orders else _hourly_sales
    return {
        "time_zone": str(scope.zone),
        "from": scope.first_day.isoformat(),
        "to": scope.last_day.isoformat(),
        "machines": machine_counts(scope),
        **read_sales(scope, sales, today_start),
        "open_alarms": open_alarms(scope),
        "bins": bin_counts(scope),
        "pending_commands": commands.filter(status__in=UNFINISHED_COMMAND_STATUSES).count(),
        "running_rollouts": running_rollouts(scope),
        "online_rate_per_day": online_rate_per_day(scope),
        "top_products": top_products(scope, sales),
        **{f"{k}_machines": v for k, v in top_and_silent_machines(scope, sales).items()},
    }
