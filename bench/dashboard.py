"""`GET /api/v1/dashboard/summary` with --orders orders on --machines machines (PostgreSQL): p50/p99
through gunicorn with its sales read from the hourly rollups (what the API does), beside the same
summary with its sales read straight from the orders (bench/urls.py's twin view), and the bare view,
in one run. Each case as a platform viewer (every merchant, two currencies) and as one merchant's Ops.

    .venv/bin/python bench/dashboard.py [--orders 1000000] [--machines 5000] [--keep]

The data comes from `manage.py load-bench-orders` (SQL, then the rollup rebuild) into the database
--database (dropped and re-created; --keep reuses one loaded before). Results: bench/results/dashboard-*.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.heartbeat import (
    BenchError,
    git_commit,
    manage,
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

GOAL_P50_MS = 50
NOISE_CORES = 0.3

USERS = """
import json
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from orders.models import (Order, SalesHour, ProductSalesHour, MerchantSalesHour,
                           MerchantProductSalesHour, DeviceSalesDay)

merchant = Merchant.objects.order_by("-pk").filter(name__startswith="Bench ").last()
platform, _ = User.objects.get_or_create(email="platform@dashboard.bench", defaults={{
    "name": "Platform", "role": Role.VIEWER, "is_platform_staff": True}})
ops, created = User.objects.get_or_create(email="ops@dashboard.bench",
                                          defaults={{"name": "Ops", "role": Role.OPS}})
if created:
    grant_merchant_access(ops, merchant)
print("BENCH_JSON " + json.dumps({{
    "platform": Token.objects.get_or_create(user=platform)[0].key,
    "ops": Token.objects.get_or_create(user=ops)[0].key,
    "merchant_id": merchant.pk,
    "rows": {{"orders": Order.objects.count(), "sales_hours": SalesHour.objects.count(),
              "product_sales_hours": ProductSalesHour.objects.count(),
              "merchant_sales_hours": MerchantSalesHour.objects.count(),
              "merchant_product_sales_hours": MerchantProductSalesHour.objects.count(),
              "device_sales_days": DeviceSalesDay.objects.count()}},
}}))
"""

CASES = (
    ("platform, sales from rollups", "platform", "/api/v1/dashboard/summary"),
    ("platform, sales from orders", "platform", "/bench/dashboard-from-orders"),
    ("one merchant, sales from rollups", "ops", "/api/v1/dashboard/summary"),
    ("one merchant, sales from orders", "ops", "/bench/dashboard-from-orders"),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--machines", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--database", default="coffeeshop_bench_dashboard")
    parser.add_argument("--keep", action="store_true", help="Reuse the database loaded by a run before.")
    parser.add_argument("--requests", type=int, default=40, help="Per case (fewer if --seconds run out).")
    parser.add_argument("--seconds", type=float, default=60, help="At most, per case.")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args(argv)


def measure(port: int, server_pid: int, users: dict, args) -> tuple[list[dict], list[str]]:
    clients = {who: StaffClient(port, token=users[who], timeout_s=120) for who in ("platform", "ops")}
    results, problems, replies = [], [], {}
    try:
        for name, who, path in CASES:

            def send(who=who, path=path, name=name):
                reply = clients[who].get(path)
                if reply.status_code != 200:
                    raise BenchError(f"{name}: HTTP {reply.status_code} {reply.text[:300]}")
                replies[name] = reply.json()["data"]

            send()
            cores = cpu_meter(server_pid)
            timing = latency_ms(send, requests=args.requests, max_s=args.seconds, warmup=1)
            timing["cpu"] = cores(timing["requests"])
            results.append({"name": name, "path": path, **timing})
            step(
                f"{name}: p50 {timing['p50_ms']:.1f} ms, p99 {timing['p99_ms']:.1f} ms ({timing['requests']})"
            )
    finally:
        for client in clients.values():
            client.close()
    for who in ("platform", "one merchant"):
        rollups, orders = replies[f"{who}, sales from rollups"], replies[f"{who}, sales from orders"]
        keys = ("sales", "sales_today", "sales_per_day", "sales_per_hour", "top_products", "top_machines")
        if any(rollups[k] != orders[k] for k in keys) or not rollups["sales"]:
            problems.append(f"{who}: the figures from the rollups are not those from the orders")
    return results, problems


def table(report: dict) -> str:
    bare = report["ceiling"]["p50_ms"]
    config = report["config"]
    lines = [
        f"| summary, {config['orders']:,} orders, {config['machines']:,} machines | p50 | p99 "
        "| p50 ÷ bare view | requests | gunicorn CPU per request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        lines.append(
            f"| {case['name']} | {case['p50_ms']:.1f} ms | {case['p99_ms']:.1f} ms "
            f"| {case['p50_ms'] / bare:.1f}× | {case['requests']} "
            f"| {case['cpu']['gunicorn_cpu_ms_per_request']:.1f} ms |"
        )
    lines.append(f"| bare view (`/bench/ceiling`) | {bare:.2f} ms | | 1× | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp, log_path = run_files("dashboard")

    def body(children) -> int:
        env = server_env(use_redis=False, key_prefix=f"bench-dashboard-{stamp}")
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
        load = {}
        if not args.keep:

            def load_orders() -> dict:
                step(f"loading {args.orders:,} orders on {args.machines:,} machines over {args.days} days")
                out = manage(
                    env, "load-bench-orders", f"--orders={args.orders}", f"--machines={args.machines}",
                    f"--days={args.days}", timeout=3600,
                )  # fmt: skip
                step(out.strip())
                return {"output": out.strip()}

            load = timed_fresh_database(env, args.database, load_orders)
        users = shell_json(env, USERS.format())
        served = cases_on_gunicorn(
            children,
            env,
            workers=args.workers,
            log_path=log_path,
            noise_cores=NOISE_CORES,
            measure=lambda port, pid: measure(port, pid, users, args),
        )
        cases, load_before = served["cases"], served["load_average"]["before"]
        report = {
            "benchmark": "dashboard",
            "timestamp": stamp,
            "commit": git_commit(),
            "config": vars(args),
            "rows": users["rows"],
            "load": load,
            "goal_p50_ms": GOAL_P50_MS,
            **served,
        }
        rollups = [c for c in cases if "rollups" in c["name"]]
        summary = ", ".join(f"{c['name']}: p50 {c['p50_ms']:.1f} ms" for c in rollups)
        summary += f" (goal ≤ {GOAL_P50_MS} ms); load average {load_before[0]:.2f}"
        return report_and_verdict(
            report, name="dashboard", summary=summary, table=table(report), noise_cores=NOISE_CORES
        )

    return guarded("bench/dashboard.py", body)


if __name__ == "__main__":
    sys.exit(main())
