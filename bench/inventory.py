"""The material catalogue and the fleet's bins at scale: a 10,000-row spreadsheet imported through the
API and through the admin (preview, confirm, and the same file once more), and the fleet bin page with
5,000 machines × 8 bins, each request beside the bare view of the same server in the same run.

    .venv/bin/python bench/inventory.py [--rows 10000] [--worker-timeout 30] [--machines 5000]
                                        [--part all|import|bins] [--workers 2]

What it does, in order (bench/README.md, "Materials", explains how to read the result):

1. creates a fresh PostgreSQL database `coffeeshop_bench_inv` (dropping only that one), migrates it,
   runs collectstatic (production's admin needs it) and seeds four merchants with an Ops user each
   (a DRF token, a password), and with bulk_create a fifth: --machines machines of 8 bins, their
   catalogue, locations and an Ops user (bench/inventory_bins.py);
2. starts the production server configuration as bench/heartbeat.py does (its code): gunicorn sync
   workers on `coffeeshop.wsgi` (gunicorn.conf.py's worker, gunicorn's worker timeout unless
   --worker-timeout), DJANGO_ENV=production, PostgreSQL, Redis, `bench.settings` (the app's settings
   plus `/bench/ceiling`);
3. times the bare view `GET /bench/ceiling` (sequential requests, the same client), before and after;
4. the import (bench/inventory_import.py): writes the sheet as a manager's Excel saves it (UTF-8 with
   BOM, every column the import reads, Chinese names), and imports it through the API with a token
   (`dry_run=true`, then the confirm, then the same file again) and through the admin as a browser does
   (login, the import page, the upload and its preview page, the confirmation, the list; then the same
   file again); counts the queries of the same requests on a --sample-rows sheet in a Django shell; and
   checks that each catalogue holds exactly --rows materials as the sheet says, none saved by the
   second import;
5. the bin page: page 1, the middle page and `state=low&material=…`, through `GET /api/v1/bins` and
   `/admin/inventory/bin/`, sequential requests each checked (count, filter, urgency order), and the
   queries of each in a Django shell;
6. prints Markdown tables, writes bench/results/inventory-<timestamp>.json, stops gunicorn.

It exits 1 when a phase got no reply or a wrong one, or a database check fails. It leaves no process
behind (gunicorn runs in its own process group, killed in `finally`), deletes its Redis keys, and drops
no database but `coffeeshop_bench_inv`, which it leaves in place for inspection.
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

from bench.commands import start_worker  # noqa: E402
from bench.heartbeat import (  # noqa: E402  (the server-starting code is bench/heartbeat.py's)
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
from bench.inventory_bins import BINS_PER_MACHINE, bins_table, measure_bins, seed_fleet  # noqa: E402
from bench.inventory_import import catalogue_line, import_table, measure_import  # noqa: E402
from bench.orders import step  # noqa: E402
from bench.runner import guarded, run_files, verdict  # noqa: E402
from bench.staff import StaffClient, ceiling_latency_ms  # noqa: E402

DB_NAME = "coffeeshop_bench_inv"
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
DEFAULT_REDIS_URL = f"redis://{HOST}:6379/6"
KEY_PREFIX = "coffeeshop-benchinv"
PASSWORD = "Bench-" + secrets.token_urlsafe(12)
# Who imports what: (key, merchant, user). The API and the admin each fill an empty catalogue of its own.
PEOPLE = (
    ("api", "Bench Catalogue Co", "ops-api@bench.example.com"),
    ("admin", "Bench Admin Co", "ops-admin@bench.example.com"),
    ("sample_api", "Bench Sample API Co", "ops-sample-api@bench.example.com"),
    ("sample_admin", "Bench Sample Admin Co", "ops-sample-admin@bench.example.com"),
)

SEED = """
import json
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
out = {{}}
for key, name, email in {people!r}:
    merchant = Merchant.objects.create(name=name)
    user = User.objects.create_user(email, password={password!r}, name=key, role=Role.OPS)
    grant_merchant_access(user, merchant)
    out[key] = {{"merchant_id": merchant.pk, "token": Token.objects.create(user=user).key}}
