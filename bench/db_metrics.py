"""What django-prometheus's database metrics (DB_METRICS, on by default) cost a query: the same bare
query through Django's own engine and through the metered one, in alternating rounds (each first in
every other round) on the same database in one process, so both see the same machine load.

    .venv/bin/python bench/db_metrics.py [--database-url postgres://postgres@127.0.0.1:5432/postgres]
                                         [--queries 5000] [--rounds 7]

The query is `SELECT 1` with its row fetched (the cheapest round trip there is, so the ratio is the
largest a query can see). It runs on PostgreSQL (`--database-url`; no table is read or written) and on
an SQLite file, each both ways that /metrics can be collected: in one process's memory and in
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, as `make run-prod` runs, where every count is written to
a memory-mapped file). Each case runs in a fresh interpreter, since prometheus_client picks its mode at
import. The figure is the median over rounds of the CPU time per query (process time: on a shared
machine wall time mostly measures the neighbours), metered minus plain, and as a ratio to plain.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAIN = {"postgresql": "django.db.backends.postgresql", "sqlite": "django.db.backends.sqlite3"}
METERED = {
    "postgresql": "django_prometheus.db.backends.postgresql",
    "sqlite": "django_prometheus.db.backends.sqlite3",
}


def measure(vendor: str, database_url: str, queries: int, rounds: int) -> dict:
    """In this process: CPU µs per query, plain and metered, one entry per round."""
    import dj_database_url
    import django
    from django.conf import settings

    if vendor == "postgresql":
        base = dj_database_url.parse(database_url)
    else:
        base = {"NAME": str(Path(tempfile.mkdtemp()) / "bench.sqlite3")}
    settings.configure(
        DATABASES={
            "default": {**base, "ENGINE": PLAIN[vendor]},
            "metered": {**base, "ENGINE": METERED[vendor]},
        },
        INSTALLED_APPS=["django_prometheus"],
        USE_TZ=True,
    )
    django.setup()
    from django.db import connections

    def per_query_us(alias: str) -> float:
        with connections[alias].cursor() as cursor:
            started = time.process_time()
            for _ in range(queries):
                cursor.execute("SELECT 1")
                cursor.fetchone()
            return (time.process_time() - started) / queries * 1e6

    per_query_us("default"), per_query_us("metered")  # connect and warm up both
    times = {"default": [], "metered": []}
    for n in range(rounds):
        for alias in ("default", "metered") if n % 2 else ("metered", "default"):  # neither always first
            times[alias].append(per_query_us(alias))
    return {"plain_us": times["default"], "metered_us": times["metered"]}


def run_case(vendor: str, multiprocess: bool, args) -> dict:
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as metrics_dir:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        command = [sys.executable, __file__, "--case", vendor, "--database-url", args.database_url]
        command += ["--queries", str(args.queries), "--rounds", str(args.rounds)]
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{vendor} ({'multiprocess' if multiprocess else 'one process'}) failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--case", choices=PLAIN, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.database_url, args.queries, args.rounds)))
        return
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} cores; {args.queries} queries x {args.rounds} rounds")
    print("| database | metrics kept | plain query (CPU µs) | metered (CPU µs) | added per query | ratio |")
    print("|---|---|---|---|---|---|")
    for vendor in PLAIN:
        for multiprocess in (False, True):
            result = run_case(vendor, multiprocess, args)
            plain = statistics.median(result["plain_us"])
            metered = statistics.median(result["metered_us"])
            where = "multiprocess files" if multiprocess else "process memory"
            print(
                f"| {vendor} | {where} | {plain:.1f} | {metered:.1f} | {metered - plain:+.1f} µs "
                f"| {metered / plain:.2f} |"
            )


if __name__ == "__main__":
    main()
