import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Merchant
from devices.models import Device, Location
from orders.services.rollups import rebuild_sales_rollups

# Merchants alternate between these, so a platform view shows two currencies and two kinds of day.
MERCHANT_KINDS = (("Asia/Shanghai", "CNY"), ("America/New_York", "USD"))
MACHINES_PER_LOCATION = 5

# Sold at an even pace over the days asked for (the newest just now), each order on a machine picked
# by a shuffle of its number, with one item: a product and a method that do not follow the machine;
# paid 89 %, unpaid 4 %, failed 3 %, refunded 2 %, partially refunded 1 %, test orders 1 %.
LOAD_ORDERS = """
CREATE TEMP TABLE bench_machines ON COMMIT DROP AS
    SELECT id, merchant_id, location_id, (row_number() OVER (ORDER BY id) - 1)::int AS n
    FROM devices_device WHERE merchant_id = ANY(%(merchants)s);
CREATE TEMP TABLE bench_shape ON COMMIT DROP AS
    SELECT g, k, 1 + k %% 2 AS qty,
           (ARRAY[12.00, 15.00, 18.00, 22.00, 9.50, 28.00])[1 + (k / 2) %% 6]::numeric(12, 2) AS price,
           (ARRAY['americano', 'cappuccino', 'latte', 'mocha', 'tea', 'flat-white'])[1 + (k / 2) %% 6]
               AS product,
           (ARRAY['wechat', 'wechat', 'alipay', 'alipay', 'card', 'cash'])[1 + (k / 12) %% 6] AS method,
           CASE WHEN k %% 100 < 90 THEN 'paid' WHEN k %% 100 < 94 THEN 'unpaid'
                WHEN k %% 100 < 97 THEN 'failed' WHEN k %% 100 < 99 THEN 'refunded'
                ELSE 'partially_refunded' END AS status,
           k %% 101 = 0 AS is_test
    FROM generate_series(1, %(n)s) AS g,
         LATERAL (SELECT ((g::bigint * 7919 + g / 400 * 13) %% 1000003)::int AS k) AS shuffle;
INSERT INTO orders_order (merchant_id, location_id, device_id, machine_order_id, currency, total,
                          refunded_total, payment_method, payment_status, transaction_id, device_created_at,
                          received_at, is_test, package_version, content_hash, is_exception, exception_reason,
                          exception_resolution)
SELECT m.merchant_id, m.location_id, m.id, 'LOAD-' || lpad(s.g::text, 9, '0'), mc.currency, s.qty * s.price,
       CASE s.status WHEN 'refunded' THEN s.qty * s.price
                     WHEN 'partially_refunded' THEN round(s.price / 2, 2) ELSE 0 END,
       s.method, s.status, 'tx-' || s.g, r.at, r.at + interval '3 seconds', s.is_test, '', md5(s.g::text),
       false, '', ''
FROM bench_shape s
JOIN bench_machines m ON m.n = s.k %% (SELECT count(*) FROM bench_machines)
JOIN accounts_merchant mc ON mc.id = m.merchant_id
CROSS JOIN LATERAL (SELECT %(now)s - (%(n)s - s.g) * (interval '1 day' * %(days)s / %(n)s) AS at) r
ORDER BY s.g;
INSERT INTO orders_orderitem (order_id, position, product_id, name, qty, unit_price, recipe_version, options)
SELECT o.id, 0, s.product, initcap(s.product), s.qty, s.price, '3', '{}'::jsonb
FROM bench_shape s JOIN orders_order o ON o.machine_order_id = 'LOAD-' || lpad(s.g::text, 9, '0')
WHERE o.merchant_id = ANY(%(merchants)s);
"""


ROLLED_UP_TABLES = (
    "orders_order",
    "orders_orderitem",
    "orders_saleshour",
    "orders_productsaleshour",
    "orders_merchantsaleshour",
    "orders_merchantproductsaleshour",
    "orders_devicesalesday",
)


class Command(BaseCommand):
    help = (
        "Load a benchmark's sales fast (PostgreSQL): merchants, machines and orders written by SQL, then "
        "the sales rollups rebuilt. For bench/dashboard.py; never on a database holding real sales."
    )

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=1_000_000)
        parser.add_argument("--machines", type=int, default=5_000)
        parser.add_argument("--merchants", type=int, default=4)
        parser.add_argument("--days", type=int, default=30, help="Sold over this many days up to now.")

    def handle(self, *args, orders, machines, merchants, days, **options):
        if connection.vendor != "postgresql":
            raise CommandError("load-bench-orders writes with PostgreSQL's SQL; set DATABASE_URL.")
        if min(orders, machines, merchants, days) < 1 or machines < merchants:
            raise CommandError(
                "--orders, --machines, --merchants and --days must be positive, machines ≥ merchants."
            )
        started = time.monotonic()
        with transaction.atomic():
            ids = self._fleet(machines, merchants)
            with connection.cursor() as cursor:
                cursor.execute(
                    LOAD_ORDERS, {"n": orders, "merchants": ids, "days": days, "now": timezone.now()}
                )
        loaded = time.monotonic()
        rebuilt = sum(rebuild_sales_rollups(merchant_id=pk) for pk in ids)
        # What autovacuum does to tables this size within minutes: statistics for the planner, and the
        # visibility map that lets the ranking's covering indexes answer without the heap.
        with connection.cursor() as cursor:
            for table in ROLLED_UP_TABLES:
                cursor.execute(f"VACUUM ANALYZE {table}")
        self.stdout.write(
            f"Loaded {orders:,} orders on {machines:,} machines of {merchants} merchants in "
            f"{loaded - started:.1f} s; rebuilt {rebuilt} merchant-days of rollups in "
            f"{time.monotonic() - loaded:.1f} s. Merchant ids: {','.join(map(str, ids))}"
        )

    def _fleet(self, machines: int, merchants: int) -> list[int]:
        stamp = timezone.now().strftime("%Y%m%d%H%M%S")
        created = Merchant.objects.bulk_create(
            [
                Merchant(name=f"Bench {stamp} {i + 1}", time_zone=zone, currency=currency)
                for i, (zone, currency) in ((i, MERCHANT_KINDS[i % 2]) for i in range(merchants))
            ]
        )
        now = timezone.now()
        for m, merchant in enumerate(created):
            count = machines // merchants + (m < machines % merchants)
            locations = Location.objects.bulk_create(
                [
                    Location(merchant=merchant, name=f"Site {i + 1}", city="Shanghai")
                    for i in range(-(-count // MACHINES_PER_LOCATION))
                ]
            )
            Device.objects.bulk_create(
                [
                    Device(
                        merchant=merchant,
                        location=locations[i // MACHINES_PER_LOCATION],
                        serial=f"B{merchant.pk}-{i:06d}",
                        model="CM-2000",
                        firmware="1.4.2",
                        alias=f"Machine {i + 1}" if i % 3 else "",
                        state="idle",
                        is_online=i % 10 != 0,
                        last_seen_at=now,
                        status_changed_at=now,
                    )
                    for i in range(count)
                ],
                batch_size=2000,
            )
        return [m.pk for m in created]
