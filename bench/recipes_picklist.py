"""The refill pick list for a location set of --machines machines (500: 20 locations of 25, 8 bins each,
beside 100 more machines at locations not in the set), through `GET /api/v1/pick-list` as JSON and as
CSV, sequential requests beside the bare view of the same server in the same run, and the queries of
each request.

    .venv/bin/python bench/recipes_picklist.py [--machines 500] [--locations 20] [--requests 100]
                                               [--workers 2] [--redis-url redis://127.0.0.1:6379/6]

A part of bench/recipes.py; alone, it:

1. creates a fresh PostgreSQL database `coffeeshop_bench_picklist` (dropping only that one), migrates
   it and seeds with bulk_create one merchant: its catalogue with pack sizes, the locations, the
   machines and their bins (levels over 0-100 %, paces over 2-20 % of the bin a day, read a few
   minutes ago), and a Viewer with a DRF token; it works out, by the pick list's rule written out
   again, how many machines and bins the list must hold and what each material totals;
2. starts the production server configuration as bench/heartbeat.py does (gunicorn sync workers on
   `coffeeshop.wsgi`, DJANGO_ENV=production, PostgreSQL, Redis, `bench.settings` with `/bench/ceiling`);
3. times the bare view before and after, and between them the pick list as JSON and as CSV, every
   reply checked (machines, bins, each material's total to fill);
4. counts each request's queries in a Django shell, prints a Markdown table and writes
   bench/results/recipes_picklist-<timestamp>.json.

It exits 1 when a reply is wrong. It leaves no process behind, deletes its Redis keys and leaves the
database in place for inspection.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # run as a script: import `bench.…`, and never shadow an app with bench/*.py

from bench.heartbeat import (  # noqa: E402
    HOST,
    NOISE_CORES,
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
from bench.inventory_bins import BINS_PER_MACHINE, CITIES, MATERIALS, QUERY_COUNTS  # noqa: E402
from bench.inventory_import import ratio  # noqa: E402
from bench.orders import step  # noqa: E402
from bench.runner import around_the_bare_view, cpu_meter, guarded, report_and_verdict, run_files  # noqa: E402
from bench.staff import StaffClient, latency_ms  # noqa: E402

DB_NAME = "coffeeshop_bench_picklist"
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
DEFAULT_REDIS_URL = f"redis://{HOST}:6379/6"
KEY_PREFIX = "coffeeshop-benchpick"
PICK_MERCHANT = "Bench Pick List Co"
PICK_EMAIL = "viewer-picklist@bench.example.com"
MACHINES_ELSEWHERE = 100  # at locations outside the set: the list must leave them out
# A pack of each material, in its unit (bags of beans and powder, bottles of syrup, sleeves of cups).
PACK_SIZES = {
    "BEAN-ARABICA": 1000,
    "BEAN-DECAF": 500,
    "MILK-POWDER": 1000,
    "OAT-POWDER": 800,
    "SUGAR": 1000,
    "CHOCOLATE": 500,
    "MATCHA": 100,
    "VANILLA-SYRUP": 750,
    "CARAMEL-SYRUP": 750,
    "WATER": 18900,
    "CUP-12OZ": 50,
    "LID-90MM": 100,
}

SEED_PICKLIST = """
import json, math
from collections import Counter
from datetime import datetime, timedelta
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device, DeviceBin, Location
from inventory.models import Material
import zoneinfo
from inventory.services.picklist import default_visit_date, visit_time

materials, packs, cities = {materials!r}, {packs!r}, {cities!r}
in_set, elsewhere, per_machine = {machines}, {elsewhere}, {per_machine}
merchant = Merchant.objects.create(name={merchant!r})
Material.objects.bulk_create([
    Material(merchant=merchant, code=code, name=name, kind=kind, unit=unit, low_threshold_pct=threshold,
             pack_size=packs[code])
    for code, name, kind, unit, capacity, threshold in materials])
locations = Location.objects.bulk_create([
    Location(merchant=merchant, name=f"{{cities[i % len(cities)]}} {{i // len(cities) + 1}} 号店",
             city=cities[i % len(cities)]) for i in range({locations} + 5)])
chosen, others = locations[:{locations}], locations[{locations}:]
now = timezone.now()
devices = Device.objects.bulk_create([
    Device(merchant=merchant, location=(chosen[i % len(chosen)] if i < in_set else others[i % len(others)]),
           serial=f"PICK-{{i:06d}}", model="CM-2000", firmware="1.4.2", alias=f"Pick {{i}}" if i % 3 else "",
           state="idle", is_online=True, last_seen_at=now, status_changed_at=now)
    for i in range(in_set + elsewhere)], batch_size=2000)
