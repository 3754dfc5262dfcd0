"""Analytics: sales by one dimension and machine uptime per day, for the admin's Analytics page,
`GET /api/v1/analytics/*` and their exports.

Sales are counted as the dashboard counts them (operations.dashboard): sold orders net of refunds, test
orders left out, by when the machine sold, one row per currency (sums never mix currencies), hours and
weekdays in the reader's merchant's time zone. A product's amount is what its items sold for: a partial
refund is taken off its order, not off one of its items. Uptime is the share of known machine-time that
was online (devices.DeviceStatusHour); a day without a record has no row.

Sales are read from the hourly sales rollups (orders.SalesHour, ProductSalesHour) wherever UTC hours cut
the reader's local days exactly, as the dashboard reads them (operations.dashboard.sales_source), and
from the orders elsewhere; uptime from the folded hours of connectivity. Every call runs a constant
number of queries: one for the figures, one for their labels.
"""

from collections import defaultdict
from datetime import date

from django.db.models import F, Max, Sum
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay, TruncDate
from django.utils import timezone
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _

from accounts.models import Merchant
from devices.models import Device, DeviceStatusHour, Location
from operations.dashboard import Scope, sales_in_range, sales_source
from orders.models import BUILT_IN_PAYMENT_METHODS, PaymentMethod
from orders.selectors import money_text

DIMENSIONS = ("merchant", "location", "machine", "product", "payment_method", "hour", "weekday")
# Dimensions whose keys have an order of their own (the clock, the week); the others rank by amount.
ORDERED_DIMENSIONS = ("hour", "weekday")
ORDER_FIELDS = {
    "merchant": "merchant_id",
    "location": "location_id",
    "machine": "device_id",
    "payment_method": "payment_method",
}


def dimension_labels() -> dict:
    return {
        "merchant": _("Merchant"),
        "location": _("Location"),
        "machine": _("Machine"),
        "product": _("Product"),
        "payment_method": _("Payment method"),
        "hour": _("Hour of day"),
        "weekday": _("Weekday"),
    }


def _order_field(scope: Scope, dimension: str, when: str):
    """What sales are grouped by for `dimension` (a field name or an expression of local time)."""
    if dimension == "hour":
        return ExtractHour(when, tzinfo=scope.zone)
    if dimension == "weekday":
        return ExtractIsoWeekDay(when, tzinfo=scope.zone)
    return F(ORDER_FIELDS[dimension])


def _order_source(scope: Scope, dimension: str) -> list[dict]:
    """Sales of the range by the dimension's key and currency: {key, currency, orders, amount}, from
    the hourly rollups wherever they give the exact figures (the dashboard's rule), else the orders."""
    sales = sales_source(scope, timezone.now())
    return list(
        sales_in_range(sales, scope)
        .annotate(key=_order_field(scope, dimension, sales.when))
        .values("key", "currency")
        .annotate(orders=sales.orders, amount=sales.amount)
        .order_by()
    )


def _item_source(scope: Scope) -> list[dict]:
    """Products sold in the range by product and currency: {key, currency, qty, amount, name}."""
    sales = sales_source(scope, timezone.now())
    lines = sales.product_lines(sales_in_range(sales, scope))
    return list(
        lines.annotate(key=F("product_id"))
        .values("key", "currency")
        .annotate(amount=Sum("line"))
        .annotate(qty=Sum("qty"), name=Max("name"))  # after the amount, whose `qty` is the line's
        .order_by()
    )


def _status_source(scope: Scope) -> list[dict]:
    """Recorded connectivity of the range by machine and local day: {device_id, day, online_s, known_s}."""
    hours = scope.narrow(scope.mine(DeviceStatusHour.objects), device_path="device__").filter(
        hour__gte=scope.start, hour__lt=scope.end
    )
    return list(
        hours.annotate(day=TruncDate("hour", tzinfo=scope.zone))
        .values("device_id", "day")
        .annotate(online_s=Sum("online_s"), known_s=Sum("known_s"))
        .order_by()
    )


