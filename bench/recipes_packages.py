"""A recipe package build of --recipes published recipes as an operator starts it (`POST
/api/v1/packages`) and a Celery worker builds it: the job's duration (request to ready, and the job's own
start to finish), the file's bytes, then the download as a machine makes it (`GET
/api/v1/devices/{id}/packages/{package_id}`, its token) and as staff make it (`GET
/api/v1/packages/{id}/download`), sequential requests beside the bare view of the same run.

    .venv/bin/python bench/recipes_packages.py [--recipes 200] [--downloads 200] [--workers 2]
                                               [--redis-url redis://127.0.0.1:6379/7]

The server is production's configuration as bench/heartbeat.py starts it (gunicorn sync workers,
DJANGO_ENV=production, PostgreSQL, Redis, `bench.settings`), with the Celery worker and beat beside it
(`start_background_jobs`) on a queue of this run's own. It recreates `coffeeshop_bench_recipes` (that
database only, left in place for inspection), deletes its Redis keys and stops what it started. It
exits 1 when the build fails or a download is not the package's bytes. `seed_recipes`,
`measure_package_build` and `package_table` are what bench/recipes.py takes from it.
"""

from __future__ import annotations

import argparse
import hashlib
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

import httpx  # noqa: E402

from bench.heartbeat import (  # noqa: E402  (the server-starting code is bench/heartbeat.py's)
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
    start_background_jobs,
    start_gunicorn,
    versions,
)
from bench.inventory_import import ratio  # noqa: E402
from bench.orders import step  # noqa: E402
from bench.runner import around_the_bare_view, cpu_meter, guarded, report_and_verdict, run_files  # noqa: E402
from bench.staff import StaffClient, latency_ms  # noqa: E402

DB_NAME = "coffeeshop_bench_recipes"
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
DEFAULT_REDIS_URL = f"redis://{HOST}:6379/7"
KEY_PREFIX = "coffeeshop-benchrecipes"
PACKAGE_VERSION = "2026.12.100"
MACHINE_MODELS = ["CM-2000", "CM-3000"]
BUILD_TIMEOUT_S = 300

# One merchant with the materials the steps name, --recipes recipes with one published version each
# (bulk_create, as authoring.publish_version leaves them), a machine with a token, an Ops user with a
# DRF token. Each recipe's steps differ (amounts, an extra add on every third) so no two are alike.
SEED_RECIPES = """
import json
from decimal import Decimal
from django.utils import timezone
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device
from devices.services import issue_token
from inventory.models import Material
from recipes.models import Recipe, RecipeVersion

merchant = Merchant.objects.create(name="Bench Recipes Co")
Material.objects.bulk_create([
    Material(merchant=merchant, code=code, name=name, kind=kind, unit=unit)
    for code, name, kind, unit in [("BEAN-ARABICA", "阿拉比卡咖啡豆", "bean", "g"),
                                   ("MILK-POWDER", "全脂奶粉", "powder", "g"),
                                   ("CHOCOLATE", "可可粉", "powder", "g")]])
recipes = Recipe.objects.bulk_create([
    Recipe(merchant=merchant, product_id=f"drink-{{n:04d}}", name=f"饮品 {{n}}", category="coffee",
           price=Decimal("12.00") + n % 20)
    for n in range({recipes})])
now = timezone.now()

def steps(n):
    out = [{{"action": "grind", "material": "BEAN-ARABICA", "amount": 14 + n % 9, "unit": "g"}},
           {{"action": "brew", "water_ml": 30 + n % 20, "temperature_c": 90 + n % 5}},
           {{"action": "add", "material": "MILK-POWDER", "amount": 8 + n % 7, "unit": "g"}}]
    if n % 3 == 0:
        out.append({{"action": "add", "material": "CHOCOLATE", "amount": 5 + n % 4, "unit": "g"}})
    return out + [{{"action": "pour", "water_ml": 120 + n % 80}}]

versions = RecipeVersion.objects.bulk_create([
    RecipeVersion(recipe=recipe, number=1, status=RecipeVersion.Status.PUBLISHED,
                  definition={{"steps": steps(n)}}, published_at=now)
    for n, recipe in enumerate(recipes)])
device = Device.objects.create(merchant=merchant, serial="BENCH-PKG-1", model="CM-2000", firmware="1.4.2")
user = User.objects.create_user({email!r}, password={password!r}, name="recipes", role=Role.OPS)
grant_merchant_access(user, merchant)
print("BENCH_JSON " + json.dumps({{
    "merchant_id": merchant.pk, "version_ids": [v.pk for v in versions], "device_id": device.pk,
    "device_token": issue_token(device), "token": Token.objects.create(user=user).key}}))
"""

