"""Sales through the whole stack: ingest throughput beside the ceiling, and the order list with 1M orders.

    .venv/bin/python bench/orders.py [--duration 15] [--warmup 3] [--workers 2] [--orders 1000000]
                                     [--list-requests 200] [--no-redis]

What it does, in order (bench/README.md, "Orders", explains how to read the result):

1. creates a fresh PostgreSQL database `coffeeshop_bench_orders` (dropping only that one) and migrates it;
2. starts the production server configuration, exactly as bench/heartbeat.py does (its code, imported):
   gunicorn sync workers on `coffeeshop.wsgi`, DJANGO_ENV=production, Redis (unless --no-redis),
   persistent database connections, `bench.settings` (the app's settings plus `/bench/ceiling`);
3. registers 200 machines of merchant A through the registration endpoint, and seeds merchant B with
   200 machines, 10 locations per merchant, a merchant-scoped Ops user and a platform-staff user;
4. loads --orders orders (default one million, one item each) for the 2 × 200 machines, spread over
   90 days, straight into orders_order / orders_orderitem with `INSERT ... SELECT generate_series(...)`,
   then VACUUM ANALYZE;
5. drives `wrk` (127.0.0.1 only, bounded by --duration, after --warmup) at `/bench/ceiling`, then at
   `POST /api/v1/devices/{id}/orders/create` with single new orders, backlogs of 100 and backlogs of 500
   (200 machines round robin, every order id new), and checks in the database that every accepted order
   was recorded once with its item; then deletes those orders again, so the list runs on exactly --orders;
6. times the staff list `GET /api/v1/orders?page=N` (sequential requests, --list-requests per case, each
   case bounded to --list-seconds) as the Ops user of merchant A and as platform staff, unfiltered and
   filtered, and times the list's two queries (the pagination's count(*) and the page) on their own;
7. prints a Markdown table, writes bench/results/orders-<timestamp>.json, stops gunicorn.

It leaves no process behind (gunicorn and wrk run in their own process groups, killed in `finally`) and
drops no database but `coffeeshop_bench_orders`, which it leaves in place for inspection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # run as a script: import `bench.…`, and never shadow an app with bench/*.py

from bench.heartbeat import (  # noqa: E402  (the server-starting code is bench/heartbeat.py's)
    HOST,
    REDIS_URL,
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    Children,
    delete_redis_keys,
    free_port,
    git_commit,
    manage,
    recreate_database,
    redis_client,
    register_fleet,
    server_env,
    shell_json,
    start_gunicorn,
    versions,
)

try:  # CPU accounting, when bench/heartbeat.py offers it: who used the cores during a run
    from bench.heartbeat import NOISE_CORES, cpu_between, cpu_line, cpu_snapshot
except ImportError:  # pragma: no cover
    cpu_between = cpu_line = cpu_snapshot = None
    NOISE_CORES = 0.1

# Helpers sharing one PostgreSQL give each run its own database; the default is the documented one.
DB_NAME = os.environ.get("BENCH_ORDERS_DB", "coffeeshop_bench_orders")
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
MERCHANT_A = "Bench Coffee Co"
MERCHANT_B = "Second Cup Ltd"
MACHINES_PER_MERCHANT = 200
LOCATIONS_PER_MERCHANT = 10
DAYS = 90
PAGE_SIZE = 50  # the API's default page size


class Interrupted(Exception):
    """SIGTERM/SIGHUP: unwind through the `finally` blocks like Ctrl-C does."""


def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def step(text: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)


# --- Database ------------------------------------------------------------------------------------


def pg(dbname: str = DB_NAME, **kwargs):
    import psycopg

    return psycopg.connect(f"postgresql://postgres@{HOST}:5432/{dbname}", connect_timeout=5, **kwargs)


SEED = """
import json
import os
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device, Location

a = Merchant.objects.get_or_create(name={merchant_a!r})[0]
b = Merchant.objects.get_or_create(name={merchant_b!r})[0]
Device.objects.bulk_create([
    Device(merchant=b, serial=f"SECOND-{{i:06d}}", model="CM-2000", firmware="1.4.2", alias=f"Second {{i}}")
    for i in range(1, {machines} + 1)
])
for merchant in (a, b):
    locations = Location.objects.bulk_create([
        Location(merchant=merchant, name=f"{{merchant.name}} site {{i}}", city="Shanghai")
        for i in range(1, {locations} + 1)
    ])
    devices = list(Device.objects.filter(merchant=merchant).order_by("pk"))
    for i, device in enumerate(devices):
        device.location = locations[i % len(locations)]
    Device.objects.bulk_update(devices, ["location"])
