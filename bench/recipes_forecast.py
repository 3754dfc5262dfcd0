"""Days to empty from consumption at fleet scale: --machines machines of 8 bins with 7 days of sales
booked by recipe, the consumption job's two halves timed (booking the week's orders into the ledger,
then profiling every bin: its use by hour of the day, variance and days to empty), and the bin page
afterwards beside the bare view of the same server in the same run.

    .venv/bin/python bench/recipes_forecast.py [--machines 5000] [--cups-per-day 20] [--workers 2]

What it does, in order (the lead folds it into bench/recipes.py):

1. creates a fresh PostgreSQL database `coffeeshop_bench_recipes_fc` (dropping only that one),
   migrates it, runs collectstatic, and seeds with bulk_create the fleet of bench/inventory_bins.py
   (--machines machines × 8 bins, its catalogue, 100 locations, an Ops user), three published recipes
   of that merchant (latte, mocha, matcha: beans, milk, chocolate, matcha, water and a cup) and, in
   SQL, --cups-per-day orders a machine for each of the last 7 days, one item each, at the hours a
   shop sells (breakfast, lunch, afternoon);
2. in a Django shell: `book_consumption()` over the whole week (the first run after a deploy, or after
   a long outage of the worker), then `profile_bins()` over every bin (what the job does for the bins
   whose profile is due, every CONSUMPTION_PROFILE_EVERY_S), each timed with its queries counted, and
   then one minute's worth of new orders booked, as the job does every minute;
3. starts gunicorn as bench/inventory.py does and times the bare view and the bin page (bench/
   inventory_bins.py's cases: API and admin, page 1, the middle page, low bins of one material);
4. prints a Markdown table, writes bench/results/recipes_forecast-<timestamp>.json, stops gunicorn.

It exits 1 when a phase got a wrong reply or the ledger does not hold one row per item and material.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # run as a script: import `bench.…`, and never shadow an app with bench/*.py

from bench.heartbeat import (  # noqa: E402
    HOST,
    NOISE_CORES,
    RESULTS_DIR,
    BenchError,
    delete_redis_keys,
    free_port,
    git_commit,
    manage,
    recreate_database,
    redis_client,
    server_env,
    shell_json,
    start_gunicorn,
    versions,
)
from bench.inventory_bins import (  # noqa: E402
    BINS_PER_MACHINE,
    FLEET_MERCHANT,
    bins_table,
    measure_bins,
    seed_fleet,
)
from bench.orders import pg, step  # noqa: E402
from bench.runner import around_the_bare_view, guarded, run_files, verdict  # noqa: E402

DB_NAME = "coffeeshop_bench_recipes_fc"
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
DEFAULT_REDIS_URL = f"redis://{HOST}:6379/6"
KEY_PREFIX = "coffeeshop-benchrfc"
PASSWORD = "Bench-" + secrets.token_urlsafe(12)
# When the cups are sold, UTC hour by hour: a breakfast peak, lunch, the afternoon (one slot a cup).
SALE_HOURS = (7, 7, 7, 8, 8, 8, 9, 10, 12, 12, 13, 15, 15, 16, 18, 20)
RECIPES = {
    "latte": [
        {"action": "grind", "material": "BEAN-ARABICA", "amount": 18, "unit": "g"},
        {"action": "brew", "water_ml": 40, "temperature_c": 93},
        {"action": "add", "material": "MILK-POWDER", "amount": 12, "unit": "g"},
        {"action": "pour", "water_ml": 180},
        {"action": "add", "material": "CUP-12OZ", "amount": 1, "unit": "pcs"},
    ],
    "mocha": [
        {"action": "grind", "material": "BEAN-ARABICA", "amount": 18, "unit": "g"},
        {"action": "add", "material": "CHOCOLATE", "amount": 20, "unit": "g"},
        {"action": "add", "material": "MILK-POWDER", "amount": 10, "unit": "g"},
        {"action": "pour", "water_ml": 180},
        {"action": "add", "material": "CUP-12OZ", "amount": 1, "unit": "pcs"},
    ],
    "matcha": [
        {"action": "add", "material": "MATCHA", "amount": 4, "unit": "g"},
        {"action": "add", "material": "MILK-POWDER", "amount": 15, "unit": "g"},
        {"action": "pour", "water_ml": 200},
        {"action": "add", "material": "CUP-12OZ", "amount": 1, "unit": "pcs"},
    ],
}

SEED_RECIPES = """
import json
from django.utils import timezone
from accounts.models import Merchant
from recipes.models import Recipe, RecipeVersion
merchant = Merchant.objects.get(name={merchant!r})
for product_id, steps in {recipes!r}.items():
    recipe = Recipe.objects.create(
        merchant=merchant, product_id=product_id, name=product_id.title(), price="18.00")
    RecipeVersion.objects.create(recipe=recipe, number=1, status="published", definition={{"steps": steps}},
                                 published_at=timezone.now())