def _machine_names(keys) -> dict:
    machines = Device.objects.filter(pk__in=keys).values_list("pk", "alias", "serial")
    return {pk: alias or serial for pk, alias, serial in machines}


def _payment_method_names(scope: Scope, codes) -> dict:
    """Built-in methods by their name, a merchant's own by the name it gave them, others by code."""
    names = {code: str(BUILT_IN_PAYMENT_METHODS[code]) for code in codes if code in BUILT_IN_PAYMENT_METHODS}
    defined = scope.mine(PaymentMethod.objects).filter(code__in=set(codes) - set(names))
    if scope.merchant_id is not None:
        defined = defined.filter(merchant_id=scope.merchant_id)
    for code, name in defined.order_by("-merchant_id").values_list("code", "name"):
        names[code] = name
    return names


def _labels(scope: Scope, dimension: str, rows: list[dict]) -> dict:
    """Each key's label, in one query at most."""
    keys = {row["key"] for row in rows}
    if dimension == "merchant":
        return dict(Merchant.objects.filter(pk__in=keys).values_list("pk", "name"))
    if dimension == "location":
        names = dict(Location.objects.filter(pk__in=keys - {None}).values_list("pk", "name"))
        return {**names, None: _("No location")}
    if dimension == "machine":
        return _machine_names(keys)
    if dimension == "product":
        return {row["key"]: row["name"] for row in rows}
    if dimension == "payment_method":
        return _payment_method_names(scope, keys)
    if dimension == "hour":
        return {hour: f"{hour:02d}:00" for hour in keys}
    return {day: str(WEEKDAYS[day - 1]) for day in keys}  # ISO weekday: 1 is Monday


def sales_by(scope: Scope, dimension: str) -> list[dict]:
    """Sales of the scope by `dimension` (one of DIMENSIONS): rows {key, label, currency, orders (qty
    for a product), amount}; hours and weekdays in their order, the others by currency, then largest
    amount first."""
    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    rows = _item_source(scope) if dimension == "product" else _order_source(scope, dimension)
    labels = _labels(scope, dimension, rows)
    count = "qty" if dimension == "product" else "orders"
    if dimension in ORDERED_DIMENSIONS:
        rows.sort(key=lambda r: (r["key"], r["currency"]))
    else:
        rows.sort(key=lambda r: (r["currency"], -r["amount"], str(labels.get(r["key"], r["key"]))))
    return [
        {
            "key": row["key"],
            "label": str(labels.get(row["key"], row["key"])),
            "currency": row["currency"],
            count: row[count],
            "amount": money_text(row["amount"]),
        }
        for row in rows
    ]


def _rate(online_s: float, known_s: float) -> float:
    return round(100 * online_s / known_s, 2)


def uptime_per_day(scope: Scope) -> dict:
    """Uptime % per machine and local day, and of the whole fleet in scope per day (its machines' online
    time over their known time): {"machines": [{device_id, label, date, uptime_pct}], "fleet": [{date,
    uptime_pct}]}, by day, then machine."""
    rows = [row for row in _status_source(scope) if row["known_s"]]
    names = _machine_names({row["device_id"] for row in rows})
    fleet: dict[date, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        fleet[row["day"]][0] += row["online_s"]
        fleet[row["day"]][1] += row["known_s"]
    machines = sorted(
        (
            {
                "device_id": row["device_id"],
                "label": names.get(row["device_id"], ""),
                "date": row["day"].isoformat(),
                "uptime_pct": _rate(row["online_s"], row["known_s"]),
            }
            for row in rows
        ),
        key=lambda r: (r["date"], r["label"], r["device_id"]),
    )
    return {
        "machines": machines,
        "fleet": [{"date": day.isoformat(), "uptime_pct": _rate(*fleet[day])} for day in sorted(fleet)],
    }


def report_header(scope: Scope) -> dict:
    return {
        "time_zone": str(scope.zone),
        "from": scope.first_day.isoformat(),
        "to": scope.last_day.isoformat(),
    }
