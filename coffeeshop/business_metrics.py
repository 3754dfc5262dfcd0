"""The brief's business figures on /metrics, read from the database at scrape time.

They are computed by the process answering the scrape rather than counted in any process's memory,
so they are right with any number of web and worker processes (prometheus multiprocess mode only
has to merge the request metrics). Each scrape costs a handful of grouped queries plus one per merchant
for its sales today (each merchant's "today" is its own).
"""

import os
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily


def _gauge(name, documentation, labels, rows):
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in rows:
        family.add_metric([str(v) for v in values], value)
    return family


def celery_queue_length() -> int | None:
    """Tasks waiting in the broker's default queue (None when the broker cannot be read)."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    from coffeeshop.redis import get_redis

    if settings.REDIS_URL:
        client = get_redis()
        return None if client is None else int(client.llen(queue))
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    return len(os.listdir(folder)) if folder and Path(folder).is_dir() else None


class BusinessCollector:
    def describe(self):
        return []  # registering must not query the database (it may not be migrated yet)

    def collect(self):
        """The figures, or only `coffeeshop_business_metrics_up 0` while the database cannot answer: the
        scrape keeps its request metrics and never fails for it."""
        try:
            families = list(self._figures())
        except DatabaseError:
            families = []
        up = [((), 1 if families else 0)]
        yield _gauge("coffeeshop_business_metrics_up", "1 when the business figures could be read.", [], up)
        yield from families

    def _figures(self):
        from accounts.models import Merchant
        from accounts.time_zones import local_day_start
        from devices.models import Device
        from inventory.models import Bin
        from operations.models import UNFINISHED_COMMAND_STATUSES, Alarm, RemoteCommand
        from orders.models import Order
        from orders.selectors import sales_of
        from recipes.models import Rollout

        names = dict(Merchant.objects.values_list("pk", "name"))
        machines = list(
            Device.objects.values("merchant_id", "is_online", "state").annotate(n=Count("pk")).order_by()
        )
        yield _gauge(
            "coffeeshop_machines",
            "Machines by merchant, connectivity and state.",
            ["merchant", "connectivity", "state"],
            [
                ((names[m["merchant_id"]], "online" if m["is_online"] else "offline", m["state"]), m["n"])
                for m in machines
            ],
        )
        totals, online = {}, {}
        for m in machines:
            totals[m["merchant_id"]] = totals.get(m["merchant_id"], 0) + m["n"]
            online[m["merchant_id"]] = online.get(m["merchant_id"], 0) + (m["n"] if m["is_online"] else 0)
        yield _gauge(
            "coffeeshop_online_rate",
            "Share of a merchant's machines online (0 to 1).",
            ["merchant"],
            [((names[pk],), online[pk] / total) for pk, total in totals.items() if total],
        )
        pending = (
            RemoteCommand.objects.filter(status__in=UNFINISHED_COMMAND_STATUSES)
            .values("type")
            .annotate(n=Count("pk"))
            .order_by()
        )
        yield _gauge(
            "coffeeshop_pending_commands",
            "Commands not yet finished, by type.",
            ["type"],
            [((p["type"],), p["n"]) for p in pending],
        )
        yield from self._sales_today(Merchant, Order, local_day_start, sales_of)
        alarms = Alarm.objects.filter(is_active=True).values("merchant_id", "severity")
        alarms = alarms.annotate(n=Count("pk"))
        yield _gauge(
            "coffeeshop_open_alarms",
            "Active alarms by merchant and severity.",
            ["merchant", "severity"],
            [((names[a["merchant_id"]], a["severity"]), a["n"]) for a in alarms.order_by()],
        )
        low = (
            Bin.objects.filter(state__in=("low", "empty"))  # inventory's rule of a bin's state
            .values("device__merchant_id")
            .annotate(n=Count("pk"), empty=Count("pk", filter=Q(state="empty")))
            .order_by()
        )
        low = list(low)
        yield _gauge(
            "coffeeshop_low_bins",
            "Bins at or under their low threshold (empty ones included), by merchant.",
            ["merchant"],
            [((names[b["device__merchant_id"]],), b["n"]) for b in low],
        )
        yield _gauge(
            "coffeeshop_empty_bins",
            "Empty bins, by merchant.",
            ["merchant"],
            [((names[b["device__merchant_id"]],), b["empty"]) for b in low],
        )
        rollouts = Rollout.objects.filter(status__in=Rollout.ACTIVE).values("merchant_id")
        rollouts = rollouts.annotate(n=Count("pk"))
        yield _gauge(
            "coffeeshop_rollouts_in_progress",
            "Rollouts running or awaiting approval, by merchant.",
            ["merchant"],
            [((names[r["merchant_id"]],), r["n"]) for r in rollouts.order_by()],
        )
        length = celery_queue_length()
        if length is not None:
            waiting = [((settings.CELERY_TASK_DEFAULT_QUEUE,), length)]
            yield _gauge("coffeeshop_celery_queue_length", "Tasks waiting for a worker.", ["queue"], waiting)

    @staticmethod
    def _sales_today(Merchant, Order, local_day_start, sales_of):
        now = timezone.now()
        orders = GaugeMetricFamily(
            "coffeeshop_orders_today",
            "Sold orders today (the merchant's day).",
            labels=["merchant", "currency"],
        )
        sales = GaugeMetricFamily(
            "coffeeshop_sales_today",
            "Sales today (the merchant's day): paid, net of refunds, in the currency sold.",
            labels=["merchant", "currency"],
        )
        for merchant in Merchant.objects.all():
            today = local_day_start(merchant, now)
            sold = Order.objects.filter(merchant=merchant, device_created_at__gte=today)
            for figure in sales_of(sold):
                orders.add_metric([merchant.name, figure["currency"]], figure["orders"])
                sales.add_metric([merchant.name, figure["currency"]], float(figure["amount"]))
        yield orders
        yield sales