print("BENCH_JSON " + json.dumps({{"merchant_id": merchant.pk}}))
"""

# One item an order; product by the order's number (latte 3 in 5, mocha and matcha 1 in 5 each).
SEED_ORDERS = """
INSERT INTO orders_order (machine_order_id, currency, total, refunded_total, payment_method, payment_status,
    transaction_id, device_created_at, received_at, is_test, content_hash, is_exception, exception_reason,
    exception_resolution, device_id, merchant_id, location_id, package_version)
SELECT d.serial || '-' || n, 'CNY', 18.00, 0, 'wechat', 'paid', 'wx-' || d.id || '-' || n, t, t, false,
    md5(d.serial || n), false, '', '', d.id, d.merchant_id, d.location_id, ''
FROM devices_device d
CROSS JOIN generate_series(0, %(per_machine)s - 1) AS n
CROSS JOIN LATERAL (SELECT date_trunc('day', now()) - ((n %% 7) || ' days')::interval
    + ((%(hours)s::int[])[(n / 7) %% %(slots)s + 1] || ' hours')::interval
    + (((d.id * 13 + n * 7) %% 60) || ' minutes')::interval AS t) AS times
WHERE d.merchant_id = %(merchant_id)s AND t < now() - interval '1 minute'
"""
SEED_ITEMS = """
INSERT INTO orders_orderitem (order_id, position, product_id, name, qty, unit_price, recipe_version, options)
SELECT o.id, 0, p.product_id, p.product_id, 1, 18.00, '1', '{}'::jsonb
FROM orders_order o
CROSS JOIN LATERAL (SELECT CASE o.id % 5 WHEN 3 THEN 'mocha' WHEN 4 THEN 'matcha' ELSE 'latte' END
    AS product_id) AS p
"""

MEASURE_JOB = """
import json, time
from django.db import connection, reset_queries
from django.conf import settings
from django.test.utils import CaptureQueriesContext
from devices.models import DeviceBin
from inventory.models import Consumption
from orders.models import OrderItem
from inventory.services import book_consumption, profile_bins

def timed(call):
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - started
    return {{"seconds": round(seconds, 2), "queries": len(queries), "result": result}}

out = {{"book_week": timed(book_consumption), "profile_all": timed(profile_bins)}}
out["ledger_rows"] = Consumption.objects.count()
out["booked_rows"] = Consumption.objects.filter(unmatched="").count()
out["items"] = OrderItem.objects.count()
out["bins"] = DeviceBin.objects.count()
out["bins_with_curve"] = DeviceBin.objects.exclude(use_by_hour=None).count()
out["bins_with_empty_at"] = DeviceBin.objects.exclude(empty_at=None).count()
print("BENCH_JSON " + json.dumps(out, default=str))
"""

MEASURE_MINUTE = """
import json, time
from django.db import connection
from django.test.utils import CaptureQueriesContext
from inventory.services import book_consumption
with CaptureQueriesContext(connection) as queries:
    started = time.perf_counter()
    result = book_consumption()
    seconds = time.perf_counter() - started