print("BENCH_JSON " + json.dumps(out))
"""


# --- Main -----------------------------------------------------------------------------------------


def gunicorn_default_timeout() -> int:
    from gunicorn.config import Timeout

    return int(Timeout.default)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000, help="materials in the sheet")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--worker-timeout",
        type=int,
        default=gunicorn_default_timeout(),
        help="gunicorn's worker timeout in seconds (default: gunicorn's, which production keeps)",
    )
    parser.add_argument(
        "--job-timeout",
        type=float,
        default=900,
        help="seconds an import job may take before the run gives up",
    )
    parser.add_argument(
        "--ceiling-requests", type=int, default=200, help="bare-view requests, before and after"
    )
    parser.add_argument(
        "--sample-rows", type=int, default=100, help="rows of the query-count sheet (0: none)"
    )
    parser.add_argument("--machines", type=int, default=5_000, help=f"machines of {BINS_PER_MACHINE} bins")
    parser.add_argument("--page-requests", type=int, default=20, help="requests per bin-page case")
    parser.add_argument("--page-seconds", type=float, default=6, help="time bound per bin-page case")
    parser.add_argument(
        "--part", choices=["all", "import", "bins"], default="all", help="the import, the bin page, or both"
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the server (%(default)s)")
    args = parser.parse_args(argv)
    for name in ("rows", "workers", "worker_timeout", "ceiling_requests", "machines", "page_requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.sample_rows < 0:
        parser.error("--sample-rows must be 0 or more")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp, log_path = run_files("inventory")
    key_prefix = f"{KEY_PREFIX}-{stamp}-{secrets.token_hex(3)}"
    workdir = Path(tempfile.mkdtemp(prefix="coffeeshop-bench-inventory-"))
    env = server_env(use_redis=True, key_prefix=key_prefix)
    # A run sends a few hundred staff requests a minute from one user: the throttle stays on, out of reach.
    env.update(DATABASE_URL=DB_URL, REDIS_URL=args.redis_url, THROTTLE_USER="1000000/min")
    env["COFFEESHOP_DATA_DIR"] = str(workdir)  # collectstatic's files and uploads, this run's only
    command = [".venv/bin/python", "bench/inventory.py", *(argv if argv is not None else sys.argv[1:])]
    return guarded(
        "bench/inventory.py",
        lambda children: run(
            children, args, env, stamp=stamp, log_path=log_path, workdir=workdir, command=command
        ),
        cleanup=(lambda: delete_redis_keys(key_prefix, args.redis_url), lambda: shutil.rmtree(workdir)),
    )


def run(children, args, env, *, stamp: str, log_path: Path, workdir: Path, command: list[str]) -> int:
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        redis_client(args.redis_url).ping()
    except Exception as exc:
        raise BenchError(f"Redis at {args.redis_url} is not reachable ({exc}): start it first") from exc
    step(f"fresh database {DB_NAME} on {HOST}:5432")
    pg_version = recreate_database(DB_NAME)
    manage(env, "migrate", "--no-input")
    step("collectstatic (the admin's pages answer 500 in production until it has run)")
    manage(env, "collectstatic", "--no-input")
    seed = shell_json(env, SEED.format(people=PEOPLE, password=PASSWORD))
    fleet = seed_fleet(env, machines=args.machines, password=PASSWORD) if args.part != "import" else None

    port = free_port()
    production_timeout = args.worker_timeout == gunicorn_default_timeout()
    step(
        f"gunicorn coffeeshop.wsgi, {args.workers} sync workers, worker timeout {args.worker_timeout} s"
        f"{' (production)' if production_timeout else ' (NOT production: --worker-timeout)'}, "
        f"{HOST}:{port}; log: {log_path.relative_to(ROOT)}"
    )
    server = start_gunicorn(
        children,
        env,
        workers=args.workers,
        port=port,
        log_path=log_path,
        timeout_s=None if production_timeout else args.worker_timeout,
    )
    probe = StaffClient(port)
    ceiling = {"before": ceiling_latency_ms(probe, requests=args.ceiling_requests)}
    step(f"bare view: p50 {ceiling['before']['p50_ms']:.2f} ms, {ceiling['before']['requests']} requests")

    imported = bins = None
    if args.part != "bins":
        step("a Celery worker (solo pool) for the import jobs, its queue purged first")
        with log_path.open("a") as log:
            worker = start_worker(children, env, log)
        imported = measure_import(
            port=port,
            server_pid=server.pid,
            worker_pid=worker.pid,
            log_path=log_path,
            env=env,
            db_name=DB_NAME,
            seed=seed,
            people=PEOPLE,
            password=PASSWORD,
            args=args,
            workdir=workdir,
        )
    if fleet is not None:
        bins = measure_bins(
            port=port,
            server_pid=server.pid,
            env=env,
            db_name=DB_NAME,
            fleet=fleet,
            password=PASSWORD,
            args=args,
        )
    ceiling["after"] = ceiling_latency_ms(probe, requests=args.ceiling_requests)
    probe.close()
    step(f"bare view after: p50 {ceiling['after']['p50_ms']:.2f} ms")
    # The ratios' denominator: the mean of the two medians, so a machine that got busier (or quieter)
    # during the run moves it half-way.
    ceiling.update(
        p50_ms=round((ceiling["before"]["p50_ms"] + ceiling["after"]["p50_ms"]) / 2, 3),
        requests=ceiling["before"]["requests"] + ceiling["after"]["requests"],
    )
    if server.poll() is not None:
        raise BenchError(f"gunicorn died during the run:\n{log_path.read_text()[-3000:]}")

    report = {
        "benchmark": "inventory",
        "timestamp": stamp,
        "command": " ".join(command),
        "commit": git_commit(),
        "config": {
            "part": args.part,
            "rows": args.rows,
            "sheet_bytes": imported and imported["sheet_bytes"],
            "machines": args.machines,
            "bins_per_machine": BINS_PER_MACHINE,
            "page_requests": args.page_requests,
            "gunicorn_workers": args.workers,
            "worker_class": "coffeeshop.shedding.SheddingSyncWorker",
            "worker_timeout_s": args.worker_timeout,
            "production_worker_timeout": production_timeout,
            "store": "PostgreSQL + Redis",
            "database": DB_NAME,
            "sample_rows": args.sample_rows,
        },
        "versions": versions(pg_version, use_redis=False),
        "ceiling": ceiling,
        "import": imported,
        "bins": bins,
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "shared_machine_phases": [
            p["name"]
            for p in [*(imported or {}).get("phases", []), *(bins or {}).get("cases", [])]
            if p.get("cpu", {}).get("other_cores", 0) > NOISE_CORES
        ],
        "problems": [*(imported or {}).get("problems", []), *(bins or {}).get("problems", [])],
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    out_path = RESULTS_DIR / f"inventory-{stamp}.json"
    out_path.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    print()
    print(
        f"{args.workers} gunicorn sync workers, worker timeout {args.worker_timeout} s, PostgreSQL + Redis; "
        f"sequential requests; load average {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}; "
        f"{report['elapsed_s']:.0f} s in all"
    )
    if imported:
        print()
        print(import_table(report))
        print()
        for who, found in imported["database_check"].items():
            print(f"database, {who} catalogue: {catalogue_line(found)}")
    if bins:
        print()
        print(bins_table(report))
        print()
        print(f"tables: {', '.join(f'{name} {size}' for name, size in bins['table_sizes'].items())}")
    return verdict(
        out_path, report["problems"], noisy=report["shared_machine_phases"], noise_cores=NOISE_CORES
    )


if __name__ == "__main__":
    sys.exit(main())