ops = User.objects.create_user("ops@bench.example.com", name="Bench Ops", role=Role.OPS)
grant_merchant_access(ops, a)
platform = User.objects.create_user("platform@bench.example.com", name="Platform", role=Role.VIEWER,
                                    is_platform_staff=True)
print("BENCH_JSON " + json.dumps({{
    "secret": a.provisioning_secret, "merchant_a": a.pk, "merchant_b": b.pk,
    "ops_token": Token.objects.create(user=ops).key,
    "platform_token": Token.objects.create(user=platform).key,
}}))
"""

SEED_SECRET = """
import json
import os
from accounts.models import Merchant
merchant = Merchant.objects.get_or_create(name={merchant_a!r})[0]
print("BENCH_JSON " + json.dumps({{"secret": merchant.provisioning_secret}}))
"""

# One item per order; qty, price, payment method and status cycle with the row number so that every
# filter has something to find: wechat 50 %, alipay 30 %, card 10 %, cash 5 %, corp 5 %; paid 90 %,
# unpaid 4 %, failed 3 %, refunded 2 %, partially refunded 1 %; one order in 997 an open exception.
# Ids are 1..N in receive-time order (as they would be), the newest received just now.
LOAD_ORDERS = """
CREATE TEMP TABLE bench_devices AS
    SELECT id, merchant_id, location_id, (row_number() OVER (ORDER BY id) - 1)::int AS n FROM devices_device;
CREATE TEMP TABLE bench_shape AS
    SELECT g,
           1 + k %% 2 AS qty,
           (ARRAY[12.00, 15.00, 18.00, 22.00])[1 + (k / 2) %% 4]::numeric(12, 2) AS price,
           (ARRAY['americano', 'cappuccino', 'latte', 'mocha'])[1 + (k / 2) %% 4] AS product,
           CASE WHEN k %% 20 < 10 THEN 'wechat' WHEN k %% 20 < 16 THEN 'alipay' WHEN k %% 20 < 18 THEN 'card'
                WHEN k %% 20 = 18 THEN 'cash' ELSE 'corp' END AS method,
           CASE WHEN k %% 100 < 90 THEN 'paid' WHEN k %% 100 < 94 THEN 'unpaid'
                WHEN k %% 100 < 97 THEN 'failed' WHEN k %% 100 < 99 THEN 'refunded'
                ELSE 'partially_refunded' END AS status
    -- k shuffles g, so that no attribute follows the machine (g %% machines) it was sold on
    FROM generate_series(1, %(n)s) AS g,
         LATERAL (SELECT ((g::bigint * 7919 + g / 400 * 13) %% 1000003)::int AS k) AS shuffle;
INSERT INTO orders_order (id, merchant_id, location_id, device_id, machine_order_id, currency, total,
                          refunded_total, payment_method, payment_status, transaction_id, device_created_at,
                          received_at, is_test, content_hash, is_exception, exception_reason,
                          exception_resolution, package_version)
SELECT s.g, d.merchant_id, d.location_id, d.id, 'GEN-' || lpad(s.g::text, 8, '0'), 'CNY', s.qty * s.price,
       CASE s.status WHEN 'refunded' THEN s.qty * s.price
                     WHEN 'partially_refunded' THEN round(s.price / 2, 2) ELSE 0 END,
       s.method, s.status, 'tx-' || s.g, r.at - interval '7 seconds', r.at, false,
       md5(s.g::text) || md5('x' || s.g),
       s.g %% 997 = 0, CASE WHEN s.g %% 997 = 0 THEN 'no cup' ELSE '' END, '', '2026.11.3'