JOB_TIMES = """
import json
from recipes.models import RecipePackage
package = RecipePackage.objects.select_related("job").get(pk={package_id})
job = package.job
print("BENCH_JSON " + json.dumps({{
    "attempts": job.attempts, "status": job.status,
    "queued_to_start_s": (job.started_at - job.created_at).total_seconds(),
    "job_s": (job.finished_at - job.started_at).total_seconds(),
    "recipes": package.recipe_versions.count()}}))
"""

EMAIL = "ops-recipes@bench.example.com"
# The worker has booted when it answers a task: the build's queue time is then the queue's, not the boot's.
WORKER_ANSWERS = """
import json
from operations.tasks import sweep_commands
sweep_commands.apply_async().get(timeout=120)
print("BENCH_JSON " + json.dumps({"answered": True}))
"""


def seed_recipes(env, *, recipes: int, password: str) -> dict:
    step(f"seeding {recipes} published recipes (bulk_create), a machine and an Ops user")
    return shell_json(env, SEED_RECIPES.format(recipes=recipes, email=EMAIL, password=password))


def _build(staff: StaffClient, seed: dict) -> tuple[dict, float]:
    """Start the build as an operator does and wait for it: (the ready package, seconds to ready)."""
    started = time.monotonic()
    reply = staff.post(
        "/api/v1/packages",
        json={
            "merchant_id": seed["merchant_id"],
            "version": PACKAGE_VERSION,
            "machine_models": MACHINE_MODELS,
            "recipe_versions": seed["version_ids"],
        },
    )
    if reply.status_code != 202:  # accepted: the build is a background job
        raise BenchError(f"POST /api/v1/packages: HTTP {reply.status_code} {reply.text[:500]}")
    package_id = reply.json()["data"]["id"]
    while time.monotonic() - started < BUILD_TIMEOUT_S:
        package = staff.get(f"/api/v1/packages/{package_id}").json()["data"]
        if package["status"] == "ready":
            return package, time.monotonic() - started
        if package["status"] not in ("building",):
            raise BenchError(f"the build ended {package['status']}: {package}")
        time.sleep(0.05)
    raise BenchError(f"the package was not ready after {BUILD_TIMEOUT_S} s")


def measure_package_build(*, port, server_pid, env, seed: dict, args) -> dict:
    """The build of `seed`'s recipes and the two downloads on the server at `port`; a download whose
    bytes are not the package's is a problem of the run."""
    staff = StaffClient(port, token=seed["token"])
    machine = httpx.Client(
        base_url=f"http://{HOST}:{port}",
        headers={"Authorization": f"Device {seed['device_token']}", "X-Forwarded-Proto": "https"},
        timeout=60,
    )
    problems, downloads = [], []
    try:
        step(f"building a package of {len(seed['version_ids'])} recipes through the API and the worker")
        package, to_ready_s = _build(staff, seed)
        job = shell_json(env, JOB_TIMES.format(package_id=package["id"]))
        step(
            f"ready {to_ready_s:.2f} s after the request (job {job['job_s']:.2f} s), "
            f"{package['size']:,} bytes"
        )
        if job["recipes"] != len(seed["version_ids"]):
            problems.append(f"the package holds {job['recipes']} recipes, not {len(seed['version_ids'])}")
        paths = (
            ("machine download", machine, f"/api/v1/devices/{seed['device_id']}/packages/{package['id']}"),
            ("staff download", staff, f"/api/v1/packages/{package['id']}/download"),
        )
        for name, client, path in paths:

            def send(client=client, path=path, name=name):
                reply = client.get(path)
                if reply.status_code != 200 or hashlib.sha256(reply.content).hexdigest() != package["sha256"]:
                    raise BenchError(f"{name}: HTTP {reply.status_code}, not the package's bytes")

            try:
                cores = cpu_meter(server_pid)
                timing = latency_ms(send, requests=args.downloads, max_s=args.download_seconds)
            except BenchError as exc:
                problems.append(str(exc))
                continue
            timing["cpu"] = cores(timing["requests"])
            downloads.append({"name": name, "path": path, **timing})
            step(f"{name}: p50 {timing['p50_ms']:.2f} ms, p95 {timing['p95_ms']:.2f} ms")
    finally:
        staff.close()
        machine.close()
    return {
        "recipes": len(seed["version_ids"]),
        "to_ready_s": round(to_ready_s, 3),
        "job": job,
        "bytes": package["size"],
        "sha256": package["sha256"],
        "downloads": downloads,
        "problems": problems,
    }


