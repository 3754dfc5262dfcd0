"""Twice the measured capacity for a bounded time: what share is answered, shed, failed or timed out,
and whether anything acknowledged was lost.

    .venv/bin/python bench/overload.py [--machines 1000] [--duration 30] [--factor 2] [--workers 2]
                                       [--max-queue-wait-ms N]

What it does, in order (bench/README.md, "Overload", explains how to read the result):

1. creates a fresh PostgreSQL database `coffeeshop_bench_overload` (dropping only that one), migrates it
   and seeds a merchant and the materials the machines report;
2. starts the production server configuration as bench/heartbeat.py does (its code, imported): gunicorn
   sync workers on `coffeeshop.wsgi`, DJANGO_ENV=production, PostgreSQL, Redis, device tokens on, and a
   Celery worker and beat beside it, with the **default throttles** for machines (240/min each);
3. registers --machines machines through the real registration endpoint (enough that twice the
   capacity stays within each machine's throttle, so the overload is the server's, not a machine's);
4. measures the capacity with the machines back to back (closed loop, --connections at once, after a
   warm-up): 2xx replies per second, the server never idle;
5. drives an open loop (bench/loadgen.py: constant arrival rate, one connection per request, latency
   counted from when a request was due) at --healthy × the capacity, where nothing may be shed, then
   at --factor × the capacity for --duration seconds: heartbeats of the machines round robin and, one
   request in --order-every, a new order with its own id;
6. waits for the server to finish what it took, flushes the heartbeat write-behind and checks in the
   database that every order answered 2xx is there exactly once, that no order answered 503 is there
   (shed before any work), and that every machine's last_seen_at is no older than its last heartbeat
   answered 2xx;
7. prints a Markdown table, writes bench/results/overload-<timestamp>.json, stops everything.

It exits 1, saying why, when an acknowledged order or heartbeat is missing, an order answered 503 was
stored, or the healthy run saw a 503, a 5xx or a time-out. It leaves no process behind (gunicorn and
Celery run in their own process groups, killed in `finally`), deletes its Redis keys and drops no
database but `coffeeshop_bench_overload`, which it leaves in place for inspection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # run as a script: import `bench.…`, and never shadow an app with bench/*.py

from redis import Redis  # noqa: E402

from bench.heartbeat import (  # noqa: E402  (the server-starting code is bench/heartbeat.py's)
    BINS,
    HOST,
    NOISE_CORES,
    RESULTS_DIR,
    SEED,
    VENV_BIN,
    BenchError,
    Children,
    cpu_between,
    cpu_snapshot,
    free_port,
    manage,
    recreate_database,
    register_fleet,
    server_env,
    shell_json,
    start_background_jobs,
    start_gunicorn,
    versions,
)
from bench.loadgen import Exchange, LoadGenerator  # noqa: E402
from bench.orders import pg as orders_pg  # noqa: E402
from bench.orders import step  # noqa: E402

DB_NAME = "coffeeshop_bench_overload"
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
MERCHANT_NAME = "Bench Overload Co"
DEFAULT_DEVICE_THROTTLE_PER_MIN = 240  # THROTTLE_DEVICE's default (settings.py)
ORDER_PREFIX = "OVL-"
PHASE_PAUSE_S = 3  # between phases, for the queue of the one before to drain
FLUSH = """
import json
from devices.services import flush_heartbeats
print("BENCH_JSON " + json.dumps({"flushed": flush_heartbeats()}))
"""


def pg(dbname: str = DB_NAME, **kwargs):
    return orders_pg(dbname, **kwargs)


# --- The traffic -----------------------------------------------------------------------------------


class Traffic:
    """Request i: a heartbeat of machine i mod N, or (every `order_every`-th) a new order of that machine.

    Heartbeats repeat the machine's report (idle, the same temperature and bins), so after its first they
    take the quiet lane, as nearly all of a fleet's do; orders carry ids unique across the run.
    """

    def __init__(self, port: int, machines: list[tuple[str, str]], *, order_every: int, label: str):
        self.port, self.machines, self.order_every, self.label = port, machines, order_every, label
        self.with_orders = True
        self.heartbeats = [self._request(m, "status", self._heartbeat(n)) for n, m in enumerate(machines)]

    def _request(self, machine: tuple[str, str], action: str, body: str) -> bytes:
        device_id, token = machine
        data = body.encode()
        head = (
            f"POST /api/v1/devices/{device_id}/{action} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"X-Forwarded-Proto: https\r\nAuthorization: Device {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + data

    @staticmethod
    def _heartbeat(n: int) -> str:
        bins = [
            {"index": i, "material": code, "remaining": capacity * (90 - (n + i) % 60) / 100}
            | {"capacity": capacity, "unit": unit}
            for i, code, unit, capacity, _ in BINS
        ]
        return json.dumps(
            {
                "state": "idle",
                "temperature_c": 92.0,
                "ip": f"10.0.{n // 256 % 256}.{n % 256}",
                "wifi": {"ssid": "shop-5g", "rssi_dbm": -60},
                "firmware": "1.4.2",
                "uptime_s": 86400,
                "package_version": "2026.11.3",
                "bins": bins,
            }
        )

    def __call__(self, index: int) -> tuple[Exchange, bytes]:
        n = index % len(self.machines)
        if self.with_orders and self.order_every and index % self.order_every == self.order_every - 1:
            order_id = f"{ORDER_PREFIX}{self.label}-{index:08d}"
            body = json.dumps(
                {
                    "order_id": order_id,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                    "currency": "CNY",
                    "total": "18.00",
                    "payment": {"method": "wechat", "status": "paid", "transaction_id": f"wx-{order_id}"},
                    "items": [{"product_id": "latte", "name": "Latte", "qty": 1, "unit_price": "18.00"}],
                    "is_test": False,
                }
            )
            request = self._request(self.machines[n], "orders/create", body)
            return Exchange(index, "order", n, 0.0, 0.0, order_id=order_id), request
        return Exchange(index, "heartbeat", n, 0.0, 0.0), self.heartbeats[n]


# --- One phase ---------------------------------------------------------------------------------------


def percentile_ms(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)] * 1000, 1)


def category(exchange: Exchange) -> str:
    if exchange.outcome != "reply":
        return {"timeout": "timeout"}.get(exchange.outcome, exchange.outcome)
    status = exchange.status or 0
    if 200 <= status < 300:
        return "2xx"
    if status in (429, 503):
        return str(status)
    return "5xx" if status >= 500 else "other"


CATEGORIES = ("2xx", "429", "503", "other", "5xx", "timeout", "error", "client_error")


@dataclass
class Phase:
    name: str
    mode: str  # "closed" or "open"
    offered_rps: float | None
    duration_s: float
    exchanges: list[Exchange]
    cpu: dict
    generator_cores: float

    def summary(self) -> dict:
        counts = dict.fromkeys(CATEGORIES, 0)
        for exchange in self.exchanges:
            counts[category(exchange)] += 1
        total = len(self.exchanges)
        ok = [e.latency_s for e in self.exchanges if category(e) == "2xx"]
        shed = [e.latency_s for e in self.exchanges if category(e) in ("429", "503")]
        return {
            "name": self.name,
            "mode": self.mode,
            "offered_rps": self.offered_rps,
            "duration_s": self.duration_s,
            "requests": total,
            "counts": counts,
            "shares": {k: round(v / total, 4) if total else 0 for k, v in counts.items()},
            "answered_2xx_rps": round(counts["2xx"] / self.duration_s, 1),
            "p50_2xx_ms": percentile_ms(ok, 50),
            "p99_2xx_ms": percentile_ms(ok, 99),
            "p50_shed_ms": percentile_ms(shed, 50),
            "p99_shed_ms": percentile_ms(shed, 99),
            "generator_lag_p99_ms": percentile_ms([e.lag_s for e in self.exchanges], 99),
            "generator_cores": round(self.generator_cores, 2),
            "cpu": self.cpu,
        }


def run_phase(
    generator: LoadGenerator,
    name: str,
    *,
    server_pid,
    jobs_pids,
    rate=None,
    connections=None,
    duration_s,
    max_requests=None,
) -> Phase:
    before, cpu_before = cpu_snapshot(server_pid, jobs_pids), time.process_time()
    start = generator.next_index
    if rate is not None:
        exchanges = generator.open_loop(rate, duration_s, first_index=start)
    else:
        exchanges = generator.closed_loop(connections, duration_s, start, max_requests=max_requests)
    after, cpu_after = cpu_snapshot(server_pid, jobs_pids), time.process_time()
    generator.next_index += len(exchanges)
    elapsed = after.at - before.at
    cpu = cpu_between(before, after, len(exchanges))
    generator_cores = (cpu_after - cpu_before) / elapsed
    cpu["other_cores"] = round(max(0.0, cpu["other_cores"] - generator_cores), 2)  # it ran in this process
    cpu.pop("wrk_cores", None)
    return Phase(name, "open" if rate else "closed", rate, duration_s, exchanges, cpu, generator_cores)


# --- Nothing acknowledged lost ------------------------------------------------------------------------


def settle(timeout_s: float = 60) -> int:
    """Wait until the server has committed what it took (the order count holds still for 2 s)."""
    deadline, last, still_since = time.monotonic() + timeout_s, -1, time.monotonic()
    with pg(autocommit=True) as conn:
        while time.monotonic() < deadline:
            count = conn.execute(
                "SELECT count(*) FROM orders_order WHERE machine_order_id LIKE %s", (ORDER_PREFIX + "%",)
            ).fetchone()[0]
            if count != last:
                last, still_since = count, time.monotonic()
            elif time.monotonic() - still_since >= 2:
                return count
            time.sleep(0.25)
    raise BenchError(f"orders still arriving {timeout_s:.0f} s after the load stopped")


def check_nothing_lost(exchanges: list[Exchange], machines: list[tuple[str, str]]) -> dict:
    with pg() as conn:
        stored = dict(
            conn.execute(
                "SELECT machine_order_id, count(*) FROM orders_order"
                " WHERE machine_order_id LIKE %s GROUP BY 1",
                (ORDER_PREFIX + "%",),
            ).fetchall()
        )
        devices = conn.execute("SELECT id, last_seen_at FROM devices_device")
        last_seen = {str(pk): seen for pk, seen in devices}
    orders = [e for e in exchanges if e.kind == "order"]
    acked = [e.order_id for e in orders if category(e) == "2xx"]
    shed = [e.order_id for e in orders if category(e) in ("429", "503")]
    timed_out = [e.order_id for e in orders if e.outcome == "timeout"]
    last_acked: dict[int, float] = {}
    for e in exchanges:
        if e.kind == "heartbeat" and category(e) == "2xx":
            last_acked[e.machine] = max(last_acked.get(e.machine, 0.0), e.wall)
    stale = [
        machines[n][0]
        for n, wall in last_acked.items()
        if last_seen.get(machines[n][0]) is None or last_seen[machines[n][0]].timestamp() < wall - 0.001
    ]

    return {
        "orders_sent": len(orders),
        "orders_acknowledged": len(acked),
        "orders_acknowledged_missing": sum(1 for oid in acked if oid not in stored),
        "orders_stored_twice": sum(1 for count in stored.values() if count > 1),
        "orders_shed": len(shed),
        "orders_shed_but_stored": sum(1 for oid in shed if oid in stored),
        "orders_timed_out": len(timed_out),
        "orders_timed_out_but_stored": sum(1 for oid in timed_out if oid in stored),
        "machines_with_acknowledged_heartbeats": len(last_acked),
        "machines_last_seen_older_than_last_acknowledged_heartbeat": len(stale),
    }


# --- The server and its fleet ------------------------------------------------------------------------


@dataclass
class FleetServer:
    """A fresh database, the production shape on it, and registered machines with their load generator."""

    stamp: str
    env: dict
    log_path: Path
    children: Children
    redis: Redis
    pg_version: str
    server: object
    jobs: list
    machines: list
    generator: LoadGenerator

    @property
    def common(self) -> dict:
        return {"server_pid": self.server.pid, "jobs_pids": tuple(job.pid for job in self.jobs)}

    def versions(self) -> dict:
        return versions(self.pg_version, False) | {"redis_server": self.redis.info("server")["redis_version"]}


@contextlib.contextmanager
def fleet_server(name: str, args, *, db_name: str, merchant: str, extra_env: dict | None = None):
    """What bench/overload.py and bench/fleet.py run against; stopped, and its Redis keys deleted, on
    the way out whatever happened. `args` carries machines, workers, order_every, timeout, redis_url."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key_prefix = f"csbench-{name}-{stamp}-{secrets.token_hex(3)}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / f"{name}-{stamp}.log"
    env = server_env(use_redis=True, key_prefix=key_prefix)
    env.update(DATABASE_URL=f"postgres://postgres@{HOST}:5432/{db_name}", REDIS_URL=args.redis_url)
    env.pop("THROTTLE_DEVICE")  # the default per-machine throttle, as in production
    env.pop("MAX_QUEUE_WAIT_MS", None)
    env.update(extra_env or {})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per request in flight
    children = Children()
    redis = Redis.from_url(args.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        redis.ping()
        step(f"fresh database {db_name}")
        pg_version = recreate_database(db_name)
        manage(env, "migrate", "--no-input")
        secret = shell_json(env, SEED.format(merchant=merchant, bins=BINS))["secret"]
        port = free_port()
        step(f"gunicorn coffeeshop.wsgi, {args.workers} sync workers, on {HOST}:{port}; log: {log_path.name}")
        server = start_gunicorn(children, env, workers=args.workers, port=port, log_path=log_path)
        jobs = start_background_jobs(children, env, log_path)
        step(f"registering {args.machines} machines")
        machines = register_fleet(port, secret, args.machines)
        traffic = Traffic(port, machines, order_every=args.order_every, label=stamp[-7:-1])
        generator = LoadGenerator(port, traffic, timeout_s=args.timeout)
        yield FleetServer(
            stamp, env, log_path, children, redis, pg_version, server, jobs, machines, generator
        )
    finally:
        children.stop_all()
        with contextlib.suppress(Exception):
            for key in redis.scan_iter(match=f"{key_prefix}*", count=1000):
                redis.delete(key)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- Reporting -------------------------------------------------------------------------------------------


def pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def markdown(phases: list[dict]) -> str:
    rows = [
        "| run | offered req/s | 2xx req/s | 2xx | 429/503 | 5xx | time-outs | other | 2xx p50 / p99 "
        "| 429/503 p50 / p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        s = p["shares"]
        offered = "closed loop" if p["offered_rps"] is None else f"{p['offered_rps']:,.0f}"
        other = s["other"] + s["error"] + s["client_error"]
        rows.append(
            f"| {p['name']} | {offered} | {p['answered_2xx_rps']:,.0f} | {pct(s['2xx'])} "
            f"| {pct(s['429'] + s['503'])} | {pct(s['5xx'])} | {pct(s['timeout'])} | {pct(other)} "
            f"| {ms(p['p50_2xx_ms'])} / {ms(p['p99_2xx_ms'])} "
            f"| {ms(p['p50_shed_ms'])} / {ms(p['p99_shed_ms'])} |"
        )
    return "\n".join(rows)


def cpu_text(p: dict) -> str:
    c = p["cpu"]
    return (
        f"{p['name']}: gunicorn {c['gunicorn_cores']:.2f} + PostgreSQL/Redis {c['postgres_redis_cores']:.2f}"
        f" + Celery {c.get('celery_cores', 0):.2f} + load generator {p['generator_cores']:.2f}"
        f" + other processes {c['other_cores']:.2f} cores; generator lag p99 {ms(p['generator_lag_p99_ms'])}"
    )


# --- Main ------------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=1000, help="machines registered, round robin")
    parser.add_argument("--duration", type=int, default=30, help="seconds of overload")
    parser.add_argument("--factor", type=float, default=2.0, help="overload = factor x measured capacity")
    parser.add_argument("--healthy", type=float, default=0.5, help="the healthy run, as a share of capacity")
    parser.add_argument("--healthy-duration", type=int, default=15, help="seconds of the healthy run")
    parser.add_argument("--capacity-duration", type=int, default=15, help="seconds measuring capacity")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up, not counted")
    parser.add_argument("--connections", type=int, default=16, help="clients at once measuring capacity")
    parser.add_argument("--order-every", type=int, default=20, help="one request in N is a new order")
    parser.add_argument("--timeout", type=float, default=10.0, help="client time-out, s (the machines')")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/2",
        help="a Redis database nothing else flushes (a test suite's cache.clear() empties the database)",
    )
    parser.add_argument(
        "--max-queue-wait-ms", type=int, default=None, help="the server's MAX_QUEUE_WAIT_MS (0: no shedding)"
    )
    args = parser.parse_args(argv)
    for name in ("machines", "duration", "capacity_duration", "connections", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (VENV_BIN / "gunicorn").exists():
        print(f"{VENV_BIN / 'gunicorn'} is missing: run `make install` first.", file=sys.stderr)
        return 2
    extra = {} if args.max_queue_wait_ms is None else {"MAX_QUEUE_WAIT_MS": str(args.max_queue_wait_ms)}
    try:
        with fleet_server(
            "overload", args, db_name=DB_NAME, merchant=MERCHANT_NAME, extra_env=extra
        ) as fleet:
            return measure(args, argv, fleet)
    except BenchError as exc:
        print(f"\nbench/overload.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench/overload.py: interrupted; stopping gunicorn and Celery", file=sys.stderr)
        return 130


def measure(args, argv, fleet) -> int:
    """The capacity, the healthy run and the overload, then the database check and the report."""
    env, log_path, children, server, jobs = (
        fleet.env,
        fleet.log_path,
        fleet.children,
        fleet.server,
        fleet.jobs,
    )
    stamp, machines, generator, common = fleet.stamp, fleet.machines, fleet.generator, fleet.common
    step(
        f"warm-up: each machine's first heartbeat (the full path: back online), {args.warmup} s more, "
        f"then capacity: {args.connections} clients back to back"
    )
    # The first heartbeats take the full path, tens of ms each: 2 clients per worker keep them
    # under the shedding limit (32 at once is past capacity for them, and some would be shed).
    for clients, duration, first_round in (
        (2 * args.workers, 120, args.machines),
        (args.connections, args.warmup, None),
    ):
        warm = run_phase(
            generator,
            "warm-up",
            connections=clients,
            duration_s=duration,
            max_requests=first_round,
            **common,
        ).summary()
        if warm["counts"]["2xx"] != warm["requests"]:
            raise BenchError(f"the warm-up was not served in full: {warm['counts']}")
    capacity = run_phase(
        generator, "capacity", connections=args.connections, duration_s=args.capacity_duration, **common
    ).summary()
    rate = capacity["answered_2xx_rps"]
    step(f"capacity {rate:,.0f} req/s answered 2xx (p99 {ms(capacity['p99_2xx_ms'])})")
    per_machine_per_min = args.factor * rate * 60 / args.machines
    if per_machine_per_min > 0.8 * DEFAULT_DEVICE_THROTTLE_PER_MIN:
        raise BenchError(
            f"{args.factor} x capacity is {per_machine_per_min:.0f} requests/min per machine, near the "
            f"machine throttle ({DEFAULT_DEVICE_THROTTLE_PER_MIN}/min): use more --machines"
        )
    phases = [capacity]
    for name, share, duration in (
        ("healthy", args.healthy, args.healthy_duration),
        ("overload", args.factor, args.duration),
    ):
        time.sleep(PHASE_PAUSE_S)
        step(f"{name}: open loop at {share:g} x capacity = {share * rate:,.0f} req/s for {duration} s")
        phases.append(
            run_phase(generator, f"{name} ({share:g}x)", rate=share * rate, duration_s=duration, **common)
        )
        exchanges = phases[-1].exchanges
        phases[-1] = phases[-1].summary()
        step(f"{name}: {json.dumps(phases[-1]['counts'])}")
        if name == "overload":
            overload_exchanges = exchanges
        else:
            healthy_exchanges = exchanges
        if server.poll() is not None:
            raise BenchError(f"gunicorn died during the {name} run:\n{log_path.read_text()[-3000:]}")

    step("waiting for the server to finish, flushing the write-behind, checking the database")
    settle()
    for job in jobs:  # the last flush must not overlap a periodic one (README, Overload)
        children.stop(job)
    flushed = shell_json(env, FLUSH)["flushed"]
    check = check_nothing_lost(healthy_exchanges + overload_exchanges, machines)
    check["machines_flushed_at_the_end"] = flushed

    problems = []
    for what in (
        "orders_acknowledged_missing",
        "orders_stored_twice",
        "orders_shed_but_stored",
        "machines_last_seen_older_than_last_acknowledged_heartbeat",
    ):
        if check[what]:
            problems.append(f"database check: {what.replace('_', ' ')}: {check[what]}")
    healthy = phases[1]["counts"]
    if healthy["503"] or healthy["5xx"] or healthy["timeout"] or healthy["error"]:
        problems.append(f"the healthy run was not served in full: {healthy}")
    noisy = [p["name"] for p in phases if p["cpu"]["other_cores"] > NOISE_CORES]
    report = {
        "benchmark": "overload",
        "timestamp": stamp,
        "command": " ".join([".venv/bin/python", "bench/overload.py", *(argv or sys.argv[1:])]),
        "config": {
            "machines": args.machines,
            "gunicorn_workers": args.workers,
            "max_queue_wait_ms": env.get("MAX_QUEUE_WAIT_MS", "default (500)"),
            "order_every": args.order_every,
            "client_timeout_s": args.timeout,
            "throttle_device": f"{DEFAULT_DEVICE_THROTTLE_PER_MIN}/min (default)",
            "load_average_at_start": Path("/proc/loadavg").read_text().split()[:3],
        },
        "versions": fleet.versions(),
        "phases": phases,
        "database_check": check,
        "shared_machine_runs": noisy,
        "problems": problems,
    }
    out_path = RESULTS_DIR / f"overload-{stamp}.json"
    out_path.write_text(json.dumps(report, indent=2, default=str) + "\n")

    print()
    print(
        f"{args.machines} machines, {args.workers} gunicorn sync workers, MAX_QUEUE_WAIT_MS "
        f"{report['config']['max_queue_wait_ms']}, 1 request in {args.order_every} a new order, client "
        f"time-out {args.timeout:g} s, default machine throttle"
    )
    print()
    print(markdown(phases))
    print()
    over = phases[-1]
    print(
        f"overload: {over['answered_2xx_rps']:,.0f} req/s answered 2xx = "
        f"{over['answered_2xx_rps'] / rate:.0%} of the capacity ({rate:,.0f} req/s)"
    )
    print(
        f"orders: {check['orders_acknowledged']} acknowledged, {check['orders_acknowledged_missing']} "
        f"missing, {check['orders_stored_twice']} stored twice; {check['orders_shed']} shed, "
        f"{check['orders_shed_but_stored']} of them stored; {check['orders_timed_out']} timed out, "
        f"{check['orders_timed_out_but_stored']} of them stored anyway"
    )
    print(
        f"heartbeats: {check['machines_last_seen_older_than_last_acknowledged_heartbeat']} of "
        f"{check['machines_with_acknowledged_heartbeats']} machines last seen before their last "
        "acknowledged heartbeat"
    )
    for p in phases:
        print(cpu_text(p))
    if noisy:
        print(f"WARNING: other processes used more than {NOISE_CORES} core during: {', '.join(noisy)}")
    print(f"results: {out_path.relative_to(ROOT)}")
    if problems:
        print("\nFAILED:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