FROM bench_shape s
JOIN bench_devices d ON d.n = s.g %% (SELECT count(*) FROM bench_devices)
CROSS JOIN LATERAL (SELECT now() - (%(n)s - s.g) * (interval '%(days)s days' / %(n)s) AS at) r;
INSERT INTO orders_orderitem (order_id, position, product_id, name, qty, unit_price, recipe_version, options)
SELECT s.g, 0, s.product, initcap(s.product), s.qty, s.price, '3', '{}'::jsonb FROM bench_shape s;
SELECT setval(pg_get_serial_sequence('orders_order', 'id'), %(n)s);
"""


def load_orders(n: int) -> dict:
    """--orders orders with their items, straight into the tables (the app's constraints still check them)."""
    import psycopg

    started = time.monotonic()
    try:
        with pg() as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute(LOAD_ORDERS % {"n": int(n), "days": DAYS})
            conn.commit()
    except psycopg.Error as exc:
        raise BenchError(f"loading the orders failed: {exc}") from exc
    loaded_s = time.monotonic() - started
    with pg(autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE orders_order")
        conn.execute("VACUUM ANALYZE orders_orderitem")
        rows = conn.execute(
            "SELECT merchant_id, count(*) FROM orders_order GROUP BY merchant_id ORDER BY merchant_id"
        ).fetchall()
        size = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('orders_order')),"
            " pg_size_pretty(pg_total_relation_size('orders_orderitem'))"
        ).fetchone()
    return {
        "orders": sum(count for _, count in rows),
        "per_merchant": {str(merchant): count for merchant, count in rows},
        "insert_s": round(loaded_s, 1),
        "total_s": round(time.monotonic() - started, 1),
        "orders_table_size": size[0],
        "items_table_size": size[1],
    }


def ingested(prefix: str) -> dict:
    with pg() as conn:
        orders, items, min_items, max_items = conn.execute(
            """SELECT count(DISTINCT o.id), count(i.id), min(c.n), max(c.n)
               FROM orders_order o
               JOIN orders_orderitem i ON i.order_id = o.id
               JOIN LATERAL (SELECT count(*) AS n FROM orders_orderitem x WHERE x.order_id = o.id) c ON true
               WHERE o.machine_order_id LIKE %s""",
            (prefix + "%",),
        ).fetchone()
    return {"orders": orders, "items": items, "items_per_order": [min_items, max_items]}


def settle(prefix: str, timeout_s: float = 60) -> int:
    """Wait until requests still in flight when wrk stopped have been committed (the count holds still)."""
    deadline = time.monotonic() + timeout_s
    last, still_since = -1, time.monotonic()
    with pg(autocommit=True) as conn:
        while time.monotonic() < deadline:
            count = conn.execute(
                "SELECT count(*) FROM orders_order WHERE machine_order_id LIKE %s", (prefix + "%",)
            ).fetchone()[0]
            if count != last:
                last, still_since = count, time.monotonic()
            elif time.monotonic() - still_since >= 1.5:
                return count
            time.sleep(0.25)
    raise BenchError(f"orders {prefix}* still arriving {timeout_s:.0f} s after the load stopped")