def package_table(report: dict) -> str:
    """The build and the downloads as Markdown, each download beside the bare view of the same run."""
    build, bare = report["package"], report["ceiling"]["p50_ms"]
    lines = [
        f"| package of {build['recipes']} recipes | request → ready | queued → started "
        "| the job (start → finish) | bytes |",
        "|---|---:|---:|---:|---:|",
        f"| build | {build['to_ready_s']:.2f} s | {build['job']['queued_to_start_s']:.2f} s"
        f" | {build['job']['job_s']:.2f} s | {build['bytes']:,} |",
        "",
        "| download | p50 | p95 | p50 ÷ bare view | requests | gunicorn CPU per request | other cores |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in build["downloads"]:
        cpu = case["cpu"]
        lines.append(
            f"| {case['name']} | {case['p50_ms']:.2f} ms | {case['p95_ms']:.2f} ms "
            f"| {ratio(case['p50_ms'] / bare)} | {case['requests']} "
            f"| {cpu['gunicorn_cpu_ms_per_request']:.2f} ms | {cpu['other_cores']:.2f} |"
        )
    requests = report["ceiling"]["requests"]
    lines.append(f"| bare view (`/bench/ceiling`) | {bare:.2f} ms | | 1× | {requests} | | |")
    return "\n".join(lines)


# --- Main -----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", type=int, default=200, help="published recipes in the package")
    parser.add_argument("--downloads", type=int, default=200, help="sequential requests per download kind")
    parser.add_argument("--download-seconds", type=float, default=20, help="time bound per download kind")
    parser.add_argument(
        "--ceiling-requests", type=int, default=200, help="bare-view requests, before and after"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the server (%(default)s)")
    args = parser.parse_args(argv)
    for name in ("recipes", "downloads", "ceiling_requests", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp, log_path = run_files("recipes-packages")
    key_prefix = f"{KEY_PREFIX}-{stamp}-{secrets.token_hex(3)}"
    workdir = Path(tempfile.mkdtemp(prefix="coffeeshop-bench-recipes-"))
    env = server_env(use_redis=True, key_prefix=key_prefix)
    env.update(DATABASE_URL=DB_URL, REDIS_URL=args.redis_url, THROTTLE_USER="1000000/min")
    env["COFFEESHOP_DATA_DIR"] = str(workdir)  # the package files, this run's only
    env["CELERY_TASK_DEFAULT_QUEUE"] = key_prefix  # no other worker on this Redis takes the build
    command = [".venv/bin/python", "bench/recipes_packages.py", *(argv if argv is not None else sys.argv[1:])]
    return guarded(
        "bench/recipes_packages.py",
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
    password = "Bench-" + secrets.token_urlsafe(12)
    seed = seed_recipes(env, recipes=args.recipes, password=password)
    port = free_port()
    step(f"gunicorn coffeeshop.wsgi, {args.workers} sync workers, {HOST}:{port}, Celery worker and beat")
    server = start_gunicorn(children, env, workers=args.workers, port=port, log_path=log_path)
    start_background_jobs(children, env, log_path)
    shell_json(env, WORKER_ANSWERS)
    package, ceiling = around_the_bare_view(
        port,
        args.ceiling_requests,
        lambda: measure_package_build(port=port, server_pid=server.pid, env=env, seed=seed, args=args),
    )
    report = {
        "benchmark": "recipes-packages",
        "timestamp": stamp,
        "command": " ".join(command),
        "commit": git_commit(),
        "config": {"recipes": args.recipes, "gunicorn_workers": args.workers, "database": DB_NAME},
        "versions": versions(pg_version, use_redis=True),
        "ceiling": ceiling,
        "package": package,
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "shared_machine_phases": [
            d["name"] for d in package["downloads"] if d["cpu"].get("other_cores", 0) > NOISE_CORES
        ],
        "problems": package["problems"],
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    summary = (
        f"{args.workers} gunicorn sync workers, PostgreSQL + Redis, sequential requests; load average "
        f"{load_before[0]:.1f} → {os.getloadavg()[0]:.1f}; {report['elapsed_s']:.0f} s in all"
    )
    return report_and_verdict(
        report, name="recipes-packages", summary=summary, table=package_table(report), noise_cores=NOISE_CORES
    )


if __name__ == "__main__":
    sys.exit(main())
