"""The dashboard's top and silent machines of a range, read from the machines' days of sales
(orders.models.DeviceSalesDay) in one SQL statement.

A DeviceSalesDay is a day of its merchant's time zone, and the reader's range may be cut in another
(a platform viewer reads in UTC): for each zone of the merchants in scope, the range is read as the
whole local days inside it, from DeviceSalesDay, and the hours left at either edge, from SalesHour, or
from the orders where an edge is not a whole UTC hour (Asia/Kolkata's midnights read in UTC, or UTC's
in Kolkata). When the reader reads in the merchants' zone the range is one part, the days. Machines
are ranked on integer order counts; amounts are summed for the ten ranked machines only.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import F, IntegerField, QuerySet, Value
from django.db.models.functions import Cast

from accounts.models import Merchant
from accounts.tenancy import merchant_ids_for
from devices.models import Device
from orders.models import DeviceSalesDay, Order, SalesHour
from orders.selectors import SOLD_STATUSES, money_text, net_amount

# `scope` below is an operations.dashboard.Scope; not imported, since the dashboard imports this module.

TOP = 10


def _zones_in_scope(scope) -> dict[ZoneInfo, list[int]]:
    merchants = Merchant.objects.order_by("pk")
    if scope.merchant_id is not None:
        merchants = merchants.filter(pk=scope.merchant_id)
    elif scope.user is not None and (ids := merchant_ids_for(scope.user)) is not None:
        merchants = merchants.filter(pk__in=ids)
    zones: dict[str, list[int]] = {}
    for pk, name in merchants.values_list("pk", "time_zone"):
        zones.setdefault(name, []).append(pk)
    return {ZoneInfo(name): ids for name, ids in zones.items()}


def _is_whole_hour(moment: datetime) -> bool:
    return moment == moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _part(queryset: QuerySet, orders, amount) -> QuerySet:
    """Rows of (machine, currency, orders, amount), whatever they are read from."""
    return (
        queryset.order_by()
        .annotate(r_device=F("device_id"), r_currency=F("currency"), r_orders=orders, r_amount=amount)
        .values("r_device", "r_currency", "r_orders", "r_amount")
    )


def _edge(scope, merchant_ids: list[int], start: datetime, end: datetime) -> QuerySet:
    if _is_whole_hour(start) and _is_whole_hour(end):
        hours = scope.narrow(scope.mine(SalesHour.objects), device_path="")
        hours = hours.filter(merchant_id__in=merchant_ids, hour__gte=start, hour__lt=end)
        return _part(hours, F("orders"), F("amount"))
    sold = scope.narrow(scope.mine(Order.objects), device_path="").filter(
        merchant_id__in=merchant_ids, is_test=False, payment_status__in=SOLD_STATUSES,
        device_created_at__gte=start, device_created_at__lt=end,
    )  # fmt: skip
    return _part(sold, Cast(Value(1), IntegerField()), net_amount())


def sales_parts(scope) -> list[QuerySet]:
    """The rows that add up to the range's sales per machine, in as few parts as its zones allow."""
    days_parts, edges = [], []
    for zone, merchant_ids in _zones_in_scope(scope).items():
        first = scope.start.astimezone(zone).date()
        if datetime.combine(first, time(), tzinfo=zone) < scope.start:
            first += timedelta(days=1)
        last = scope.end.astimezone(zone).date() - timedelta(days=1)
        if first > last:
            edges.append(_edge(scope, merchant_ids, scope.start, scope.end))
            continue
        days_start = datetime.combine(first, time(), tzinfo=zone)
        days_end = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone)
        days = scope.narrow(scope.mine(DeviceSalesDay.objects), device_path="")
        days = days.filter(merchant_id__in=merchant_ids, day__gte=first, day__lte=last)
        days_parts.append(_part(days, F("orders"), F("amount")))
        if scope.start < days_start:
            edges.append(_edge(scope, merchant_ids, scope.start, days_start))
        if days_end < scope.end:
            edges.append(_edge(scope, merchant_ids, days_end, scope.end))
    return days_parts + edges


def _from_db(field_name: str, value):
    """A raw column of the statement as the ORM would give it (SQLite hands back text and floats)."""
    field = Device._meta.get_field(field_name)
    column = field.get_col(Device._meta.db_table)
    for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = convert(value, column, connection)
    return value


def top_and_silent_machines(scope) -> dict:
    parts = sales_parts(scope)
    machines = scope.narrow(scope.mine(Device.objects), device_path="").order_by().values("pk")
    if not parts:
        return {"top": [], "silent": []}
    compiled = [part.query.sql_with_params() for part in parts]
    sold = " UNION ALL ".join(sql for sql, _ in compiled)
    sold_params = [p for _, params in compiled for p in params]
    machines_sql, machines_params = machines.query.sql_with_params()
    quote = connection.ops.quote_name
    device = quote(Device._meta.db_table)
    # `sold` is read once (PostgreSQL materializes a CTE named twice): ranked for the top ten, and the
    # machines without a row in it are the silent ones.
    statement = f"""
        WITH sold AS (SELECT r_device, r_currency, SUM(r_orders) AS n FROM ({sold}) s
                      GROUP BY r_device, r_currency)
        SELECT 'top', d.id, d.alias, d.serial, r.r_currency, r.n,
               (SELECT SUM(s.r_amount) FROM ({sold}) s
                WHERE s.r_device = r.r_device AND s.r_currency = r.r_currency),
               NULL, NULL, ROW_NUMBER() OVER (ORDER BY r.n DESC, r.r_device, r.r_currency)
        FROM (SELECT r_device, r_currency, n FROM sold
              ORDER BY n DESC, r_device, r_currency LIMIT {TOP}) r
        JOIN {device} d ON d.id = r.r_device
        UNION ALL
        SELECT 'silent', q.id, q.alias, q.serial, NULL, NULL, NULL, q.is_online, q.last_seen_at,
               ROW_NUMBER() OVER (ORDER BY q.is_online DESC, q.serial)
        FROM (SELECT m.id, m.alias, m.serial, m.is_online, m.last_seen_at FROM {device} m
              WHERE m.id IN ({machines_sql})
                AND NOT EXISTS (SELECT 1 FROM sold WHERE sold.r_device = m.id)
              ORDER BY m.is_online DESC, m.serial LIMIT {TOP}) q
        ORDER BY 1 DESC, 10
    """
    with connection.cursor() as cursor:
        cursor.execute(statement, [*sold_params, *sold_params, *machines_params])
        rows = cursor.fetchall()
    top, silent = [r for r in rows if r[0] == "top"], [r for r in rows if r[0] == "silent"]
    return {
        "top": [
            {
                "device_id": r[1],
                "name": r[2] or r[3],
                "currency": r[4],
                "orders": r[5],
                "amount": money_text(r[6]),
            }
            for r in top
        ],
        "silent": [
            {
                "device_id": r[1],
                "name": r[2] or r[3],
                "is_online": _from_db("is_online", r[7]),
                "last_seen_at": _from_db("last_seen_at", r[8]),
            }
            for r in silent
        ],
    }
