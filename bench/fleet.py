"""How many machines one server carries: sustained heartbeats at a rising rate until p99 passes a second,
reported as machines per core at one heartbeat a minute.

    .venv/bin/python bench/fleet.py [--machines 2000] [--workers 2] [--start-rate 200] [--growth 1.25]
                                    [--step-duration 20] [--max-p99-ms 1000] [--order-every 0]

What it does, in order (bench/README.md, "Fleet", explains how to read the result):

1. creates a fresh PostgreSQL database `coffeeshop_bench_fleet` (dropping only that one), migrates it and
   seeds a merchant and the materials the machines report (bench/overload.py's code);
2. starts the production shape as bench/overload.py does: gunicorn sync workers on `coffeeshop.wsgi`
   (the load-shedding worker of gunicorn.conf.py), DJANGO_ENV=production, PostgreSQL, Redis, device
   tokens on, the default per-machine throttle, and a Celery worker and beat beside it (their periodic
   jobs, the heartbeat write-behind's flush among them, run during the steps and their CPU is counted);
3. registers --machines machines through the registration endpoint and sends each its first heartbeat
   (the full path: back online), then a few seconds of warm-up;
4. steps an open loop (bench/loadgen.py: requests leave on a schedule, latency counted from when each was
   due) of heartbeats of the machines round robin, from --start-rate requests per second, times
   --growth each step of --step-duration seconds, until a step's 2xx p99 passes --max-p99-ms, or more
   than 1 % of its requests are not answered 2xx, or the rate would near the machines' throttle;
5. the last step that held (p99 within the bound, 99 % answered 2xx) is the sustained rate R: R × 60
   machines at one heartbeat a minute, per core of this machine (R × 60 / cores) and per core the
   server's processes used in that step (gunicorn, PostgreSQL and Redis, Celery);
6. prints a Markdown table, writes bench/results/fleet-<timestamp>.json, stops everything.

It exits 1 when no step held. It leaves no process behind, deletes its Redis keys, and drops no
database but `coffeeshop_bench_fleet`, which it leaves in place for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # run as a script: import `bench.…`, and never shadow an app with bench/*.py

from bench.heartbeat import (  # noqa: E402
    NOISE_CORES,
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    git_commit,
)
from bench.orders import step  # noqa: E402
from bench.overload import (  # noqa: E402  (the server and its fleet are bench/overload.py's)
    DEFAULT_DEVICE_THROTTLE_PER_MIN,
    cpu_text,
    fleet_server,
    markdown,
    ms,
    run_phase,
)

DB_NAME = "coffeeshop_bench_fleet"
MERCHANT_NAME = "Bench Fleet Co"
HEARTBEATS_PER_MACHINE_PER_MIN = 1  # the yardstick (the protocol's machines send one every 30 s)
MAX_NOT_2XX_SHARE = 0.01
PAUSE_S = 3  # between steps, for the queue of the one before to drain


def held(step_summary: dict, max_p99_ms: float) -> bool:
    """A step the server carried: p99 of its 2xx within the bound, and 99 % of its requests answered 2xx."""
    p99 = step_summary["p99_2xx_ms"]
    return p99 is not None and p99 <= max_p99_ms and step_summary["shares"]["2xx"] >= 1 - MAX_NOT_2XX_SHARE


def server_cores(cpu: dict) -> float:
    return cpu["gunicorn_cores"] + cpu["postgres_redis_cores"] + cpu.get("celery_cores", 0.0)


def capacity_of(step_summary: dict) -> dict:
    """What a step that held says about fleets at one heartbeat a minute per machine."""
    rate = step_summary["offered_rps"]
    machines = rate * 60 / HEARTBEATS_PER_MACHINE_PER_MIN
    used = server_cores(step_summary["cpu"])
    return {
        "heartbeats_per_s": round(rate, 1),
        "machines_at_one_heartbeat_a_minute": round(machines),
        "machines_per_core_of_this_machine": round(machines / (os.cpu_count() or 1)),
        "server_cores_used": round(used, 2),
        "machines_per_core_used": round(machines / used) if used else None,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=2000, help="machines registered, round robin")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--start-rate", type=float, default=200, help="heartbeats per second of the first step"
    )
    parser.add_argument("--growth", type=float, default=1.25, help="each step's rate over the one before")
    parser.add_argument("--step-duration", type=int, default=20, help="seconds per step")
    parser.add_argument("--max-p99-ms", type=float, default=1000, help="the p99 a step must keep")
    parser.add_argument("--max-steps", type=int, default=30, help="steps at most")
    parser.add_argument("--order-every", type=int, default=0, help="one request in N a new order (0: none)")
    parser.add_argument("--timeout", type=float, default=10.0, help="client time-out, s (the machines')")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2", help="Redis for the server")
    args = parser.parse_args(argv)
    if args.growth <= 1:
        parser.error("--growth must be more than 1")
    for name in ("machines", "workers", "step_duration", "max_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def ramp(generator, args, common, server, log_path: Path) -> list[dict]:
    """The steps, each `--growth` times the one before, up to the first that did not hold."""
    steps, rate = [], args.start_rate
    throttle_rate = 0.8 * DEFAULT_DEVICE_THROTTLE_PER_MIN * args.machines / 60
    for _ in range(args.max_steps):
        if rate > throttle_rate:
            step(f"stopping: {rate:,.0f} req/s would near the machines' throttle; use more --machines")
            break
        step(f"open loop at {rate:,.0f} heartbeats/s for {args.step_duration} s")
        summary = run_phase(
            generator, f"{rate:,.0f}/s", rate=rate, duration_s=args.step_duration, **common
        ).summary()
        steps.append(summary)
        step(
            f"  2xx {summary['shares']['2xx']:.1%}, "
            f"p50 {ms(summary['p50_2xx_ms'])}, p99 {ms(summary['p99_2xx_ms'])}"
        )
        if server.poll() is not None:
            raise BenchError(f"gunicorn died during the ramp:\n{log_path.read_text()[-3000:]}")
        if not held(summary, args.max_p99_ms):
            break
        rate *= args.growth
        time.sleep(PAUSE_S)
    return steps


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (VENV_BIN / "gunicorn").exists():
        print(f"{VENV_BIN / 'gunicorn'} is missing: run `make install` first.", file=sys.stderr)
        return 2
    try:
        with fleet_server("fleet", args, db_name=DB_NAME, merchant=MERCHANT_NAME) as fleet:
            return measure(args, argv, fleet)
    except BenchError as exc:
        print(f"\nbench/fleet.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench/fleet.py: interrupted; stopping gunicorn and Celery", file=sys.stderr)
        return 130


def measure(args, argv, fleet) -> int:
    load_before = os.getloadavg()
    step("first heartbeat of every machine (the full path), then 5 s of warm-up")
    for clients, duration, first_round in ((2 * args.workers, 120, args.machines), (8, 5, None)):
        run_phase(
            fleet.generator,
            "warm-up",
            connections=clients,
            duration_s=duration,
            max_requests=first_round,
            **fleet.common,
        )
    steps = ramp(fleet.generator, args, fleet.common, fleet.server, fleet.log_path)
    carried = [s for s in steps if held(s, args.max_p99_ms)]
    sustained = capacity_of(carried[-1]) if carried else None
    noisy = [s["name"] for s in steps if s["cpu"]["other_cores"] > NOISE_CORES]
    report = {
        "benchmark": "fleet",
        "timestamp": fleet.stamp,
        "command": " ".join([".venv/bin/python", "bench/fleet.py", *(argv or sys.argv[1:])]),
        "commit": git_commit(),
        "config": {
            "machines": args.machines,
            "gunicorn_workers": args.workers,
            "cores": os.cpu_count(),
            "start_rate": args.start_rate,
            "growth": args.growth,
            "step_duration_s": args.step_duration,
            "max_p99_ms": args.max_p99_ms,
            "order_every": args.order_every,
            "throttle_device": f"{DEFAULT_DEVICE_THROTTLE_PER_MIN}/min (default)",
        },
        "versions": fleet.versions(),
        "steps": steps,
        "sustained": sustained,
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "shared_machine_steps": noisy,
    }
    out_path = RESULTS_DIR / f"fleet-{fleet.stamp}.json"
    out_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(
        f"{args.machines} machines round robin, {args.workers} gunicorn sync workers + Celery worker and "
        f"beat, {os.cpu_count()} cores; load average {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}"
    )
    print()
    print(markdown(steps))
    print()
    for s in steps:
        print(cpu_text(s))
    if noisy:
        print(f"WARNING: other processes used more than {NOISE_CORES} core during: {', '.join(noisy)}")
    print(f"results: {out_path.relative_to(ROOT)}")
    if sustained is None:
        print("\nFAILED: not even the first step held", file=sys.stderr)
        return 1
    print(
        f"\nsustained {sustained['heartbeats_per_s']:,.0f} heartbeats/s "
        f"with p99 ≤ {args.max_p99_ms:,.0f} ms: "
        f"{sustained['machines_at_one_heartbeat_a_minute']:,} machines at one heartbeat a minute, "
        f"{sustained['machines_per_core_of_this_machine']:,} per core of this machine, "
        f"{sustained['machines_per_core_used'] or 0:,} per core the server's processes used "
        f"({sustained['server_cores_used']:.2f} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