zone = zoneinfo.ZoneInfo(merchant.time_zone)
visit_at = datetime.combine(default_visit_date(now, zone), visit_time(), tzinfo=zone)
min_share = settings.PICK_LIST_MIN_SHARE_PCT / 100
bins, machines, lines, to_fill = [], set(), 0, Counter()
for m, device in enumerate(devices):
    for b in range(per_machine):
        code, _, _, unit, capacity, threshold = materials[(m + b) % len(materials)]
        level = round(((m * 31 + b * 17) * 7919 % 1000) / 10, 1)
        reported = now - timedelta(seconds=(m * 7 + b) % 600)
        pace = capacity * (2 + (m + 3 * b) % 19) / 100
        remaining = capacity * level / 100
        bins.append(DeviceBin(
            device=device, index=b + 1, material_code=code, unit=unit, capacity=capacity,
            remaining=remaining, level_pct=level, low_threshold_pct=threshold, reported_at=reported,
            drain_per_day=pace, forecast_at=reported, forecast_remaining=remaining))
        expected = max(0.0, remaining - pace * ((visit_at - reported) / timedelta(days=1)))
        fill = math.floor(max(0.0, capacity - expected))
        if m < in_set and fill > 0 and fill >= min_share * capacity:
            machines.add(m)
            lines += 1
            to_fill[code] += fill
DeviceBin.objects.bulk_create(bins, batch_size=5000)
with connection.cursor() as cursor:  # what autovacuum would have done by the time anyone looks
    cursor.execute("ANALYZE devices_device")
    cursor.execute("ANALYZE devices_devicebin")
user = User.objects.create_user({email!r}, password={password!r}, name="pick list", role=Role.VIEWER)
grant_merchant_access(user, merchant)
print("BENCH_JSON " + json.dumps({{
    "token": Token.objects.create(user=user).key,
    "location_ids": [location.pk for location in chosen],
    "expected": {{"machines": len(machines), "bins": lines, "to_fill": dict(to_fill)}},
}}))
"""


def seed_picklist(env, *, machines: int, locations: int, password: str) -> dict:
    step(
        f"seeding {machines:,} machines × {BINS_PER_MACHINE} bins at {locations} locations "
        f"(+{MACHINES_ELSEWHERE} elsewhere) and a Viewer (bulk_create)"
    )
    return shell_json(
        env,
        SEED_PICKLIST.format(
            materials=MATERIALS,
            packs=PACK_SIZES,
            cities=CITIES,
            merchant=PICK_MERCHANT,
            machines=machines,
            locations=locations,
            elsewhere=MACHINES_ELSEWHERE,
            per_machine=BINS_PER_MACHINE,
            email=PICK_EMAIL,
            password=password,
        ),
    )


def cases(seed: dict) -> list[tuple[str, str]]:
    path = "/api/v1/pick-list?location=" + ",".join(str(pk) for pk in seed["location_ids"])
    return [("pick list, JSON", path), ("pick list, CSV", f"{path}&format=csv")]


def checked(reply, name: str, expected: dict) -> None:
    """The reply is the whole list: its machines, its bins and each material's total (raises otherwise)."""
    if reply.status_code != 200:
        raise BenchError(f"{name}: HTTP {reply.status_code} {reply.text[:300]}")
    if name.endswith("CSV"):
        rows = reply.text.splitlines()
        bins = sum(1 for row in rows if row.startswith("bin,"))
        if bins != expected["bins"]:
            raise BenchError(f"{name}: {bins} bin rows, expected {expected['bins']}")
        return
    data = reply.json()["data"]
    machines, bins = len(data["machines"]), sum(len(m["bins"]) for m in data["machines"])
    totals = {t["material_code"]: round(t["to_fill"]) for t in data["totals"]}
    if (machines, bins) != (expected["machines"], expected["bins"]) or totals != expected["to_fill"]:
        raise BenchError(
            f"{name}: {machines} machines, {bins} bins, totals {totals} (expected {expected['machines']}, "
            f"{expected['bins']}, {expected['to_fill']})"
        )


def measure_picklist(*, port, server_pid, env, seed: dict, args) -> dict:
    """Each case's latency (p50, p99), cores and queries on the server at `port`, the fleet seeded."""
    api = StaffClient(port, token=seed["token"])
    results, problems = [], []
    try:
        for name, path in cases(seed):

            def send(name=name, path=path):
                checked(api.get(path), name, seed["expected"])

            try:
                for _ in range(2):  # warm: this case's plan, and each worker's first of its kind
                    send()
                cores = cpu_meter(server_pid)
                timing = latency_ms(send, requests=args.requests, max_s=args.seconds, warmup=0)
            except BenchError as exc:
                problems.append(str(exc))
                continue
            timing["cpu"] = cores(timing["requests"])
            results.append({"name": name, "path": path, "bytes": len(api.get(path).content), **timing})
            step(
                f"{name}: p50 {timing['p50_ms']:.1f} ms, p99 {timing['p99_ms']:.1f} ms ({timing['requests']})"
            )
    finally:
        api.close()
    step("counting the queries of each request (Django shell)")
    api_cases = [(name, "api", path) for name, path in cases(seed)]
    queries = shell_json(
        env, QUERY_COUNTS.format(host=HOST, token=seed["token"], email=PICK_EMAIL, cases=api_cases)
    )
    for result in results:
        counted = queries.get(result["name"], (None, None, None, ""))
        result["queries"], result["queries_ms"], result["slowest_query_ms"], result["slowest_query"] = counted
    return {"cases": results, "expected": seed["expected"], "problems": problems}