def delete_ingested(prefix: str) -> int:
    with pg() as conn:
        conn.execute(
            "DELETE FROM orders_orderitem WHERE order_id IN"
            " (SELECT id FROM orders_order WHERE machine_order_id LIKE %s)",
            (prefix + "%",),
        )
        deleted = conn.execute(
            "DELETE FROM orders_order WHERE machine_order_id LIKE %s", (prefix + "%",)
        ).rowcount
        conn.commit()
    with pg(autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE orders_order")
        conn.execute("VACUUM ANALYZE orders_orderitem")
    return deleted


# --- wrk -------------------------------------------------------------------------------------------

LUA = r"""
-- Generated by bench/orders.py for one run; not meant to be edited.
local MODE = "__MODE__"
local BATCH = __BATCH__
local NTHREADS = __THREADS__
local RUN = "__RUN__"
local MACHINES = {__MACHINES__}
local HEADERS = {["Content-Type"] = "application/json", ["X-Forwarded-Proto"] = "https"}
local CEILING_HEADERS = {["X-Forwarded-Proto"] = "https"}
local ORDER = '{"order_id": "%s", "created_at": "%s", "currency": "CNY", "total": "36.00", ' ..
  '"payment": {"method": "wechat", "status": "paid", "transaction_id": "wx-%s"}, ' ..
  '"items": [{"product_id": "latte", "name": "Latte", "qty": 2, "unit_price": "18.00", ' ..
  '"recipe_version": "3", "options": {"size": "large", "sugar": 1}}], "is_test": false}'

local threads = {}
local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local mine = {}
sent = 0
ok = 0
bad = 0
accepted = 0
first_bad = ""

function init(args)
  for i, m in ipairs(MACHINES) do
    if (i - 1) % NTHREADS == tid then
      table.insert(mine, {id = m[1], auth = "Device " .. m[2]})
    end
  end
end

function request()
  if MODE == "ceiling" then
    sent = sent + 1
    return wrk.format("GET", "/bench/ceiling", CEILING_HEADERS)
  end
  local m = mine[sent % #mine + 1]
  sent = sent + 1
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local body
  if BATCH == 0 then
    local id = RUN .. "-" .. tid .. "-" .. sent
    body = string.format(ORDER, id, now, id)
  else
    local parts = {}
    for k = 1, BATCH do
      local id = RUN .. "-" .. tid .. "-" .. sent .. "-" .. k
      parts[k] = string.format(ORDER, id, now, id)
    end
    body = '{"orders": [' .. table.concat(parts, ", ") .. ']}'
  end
  HEADERS["Authorization"] = m.auth
  return wrk.format("POST", "/api/v1/devices/" .. m.id .. "/orders/create", HEADERS, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if MODE ~= "ceiling" then
      local _, n = string.gsub(body or "", '"accepted"', "")
      accepted = accepted + n
    end
  else
    bad = bad + 1
    if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 400) end
  end
end

function done(summary, latency, requests)
  local t = {ok = 0, bad = 0, accepted = 0}
  local fb = ""
  for _, th in ipairs(threads) do
    t.ok = t.ok + th:get("ok")
    t.bad = t.bad + th:get("bad")
    t.accepted = t.accepted + th:get("accepted")
    if fb == "" then fb = th:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "ok": %d, "non_2xx": %d, "accepted": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, t.ok, t.bad, t.accepted,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  if fb ~= "" then io.write("BENCH_FIRST_BAD " .. string.gsub(fb, "\n", " ") .. "\n") end
end
"""


def write_lua(path: Path, *, mode: str, batch: int, threads: int, run: str, machines) -> None:
    text = (
        LUA.replace("__MODE__", mode)
        .replace("__BATCH__", str(batch))
        .replace("__THREADS__", str(threads))
        .replace("__RUN__", run)
        .replace("__MACHINES__", ", ".join(f'{{"{device_id}", "{token}"}}' for device_id, token in machines))
    )
    path.write_text(text)


@dataclass
class IngestRun:
    name: str
    batch: int
    connections: int
    requests: int
    duration_s: float
    rps: float
    orders_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    ok: int
    non_2xx: int
    accepted: int
    socket_errors: dict
    first_bad: str = ""
    database: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)


def run_wrk(
    children: Children, *, name, lua, port, threads, connections, duration_s, batch, log_path
) -> IngestRun:
    """One bounded wrk run at 127.0.0.1."""
    args = [
        "wrk",
        "--latency",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        f"http://{HOST}:{port}/",
    ]
    proc = children.start(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration_s + 90)
    finally:
        children.stop(proc, grace_s=1)
        children.procs.remove(proc)
    with log_path.open("a") as log:
        log.write(f"===== {name}: {' '.join(args)}\n{out}\n")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{out[-3000:]}")
    data = next((json.loads(line[11:]) for line in out.splitlines() if line.startswith("BENCH_JSON ")), None)
    if data is None:
        raise BenchError(f"wrk printed no result:\n{out[-3000:]}")
    first_bad = next((line[16:] for line in out.splitlines() if line.startswith("BENCH_FIRST_BAD ")), "")
    lat, duration = data["latency_us"], data["duration_us"] / 1e6
    return IngestRun(
        name=name,
        batch=batch,
        connections=connections,
        requests=data["requests"],
        duration_s=round(duration, 2),
        rps=round(data["requests"] / duration, 1),
        orders_per_s=round(data["accepted"] / duration, 1),
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        ok=data["ok"],
        non_2xx=data["non_2xx"],
        accepted=data["accepted"],
        socket_errors=data["errors"],
        first_bad=first_bad,
    )


# --- The staff list --------------------------------------------------------------------------------


