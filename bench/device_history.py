"""`GET /api/v1/devices/{id}/history/chart` for one machine over 1 day (hourly points) and over 90 days
(daily points), in a fleet of --machines machines each with --days days of folded hours
(`DeviceStatusHour`, bulk-loaded by SQL), beside the bare view, in one run (PostgreSQL, gunicorn).

    .venv/bin/python bench/device_history.py [--machines 1000] [--days 90] [--keep]

The database --database is dropped and re-created (--keep reuses one loaded before).
Results: bench/results/device-history-*.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.heartbeat import (
    BenchError,
    git_commit,
    server_env,
    shell_json,
)
from bench.orders import step
from bench.runner import (
    cases_on_gunicorn,
    cpu_meter,
    guarded,
    report_and_verdict,
    run_files,
    timed_fresh_database,
)
from bench.staff import StaffClient, latency_ms

NOISE_CORES = 0.3

# Machines by bulk_create, their hours by one INSERT … SELECT over generate_series (millions of rows in
# seconds), then the reader: an Ops user of the merchant, with an API token.
LOAD = """
import json
from django.db import connection
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device, DeviceStatusHour

merchant = Merchant.objects.create(name="Bench History Co", time_zone="Asia/Shanghai")
Device.objects.bulk_create(
    [Device(merchant=merchant, serial=f"HIST-{{n:06d}}", model="CM-2000") for n in range({machines})],
    batch_size=5000,
)
with connection.cursor() as cursor:
    cursor.execute(
        '''
        INSERT INTO devices_devicestatushour (device_id, hour, online_s, known_s, samples,
            avg_temperature_c, min_temperature_c, max_temperature_c, offline_events, state_changes)
        SELECT d.id, h, CASE WHEN random() < 0.05 THEN 1800 ELSE 3600 END, 3600, 4,
            90 + 4 * random(), 88, 96, 0, (random() < 0.1)::int
        FROM devices_device d,
             generate_series(date_trunc('hour', now()) - interval '{days} days',
                             date_trunc('hour', now()) - interval '1 hour', interval '1 hour') h
        WHERE d.merchant_id = %s
        ''',
        [merchant.pk],
    )
    cursor.execute("ANALYZE devices_devicestatushour")
print("BENCH_JSON " + json.dumps({{"rows": DeviceStatusHour.objects.count()}}))
"""

READER = """
import json
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device, DeviceStatusHour

merchant = Merchant.objects.get(name="Bench History Co")
ops, created = User.objects.get_or_create(
    email="ops@history.bench", defaults={{"name": "Ops", "role": Role.OPS}}
)
if created:
    grant_merchant_access(ops, merchant)
device = Device.objects.filter(merchant=merchant).order_by("serial")[{pick}]
print("BENCH_JSON " + json.dumps({{
    "token": Token.objects.get_or_create(user=ops)[0].key,
    "device_id": device.pk,
    "rows": DeviceStatusHour.objects.count(),
    "machines": Device.objects.count(),
}}))
"""

CASES = (("1 day, hourly", 1, 24), ("90 days, daily", 90, 90))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--database", default="coffeeshop_history_bench")
    parser.add_argument("--keep", action="store_true", help="Reuse the database loaded by a run before.")
    parser.add_argument("--requests", type=int, default=200, help="Per case (fewer if --seconds run out).")
    parser.add_argument("--seconds", type=float, default=30, help="At most, per case.")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args(argv)


def measure(port: int, server_pid: int, reader: dict, args) -> tuple[list[dict], list[str]]:
    client = StaffClient(port, token=reader["token"], timeout_s=60)
    results, problems = [], []
    try:
        for name, days, expected_points in CASES:
            path = f"/api/v1/devices/{reader['device_id']}/history/chart"
            points = {}

            def send(days=days, path=path, name=name, points=points):
                start = datetime.now(UTC).timestamp() - days * 86400
                since = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                reply = client.get(f"{path}?from={since}")
                if reply.status_code != 200:
                    raise BenchError(f"{name}: HTTP {reply.status_code} {reply.text[:300]}")
                points["count"] = len(reply.json()["data"]["points"])

            send()
            cores = cpu_meter(server_pid)
            timing = latency_ms(send, requests=args.requests, max_s=args.seconds, warmup=3)
            timing["cpu"] = cores(timing["requests"])
            timing["points"] = points["count"]
            results.append({"name": name, "path": path, **timing})
            step(
                f"{name}: p50 {timing['p50_ms']:.1f} ms, p99 {timing['p99_ms']:.1f} ms, "
                f"{points['count']} points"
            )
            if abs(points["count"] - expected_points) > 1 and days <= args.days:
                problems.append(f"{name}: {points['count']} points, not about {expected_points}")
    finally:
        client.close()
    return results, problems


def table(report: dict) -> str:
    bare = report["ceiling"]["p50_ms"]
    rows = report["rows"]
    lines = [
        f"| history chart, {rows['machines']:,} machines, {rows['rows']:,} status hours | points | p50 | p99 "
        "| p50 ÷ bare view | requests | gunicorn CPU per request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        lines.append(
            f"| {case['name']} | {case['points']} | {case['p50_ms']:.1f} ms | {case['p99_ms']:.1f} ms "
            f"| {case['p50_ms'] / bare:.1f}× | {case['requests']} "
            f"| {case['cpu']['gunicorn_cpu_ms_per_request']:.1f} ms |"
        )
    lines.append(f"| bare view (`/bench/ceiling`) | | {bare:.2f} ms | | 1× | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp, log_path = run_files("device-history")

    def body(children) -> int:
        env = server_env(use_redis=False, key_prefix=f"bench-history-{stamp}")
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
        load = {}
        if not args.keep:

            def load_hours() -> dict:
                step(f"loading {args.days} days of hours for {args.machines:,} machines")
                return shell_json(env, LOAD.format(machines=args.machines, days=args.days))

            load = timed_fresh_database(env, args.database, load_hours)
            step(f"{load['rows']:,} status hours in {load['seconds']} s")
        reader = shell_json(env, READER.format(pick=args.machines // 2))
        served = cases_on_gunicorn(
            children,
            env,
            workers=args.workers,
            log_path=log_path,
            noise_cores=NOISE_CORES,
            measure=lambda port, pid: measure(port, pid, reader, args),
        )
        cases, load_before = served["cases"], served["load_average"]["before"]
        report = {
            "benchmark": "device-history",
            "timestamp": stamp,
            "commit": git_commit(),
            "config": vars(args),
            "rows": {"rows": reader["rows"], "machines": reader["machines"]},
            "load": load,
            **served,
        }
        summary = ", ".join(f"{c['name']}: p50 {c['p50_ms']:.1f} ms" for c in cases)
        summary += f"; load average {load_before[0]:.2f}"
        return report_and_verdict(
            report, name="device-history", summary=summary, table=table(report), noise_cores=NOISE_CORES
        )

    return guarded("bench/device_history.py", body)


if __name__ == "__main__":
    sys.exit(main())