def picklist_table(report: dict) -> str:
    """The cases as a Markdown table, each beside the bare view of the same run."""
    bare = report["ceiling"]["p50_ms"]
    config, expected = report["config"], report["picklist"]["expected"]
    lines = [
        f"| pick list, {config['machines']:,} machines at {config['locations']} locations "
        f"({expected['machines']:,} machines, {expected['bins']:,} bins listed) | p50 | p99 "
        "| p50 ÷ bare view | queries (their time, in the shell) | reply | requests "
        "| gunicorn CPU per request | other cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| bare view (`/bench/ceiling`) | {bare:.1f} ms | | 1× | | | {report['ceiling']['requests']} | | |",
    ]
    for case in report["picklist"]["cases"]:
        queries = "" if case["queries"] is None else f"{case['queries']} ({case['queries_ms']:.1f} ms)"
        cpu = case["cpu"]
        lines.append(
            f"| {case['name']} | {case['p50_ms']:.1f} ms | {case['p99_ms']:.1f} ms "
            f"| {ratio(case['p50_ms'] / bare)} | {queries} | {case['bytes'] / 1024:,.0f} KiB "
            f"| {case['requests']} "
            f"| {cpu['gunicorn_cpu_ms_per_request']:.1f} ms | {cpu['other_cores']:.2f} |"
        )
    return "\n".join(lines)


# --- Alone ------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=500, help="machines in the location set")
    parser.add_argument("--locations", type=int, default=20, help="locations in the set")
    parser.add_argument("--requests", type=int, default=100, help="requests per case")
    parser.add_argument("--seconds", type=float, default=60, help="time bound per case")
    parser.add_argument(
        "--ceiling-requests", type=int, default=200, help="bare-view requests, before and after"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the server (%(default)s)")
    args = parser.parse_args(argv)
    for name in ("machines", "locations", "requests", "ceiling_requests", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp, log_path = run_files("recipes_picklist")
    key_prefix = f"{KEY_PREFIX}-{stamp}-{secrets.token_hex(3)}"
    env = server_env(use_redis=True, key_prefix=key_prefix)
    env.update(DATABASE_URL=DB_URL, REDIS_URL=args.redis_url, THROTTLE_USER="1000000/min")
    command = [".venv/bin/python", "bench/recipes_picklist.py", *(argv if argv is not None else sys.argv[1:])]
    return guarded(
        "bench/recipes_picklist.py",
        lambda children: run(children, args, env, stamp=stamp, log_path=log_path, command=command),
        cleanup=(lambda: delete_redis_keys(key_prefix, args.redis_url),),
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
    password = "Bench-" + secrets.token_urlsafe(12)
    seed = seed_picklist(env, machines=args.machines, locations=args.locations, password=password)
    step(f"the list must hold {seed['expected']['machines']:,} machines, {seed['expected']['bins']:,} bins")
    port = free_port()
    step(
        f"gunicorn coffeeshop.wsgi, {args.workers} sync workers, {HOST}:{port}; "
        f"log: {log_path.relative_to(ROOT)}"
    )
    server = start_gunicorn(children, env, workers=args.workers, port=port, log_path=log_path)
    picklist, ceiling = around_the_bare_view(
        port,
        args.ceiling_requests,
        lambda: measure_picklist(port=port, server_pid=server.pid, env=env, seed=seed, args=args),
    )
    if server.poll() is not None:
        raise BenchError(f"gunicorn died during the run:\n{log_path.read_text()[-3000:]}")
    report = {
        "benchmark": "recipes_picklist",
        "timestamp": stamp,
        "command": " ".join(command),
        "commit": git_commit(),
        "config": {
            "machines": args.machines,
            "machines_elsewhere": MACHINES_ELSEWHERE,
            "locations": args.locations,
            "bins_per_machine": BINS_PER_MACHINE,
            "requests": args.requests,
            "gunicorn_workers": args.workers,
            "store": "PostgreSQL + Redis",
            "database": DB_NAME,
        },
        "versions": versions(pg_version, use_redis=True),
        "ceiling": ceiling,
        "picklist": picklist,
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "shared_machine_phases": [
            case["name"] for case in picklist["cases"] if case["cpu"].get("other_cores", 0) > NOISE_CORES
        ],
        "problems": picklist["problems"],
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    summary = (
        f"{args.workers} gunicorn sync workers, PostgreSQL + Redis; sequential requests; load average "
        f"{load_before[0]:.1f} → {os.getloadavg()[0]:.1f}; {report['elapsed_s']:.0f} s in all"
    )
    table = picklist_table(report)
    return report_and_verdict(
        report, name="recipes_picklist", summary=summary, table=table, noise_cores=NOISE_CORES
    )


if __name__ == "__main__":
    sys.exit(main())