def get(port: int, path: str, params: dict, token: str, timeout: float = 60) -> tuple[int, dict, float]:
    url = f"http://{HOST}:{port}{path}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(
        url, headers={"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    return status, json.loads(body or b"{}"), (time.perf_counter() - started) * 1000


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def time_list_case(port, *, who, token, params, pages, requests, max_s) -> dict:
    """Sequential GETs of the list, cycling through `pages`; stops at `requests` or after `max_s`."""
    status, body, _ = get(port, "/api/v1/orders", params, token)  # warm: this case's plan and caches
    if status != 200:
        raise BenchError(f"GET /api/v1/orders {params} as {who}: HTTP {status} {str(body)[:500]}")
    last_page = max(1, -(-body["data"]["count"] // PAGE_SIZE))
    pages = [page for page in pages if page <= last_page] or [1]
    timings, count, sent = [], None, 0
    deadline = time.monotonic() + max_s
    while sent < requests and time.monotonic() < deadline:
        status, body, ms = get(port, "/api/v1/orders", {**params, "page": pages[sent % len(pages)]}, token)
        if status != 200:
            raise BenchError(f"GET /api/v1/orders {params} as {who}: HTTP {status} {str(body)[:500]}")
        count = body["data"]["count"]
        timings.append(ms)
        sent += 1
    return {
        "who": who,
        "params": params,
        "pages": [pages[0], pages[-1]],
        "requests": sent,
        "matching": count,
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(percentile(timings, 95), 1),
        "mean_ms": round(statistics.fmean(timings), 1),
        "max_ms": round(max(timings), 1),
    }


# The list's queries, timed one by one in a Django shell (the same queryset the view builds).
QUERY_TIMES = """
import json, time, statistics
from django.db import connection
from django.http import QueryDict
from accounts.models import User
from orders.filters import OrderFilter
from orders.selectors import orders_for, search_orders

def best(fn, n=5):
    times = []
    for _ in range(n):
        started = time.perf_counter(); fn(); times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)

out = []
for who, email, params, page_number in {cases!r}:
    user = User.objects.get(email=email)
    data = QueryDict(params)
    qs = OrderFilter(data, queryset=orders_for(user).order_by("-received_at", "-pk")).qs
    qs = search_orders(qs, data.get("query", ""))  # what the list's search filter adds for ?query=
    offset = (page_number - 1) * {page_size}
    total = qs.count()
    capped = qs.order_by()[:10001]
    out.append({{
        "who": who, "params": params,
        "count_ms": best(qs.count),
        # Django's paginator slices to the count: a last page of 1 row is a LIMIT 1 (another plan).
        "page_ms": best(lambda: list(qs[offset : min(offset + {page_size}, total)])),
        "capped_count_10001_ms": best(lambda: capped.count()),
        "count_sql": str(qs.order_by().values("pk").query)[:300],
    }})
with connection.cursor() as cursor:
    started = time.perf_counter()
    cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'orders_order'")
    estimate = cursor.fetchone()[0]
    estimate_ms = round((time.perf_counter() - started) * 1000, 2)
print("BENCH_JSON " + json.dumps({{"cases": out, "estimate": estimate, "estimate_ms": estimate_ms}}))
"""


# --- Report ----------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def markdown(report: dict) -> str:
    runs = report["ingest"]
    ceiling = runs["ceiling"]["rps"]
    lines = [
        "| ingest run | req/s | orders/s | orders/s ÷ ceiling req/s | p50 | p99 | non-2xx "
        "| gunicorn CPU per request | other processes' cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs.values():
        label = {"ceiling": "bare Django JSON view (ceiling)", "single": "single order"}.get(
            run["name"], f"backlog of {run['batch']}"
        )
        orders = "" if run["name"] == "ceiling" else fmt(run["orders_per_s"])
        share = "" if run["name"] == "ceiling" else f"{run['orders_per_s'] / ceiling:.0%}"
        cpu = run.get("cpu") or {}
        cpu_ms = (
            f"{cpu['gunicorn_cpu_ms_per_request']:.2f} ms" if cpu.get("gunicorn_cpu_ms_per_request") else ""
        )
        other = f"{cpu['other_cores']:.2f}" if "other_cores" in cpu else ""
        lines.append(
            f"| {label} (c={run['connections']}) | {fmt(run['rps'])} | {orders} | {share} "
            f"| {run['p50_ms']:.1f} ms | {run['p99_ms']:.1f} ms | {run['non_2xx']} "
            f"| {cpu_ms} | {other} |"
        )
    lines += [
        "",
        f"| order list, {report['dataset']['orders']:,} orders | matching | requests | p50 | p95 "
        "| count(*) alone | page query alone |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_case = {(c["who"], c["label"]): c for c in report["query_times"]}
    for case in report["list"]:
        q = by_case.get((case["who"], case["label"]), {})
        count_ms = f"{q['count_ms']:.1f} ms" if q else ""
        page_ms = f"{q['page_ms']:.1f} ms" if q else ""
        lines.append(
            f"| {case['who']}: {case['label']} | {case['matching']:,} | {case['requests']} | "
            f"{case['p50_ms']:.1f} ms | {case['p95_ms']:.1f} ms | {count_ms} | {page_ms} |"
        )
    return "\n".join(lines)


# --- Main ------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds measured per ingest run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each ingest run")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections (ceiling, single orders)"
    )
    parser.add_argument("--backlog-connections", type=int, default=4, help="wrk connections for backlogs")
    parser.add_argument("--backlogs", default="100,500", help="backlog sizes to run, comma separated")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders loaded for the list")
    parser.add_argument("--list-requests", type=int, default=200, help="requests per list case")
    parser.add_argument("--list-seconds", type=float, default=20, help="time bound per list case")
    parser.add_argument("--no-redis", action="store_true", help="run without Redis (the embedded default)")
    args = parser.parse_args(argv)
    args.backlog_sizes = [int(size) for size in args.backlogs.split(",") if size.strip()]
    if any(not 1 <= size <= 500 for size in args.backlog_sizes):
        parser.error("--backlogs: sizes from 1 to 500 (the protocol's limit)")
    for name in (
        "duration",
        "connections",
        "backlog_connections",
        "threads",
        "workers",
        "orders",
        "list_requests",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/orders.py needs wrk: apt-get install -y wrk", file=sys.stderr)
        return 2
    gunicorn = VENV_BIN / "gunicorn"
    if not gunicorn.exists():
        print(f"{gunicorn} is missing: run `make install` first.", file=sys.stderr)
        return 2

    use_redis = not args.no_redis
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_prefix = f"ING{secrets.token_hex(3)}"
    key_prefix = f"csbench-orders-{stamp}-{secrets.token_hex(3)}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / f"orders-{stamp}.log"
    env = server_env(use_redis=use_redis, key_prefix=key_prefix)
    env.update(
        DATABASE_URL=DB_URL,
        # Hundreds of list requests a minute from one user: the staff throttle stays on, out of reach.
        THROTTLE_USER="1000000/min",
    )
    children = Children()
    old_handlers = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    workdir = Path(tempfile.mkdtemp(prefix="coffeeshop-bench-orders-"))
    bench_started = time.monotonic()
    try:
        if use_redis:
            try:
                redis_client().ping()
            except Exception as exc:
                raise BenchError(f"Redis at {REDIS_URL} is not reachable ({exc}); use --no-redis") from exc
        step(f"fresh database {DB_NAME} on {HOST}:5432")
        pg_version = recreate_database(DB_NAME)
        manage(env, "migrate", "--no-input")
        secret = shell_json(env, SEED_SECRET.format(merchant_a=MERCHANT_A))["secret"]

        port = free_port()
        step(
            f"gunicorn coffeeshop.wsgi, {args.workers} sync workers, {HOST}:{port}, "
            f"{'Redis' if use_redis else 'no Redis'}; log: {log_path.relative_to(ROOT)}"
        )
        server = start_gunicorn(children, env, workers=args.workers, port=port, log_path=log_path)

        step(
            f"registering {MACHINES_PER_MERCHANT} machines of {MERCHANT_A} through the API; "
            f"seeding {MERCHANT_B}"
        )
        machines = register_fleet(port, secret, MACHINES_PER_MERCHANT)
        seed = shell_json(
            env,
            SEED.format(
                merchant_a=MERCHANT_A,
                merchant_b=MERCHANT_B,
                machines=MACHINES_PER_MERCHANT,
                locations=LOCATIONS_PER_MERCHANT,
            ),
        )

        step(f"loading {args.orders:,} orders over {DAYS} days for 2 × {MACHINES_PER_MERCHANT} machines")
        dataset = load_orders(args.orders)
        step(
            f"loaded {dataset['orders']:,} orders in {dataset['insert_s']} s (+ VACUUM ANALYZE: "
            f"{dataset['total_s']} s); orders {dataset['orders_table_size']}, "
            f"items {dataset['items_table_size']}"
        )

        runs: dict[str, IngestRun] = {}
        plan = [("ceiling", "ceiling", 0, args.connections), ("single", "ingest", 0, args.connections)]
        plan += [(f"backlog_{size}", "ingest", size, args.backlog_connections) for size in args.backlog_sizes]
        for name, mode, batch, connections in plan:
            lua = workdir / f"{name}.lua"
            run_tag = f"{run_prefix}{name[0]}{batch}"
            common = {
                "port": port,
                "threads": min(args.threads, connections),
                "connections": connections,
                "batch": batch,
                "log_path": log_path,
            }
            if args.warmup:
                write_lua(
                    lua,
                    mode=mode,
                    batch=batch,
                    threads=common["threads"],
                    run=run_tag + "w",
                    machines=machines,
                )
                step(f"{name}: warm-up {args.warmup} s")
                warm = run_wrk(children, name=f"{name} warm-up", lua=lua, duration_s=args.warmup, **common)
                settle(run_prefix)
                if warm.non_2xx:
                    raise BenchError(f"{name} warm-up got {warm.non_2xx} non-2xx replies: {warm.first_bad}")
            write_lua(lua, mode=mode, batch=batch, threads=common["threads"], run=run_tag, machines=machines)
            step(f"{name}: measuring {args.duration} s, {connections} connections")
            before = cpu_snapshot(server.pid) if cpu_snapshot else None
            run = run_wrk(children, name=name, lua=lua, duration_s=args.duration, **common)
            if before is not None:
                run.cpu = cpu_between(before, cpu_snapshot(server.pid), run.requests)
            settle(run_prefix)
            if mode == "ingest":
                run.database = ingested(run_tag + "-")
            runs[name] = run
            step(
                f"{name}: {run.rps:,.0f} req/s, {run.orders_per_s:,.0f} orders/s, p50 {run.p50_ms:.1f} ms, "
                f"p99 {run.p99_ms:.1f} ms, non-2xx {run.non_2xx}"
            )
            if run.cpu:
                step(cpu_line(name, run.cpu))
            if server.poll() is not None:
                raise BenchError(f"gunicorn died during {name}:\n{log_path.read_text()[-3000:]}")
        deleted = delete_ingested(run_prefix)
        step(
            f"deleted the {deleted:,} orders the ingest runs added; the list runs on the loaded orders alone"
        )

        newest = datetime.now(UTC)
        week_ago = (newest - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with pg() as conn:
            busy_device, some_order = conn.execute(
                "SELECT device_id, max(machine_order_id) FROM orders_order WHERE merchant_id = %s"
                " GROUP BY device_id ORDER BY device_id LIMIT 1",
                (seed["merchant_a"],),
            ).fetchone()
        first_pages = list(range(1, 11))
        # A fifth of the way into merchant A's orders: page 2,000 of 10,000 with the default million.
        deep_page = max(1, min(2000, dataset["per_merchant"][str(seed["merchant_a"])] // PAGE_SIZE // 5))
        cases = [
            ("ops", "page 1-10", {}, first_pages),
            ("platform", "page 1-10", {}, first_pages),
            ("ops", f"page {deep_page:,} (offset {(deep_page - 1) * PAGE_SIZE:,})", {}, [deep_page]),
            (
                "ops",
                "payment_method=alipay, last 7 days",
                {"payment_method": "alipay", "from": week_ago},
                first_pages,
            ),
            ("ops", "payment_status=refunded", {"payment_status": "refunded"}, first_pages),
            ("ops", "one machine (device_id)", {"device_id": busy_device}, first_pages),
            ("platform", "exception=true", {"exception": "true"}, [1]),
            ("ops", "search: one order id (query=)", {"query": some_order}, [1]),
        ]
        tokens = {"ops": seed["ops_token"], "platform": seed["platform_token"]}
        emails = {"ops": "ops@bench.example.com", "platform": "platform@bench.example.com"}
        listing = []
        for who, label, params, pages in cases:
            result = time_list_case(
                port,
                who=who,
                token=tokens[who],
                params=params,
                pages=pages,
                requests=args.list_requests,
                max_s=args.list_seconds,
            )
            result["label"] = label
            listing.append(result)
            step(
                f"list as {who}, {label}: {result['matching']:,} matching, p50 {result['p50_ms']:.1f} ms, "
                f"p95 {result['p95_ms']:.1f} ms ({result['requests']} requests)"
            )

        step("timing the list's count(*) and page queries on their own")
        query_cases = [
            (who, emails[who], urllib.parse.urlencode(params), pages[0]) for who, _, params, pages in cases
        ]
        timed = shell_json(env, QUERY_TIMES.format(cases=query_cases, page_size=PAGE_SIZE))
        for case, (who, label, _, _) in zip(timed["cases"], cases, strict=True):
            case["label"] = label
            case["who"] = who

        ceiling = runs["ceiling"]
        problems = []
        for run in runs.values():
            if run.non_2xx or any(run.socket_errors.values()):
                problems.append(
                    f"{run.name}: {run.non_2xx} non-2xx, socket errors {run.socket_errors} "
                    f"(first: {run.first_bad or 'none recorded'})"
                )
            if run.name == "ceiling":
                continue
            db = run.database
            # wrk stops counting at the deadline; requests in flight then may still be committed.
            in_flight = run.connections * max(run.batch, 1)
            if not run.accepted <= db["orders"] <= run.accepted + in_flight:
                problems.append(f"{run.name}: {run.accepted} orders accepted, {db['orders']} in the database")
            if db["orders"] and (db["items"] != db["orders"] or db["items_per_order"] != [1, 1]):
                problems.append(f"{run.name}: items do not match orders: {db}")
        slow_counts = [c for c in timed["cases"] if c["count_ms"] > 2 * c["page_ms"] and c["count_ms"] > 20]
        report = {
            "benchmark": "orders",
            "timestamp": stamp,
            "command": " ".join(
                [".venv/bin/python", "bench/orders.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "commit": git_commit(),
            "config": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "connections": args.connections,
                "backlog_connections": args.backlog_connections,
                "wrk_threads": args.threads,
                "gunicorn_workers": args.workers,
                "worker_class": "sync",
                "store": "PostgreSQL + Redis" if use_redis else "PostgreSQL, no Redis",
                "machines_ingesting": len(machines),
                "database": DB_NAME,
                "page_size": PAGE_SIZE,
                "list_requests": args.list_requests,
                "list_seconds": args.list_seconds,
            },
            "versions": versions(pg_version, use_redis),
            "dataset": dataset,
            "ingest": {name: asdict(run) for name, run in runs.items()},
            "single_share_of_ceiling": round(runs["single"].rps / ceiling.rps, 4) if ceiling.rps else None,
            "list": listing,
            "query_times": timed["cases"],
            "row_estimate": {"value": timed["estimate"], "ms": timed["estimate_ms"]},
            "count_dominates": [f"{c['who']}: {c['label']}" for c in slow_counts],
            "shared_machine_runs": [
                run.name for run in runs.values() if run.cpu.get("other_cores", 0) > NOISE_CORES
            ],
            "problems": problems,
            "elapsed_s": round(time.monotonic() - bench_started, 1),
        }
        out_path = RESULTS_DIR / f"orders-{stamp}.json"
        out_path.write_text(json.dumps(report, indent=2, default=str) + "\n")

        print()
        print(
            f"{args.workers} gunicorn sync workers, {report['config']['store']}, wrk -t{args.threads}, "
            f"{args.duration} s per ingest run ({args.warmup} s warm-up), "
            f"{len(machines)} machines round robin; "
            f"list: {dataset['orders']:,} orders, sequential requests, page size {PAGE_SIZE}"
        )
        print()
        print(markdown(report))
        print()
        if slow_counts:
            print(
                "The pagination's count(*) costs more than twice the page itself in: "
                + "; ".join(report["count_dominates"])
            )
        for case in timed["cases"][:2]:
            print(
                f"count options, {case['who']} unfiltered: count(*) {case['count_ms']:.1f} ms; "
                f"count capped at 10,001 rows {case['capped_count_10001_ms']:.1f} ms; "
                f"planner estimate (pg_class.reltuples) "
                f"{timed['estimate']:,} rows in {timed['estimate_ms']:.2f} ms"
            )
        if report["shared_machine_runs"]:
            print(
                f"WARNING: other processes used more than {NOISE_CORES} core during "
                f"{', '.join(report['shared_machine_runs'])}: those figures are low and noisy; "
                "run again on an idle machine before quoting them."
            )
        print(f"results: {out_path.relative_to(ROOT)} ({report['elapsed_s']:.0f} s in all)")
        if problems:
            print("\nFAILED: the run cannot be trusted:\n  - " + "\n  - ".join(problems), file=sys.stderr)
            return 1
        return 0
    except BenchError as exc:
        print(f"\nbench/orders.py: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("\nbench/orders.py: interrupted; stopping gunicorn and wrk", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        if use_redis:
            with contextlib.suppress(Exception):
                delete_redis_keys(key_prefix)
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