print("BENCH_JSON " + json.dumps({{"seconds": round(seconds, 3), "queries": len(queries), "result": result}}))
"""


def long_shell_json(env: dict[str, str], code: str, timeout_s: float = 7200) -> dict:
    """shell_json without its 600 s bound: booking a week of a large fleet takes longer than that."""
    out = manage(env, "shell", "-c", code, timeout=timeout_s)
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    raise BenchError(f"manage.py shell printed no result:\n{out[-3000:]}")


def seed_orders(db_name: str, merchant_id: int, cups_per_day: int) -> dict:
    started = time.monotonic()
    with pg(db_name, autocommit=True) as conn:
        conn.execute(
            SEED_ORDERS,
            {
                "per_machine": cups_per_day * 7,
                "hours": list(SALE_HOURS),
                "slots": len(SALE_HOURS),
                "merchant_id": merchant_id,
            },
        )
        conn.execute(SEED_ITEMS)
        conn.execute("ANALYZE orders_order")
        conn.execute("ANALYZE orders_orderitem")
        orders = conn.execute("SELECT count(*) FROM orders_order").fetchone()[0]
    return {"orders": orders, "seconds": round(time.monotonic() - started, 1)}


def add_a_minute_of_orders(db_name: str, merchant_id: int, cups_per_day: int, machines: int) -> int:
    """The orders a fleet sells in a minute (on average over the day), received two minutes ago."""
    count = max(1, round(machines * cups_per_day / (24 * 60)))
    with pg(db_name, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders_order (machine_order_id, currency, total, refunded_total, payment_method,"
            " payment_status, transaction_id, device_created_at, received_at, is_test, content_hash,"
            " is_exception, exception_reason, exception_resolution, device_id, merchant_id, location_id,"
            " package_version)"
            " SELECT d.serial || '-new', 'CNY', 18.00, 0, 'wechat', 'paid', 'wx-new-' || d.id,"
            " now() - interval '2 minutes', now() - interval '2 minutes', false, md5(d.serial || 'new'),"
            " false, '', '', d.id, d.merchant_id, d.location_id, '' FROM devices_device d"
            " WHERE d.merchant_id = %(merchant_id)s ORDER BY d.id LIMIT %(count)s",
            {"merchant_id": merchant_id, "count": count},
        )
        conn.execute(
            "INSERT INTO orders_orderitem (order_id, position, product_id, name, qty, unit_price,"
            " recipe_version, options) SELECT o.id, 0, 'latte', 'Latte', 1, 18.00, '1', '{}'::jsonb"
            " FROM orders_order o WHERE o.machine_order_id LIKE '%-new'"
        )
    return count


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=5_000, help=f"machines of {BINS_PER_MACHINE} bins")
    parser.add_argument("--cups-per-day", type=int, default=20, help="orders a machine sells a day")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--ceiling-requests", type=int, default=200, help="bare-view requests, before, after")
    parser.add_argument("--page-requests", type=int, default=20, help="requests per bin-page case")
    parser.add_argument("--page-seconds", type=float, default=6, help="time bound per bin-page case")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the server (%(default)s)")
    args = parser.parse_args(argv)
    for name in ("machines", "cups_per_day", "workers", "ceiling_requests", "page_requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp, log_path = run_files("recipes_forecast")
    key_prefix = f"{KEY_PREFIX}-{stamp}-{secrets.token_hex(3)}"
    workdir = Path(tempfile.mkdtemp(prefix="coffeeshop-bench-recipes-forecast-"))
    env = server_env(use_redis=True, key_prefix=key_prefix)
    env.update(DATABASE_URL=DB_URL, REDIS_URL=args.redis_url, THROTTLE_USER="1000000/min")
    env["COFFEESHOP_DATA_DIR"] = str(workdir)
    command = [".venv/bin/python", "bench/recipes_forecast.py", *(argv if argv is not None else sys.argv[1:])]
    return guarded(
        "bench/recipes_forecast.py",
        lambda children: run(children, args, env, stamp=stamp, log_path=log_path, command=command),
        cleanup=(lambda: delete_redis_keys(key_prefix, args.redis_url), lambda: shutil.rmtree(workdir)),
    )


def run(children, args, env, *, stamp: str, log_path: Path, command: list[str]) -> int:
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        redis_client(args.redis_url).ping()
    except Exception as exc:
        raise BenchError(f"Redis at {args.redis_url} is not reachable ({exc}): start it first") from exc
    step(f"fresh database {DB_NAME} on {HOST}:5432")
    pg_version = recreate_database(DB_NAME)
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input")
    fleet = seed_fleet(env, machines=args.machines, password=PASSWORD)
    recipes = shell_json(env, SEED_RECIPES.format(merchant=FLEET_MERCHANT, recipes=RECIPES))
    merchant_id = recipes["merchant_id"]
    step(f"seeding {args.cups_per_day} orders a machine a day for 7 days (SQL)")
    seeded = seed_orders(DB_NAME, merchant_id, args.cups_per_day)
    step(f"{seeded['orders']:,} orders in {seeded['seconds']} s; booking the week, then profiling every bin")
    job = long_shell_json(env, MEASURE_JOB.format())
    problems = []
    step(
        f"booked {job['book_week']['result']['orders']:,} orders in {job['book_week']['seconds']} s "
        f"({job['book_week']['queries']} queries); profiled {job['profile_all']['result']['profiled']:,} "
        f"bins in {job['profile_all']['seconds']} s ({job['profile_all']['queries']} queries)"
    )
    with pg(DB_NAME) as conn:
        duplicates = conn.execute(
            "SELECT count(*) FROM (SELECT order_item_id, material_code FROM inventory_consumption"
            " GROUP BY 1, 2 HAVING count(*) > 1) AS d"
        ).fetchone()[0]
        unbooked = conn.execute(
            "SELECT count(*) FROM orders_orderitem i WHERE NOT EXISTS"
            " (SELECT 1 FROM inventory_consumption c WHERE c.order_item_id = i.id)"
        ).fetchone()[0]
    if duplicates or unbooked:
        problems.append(f"ledger: {duplicates} items booked twice, {unbooked} items not booked")
    minute_orders = add_a_minute_of_orders(DB_NAME, merchant_id, args.cups_per_day, args.machines)
    minute = shell_json(env, MEASURE_MINUTE.format())
    step(f"a minute's {minute_orders} new orders: {minute['seconds']} s, {minute['queries']} queries")

    port = free_port()
    step(f"gunicorn, {args.workers} sync workers, {HOST}:{port}; log: {log_path.relative_to(ROOT)}")
    server = start_gunicorn(children, env, workers=args.workers, port=port, log_path=log_path, timeout_s=None)
    bins, ceiling = around_the_bare_view(
        port,
        args.ceiling_requests,
        lambda: measure_bins(
            port=port,
            server_pid=server.pid,
            env=env,
            db_name=DB_NAME,
            fleet=fleet,
            password=PASSWORD,
            args=args,
        ),
    )
    if server.poll() is not None:
        raise BenchError(f"gunicorn died during the run:\n{log_path.read_text()[-3000:]}")
    report = {
        "benchmark": "recipes_forecast",
        "timestamp": stamp,
        "command": " ".join(command),
        "commit": git_commit(),
        "config": {
            "machines": args.machines,
            "bins_per_machine": BINS_PER_MACHINE,
            "cups_per_day": args.cups_per_day,
            "gunicorn_workers": args.workers,
            "store": "PostgreSQL + Redis",
            "database": DB_NAME,
        },
        "versions": versions(pg_version, use_redis=False),
        "seeded": seeded,
        "job": job,
        "minute": {"orders": minute_orders, **minute},
        "ceiling": ceiling,
        "bins": bins,
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "shared_machine_phases": [
            c["name"] for c in bins["cases"] if c.get("cpu", {}).get("other_cores", 0) > NOISE_CORES
        ],
        "problems": [*problems, *bins["problems"]],
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    out_path = RESULTS_DIR / f"recipes_forecast-{stamp}.json"
    out_path.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    print()
    book, profile = job["book_week"], job["profile_all"]
    print(f"load average {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}; {report['elapsed_s']:.0f} s in all")
    print(f"| consumption job, {args.machines:,} machines × {BINS_PER_MACHINE} bins | seconds | queries |")
    print("|---|---:|---:|")
    print(
        f"| book a week: {book['result']['orders']:,} orders → {job['ledger_rows']:,} ledger rows "
        f"({book['result']['unmatched_items']:,} items name a material the machine lacks) "
        f"| {book['seconds']} | {book['queries']} |"
    )
    print(
        f"| profile every bin ({profile['result']['profiled']:,}; {job['bins_with_curve']:,} with a curve, "
        f"{profile['result']['variance_flagged']:,} flagged) | {profile['seconds']} | {profile['queries']} |"
    )
    print(f"| book a minute's {minute_orders} orders | {minute['seconds']} | {minute['queries']} |")
    print()
    print(bins_table(report))
    noisy = report["shared_machine_phases"]
    return verdict(out_path, report["problems"], noisy=noisy, noise_cores=NOISE_CORES)


if __name__ == "__main__":
    sys.exit(main())
