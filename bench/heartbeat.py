"""Heartbeats per second through the whole stack, beside a bare Django JSON view (the ceiling).

    .venv/bin/python bench/heartbeat.py [--machines 200] [--duration 20] [--connections 32] [--workers 2]
                                        [--no-redis]

What it does, in order (bench/README.md explains how to read the result):

1. creates a fresh PostgreSQL database `coffeeshop_bench` (dropping only that one) and migrates it;
2. seeds a merchant and the materials the machines report;
3. starts the production server configuration: gunicorn sync workers on `coffeeshop.wsgi` with
   DJANGO_ENV=production, Redis (unless --no-redis), persistent database connections, and
   `bench.settings` (the app's settings plus `/bench/ceiling`), and beside it a Celery worker and
   beat running the periodic jobs (the heartbeat flush every 15 s), whose CPU is counted;
4. registers N machines through the real registration endpoint;
5. drives `wrk` (loopback only, bounded by --duration) first at `/bench/ceiling`, then at the
   heartbeat, N machines round robin with protocol heartbeats whose bin levels move slowly, so most
   heartbeats are unchanged and a few (1 in --change-every per machine) carry moved bin levels; each
   run is preceded by a warm-up;
6. samples the gunicorn processes' VmRSS every 100 ms;
7. checks that the periodic flush wrote bin levels during the run, flushes the write-behind and checks
   in the database that every machine's heartbeats arrived;
8. prints a Markdown table, writes bench/results/heartbeat-<timestamp>.json, stops gunicorn.

It leaves no process behind (gunicorn, Celery and wrk run in their own process groups, killed in
`finally`), and drops no database but `coffeeshop_bench`, which it leaves in place for inspection.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
VENV_BIN = ROOT / ".venv" / "bin"
RESULTS_DIR = ROOT / "bench" / "results"

HOST = "127.0.0.1"  # the only address this benchmark ever sends traffic to
DB_NAME = "coffeeshop_bench"
DB_ADMIN_URL = f"postgresql://postgres@{HOST}:5432/postgres"
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
REDIS_URL = f"redis://{HOST}:6379/2"
MERCHANT_NAME = "Bench Coffee Co"
SERIAL_PREFIX = "BENCH-"
GOAL_SHARE = 0.5
RSS_SAMPLE_INTERVAL_S = 0.1
NOISE_CORES = 0.1  # CPU used by processes that are not part of the bench, above which a run is flagged
FLUSH_EVERY_S = 15  # the *Flush heartbeats* schedule that migrations create (devices/migrations/0002)

# The materials the simulated machines carry: (index, code, unit, capacity, whole percent drained per step).
BINS = (
    (1, "BEAN-ARABICA", "g", 1000, 2),
    (2, "MILK-POWDER", "g", 800, 1),
    (3, "SUGAR", "g", 500, 1),
    (4, "CHOCOLATE", "g", 500, 1),
    (5, "WATER", "ml", 5000, 1),
)


class BenchError(RuntimeError):
    """The benchmark could not run, or what it measured cannot be trusted."""


class Interrupted(Exception):
    """SIGTERM/SIGHUP: unwind through the `finally` blocks like Ctrl-C does."""


# --- Processes ---------------------------------------------------------------------------------


class Children:
    """Every long-running process the bench starts, each in its own process group, killed on exit."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, args, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
        if proc.poll() is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # a worker that outlived its master
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()


def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# --- Environment of the server and of manage.py -------------------------------------------------


def server_env(*, use_redis: bool, key_prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DB_", "THROTTLE_"))}
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="bench.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=HOST,
        DATABASE_URL=DB_URL,
        DB_CONN_MAX_AGE="60",
        # Each bench machine heartbeats many times a second, not every 30 s: the per-machine throttle
        # stays on (it costs what it costs in production) with a rate this traffic never reaches.
        THROTTLE_DEVICE="1000000/min",
        # Registering the fleet from one address would trip the per-address registration throttle.
        THROTTLE_REGISTER="1000000/min",
        # A key prefix of its own: this run never reads another run's fingerprints or tokens.
        CACHE_KEY_PREFIX=key_prefix,
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
    )
    for name in ("REDIS_URL", "DEBUG", "SECURE_SSL_REDIRECT", "ENABLE_DEVICE_TOKEN", "DB_POOL", "LOG_LEVEL"):
        env.pop(name, None)
    if use_redis:
        env["REDIS_URL"] = REDIS_URL
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(PYTHON), str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def shell_json(env: dict[str, str], code: str) -> dict:
    """Run `code` in `manage.py shell -c` and return the JSON it prints on a line starting BENCH_JSON."""
    out = manage(env, "shell", "-c", textwrap.dedent(code))
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    raise BenchError(f"manage.py shell printed no result:\n{out[-3000:]}")


# --- Database and Redis ---------------------------------------------------------------------------


def recreate_database(name: str = DB_NAME) -> str:
    """Drop and create the bench database `name` (that one only); returns PostgreSQL's version."""
    import psycopg

    with psycopg.connect(DB_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        return conn.execute("SHOW server_version").fetchone()[0]


def redis_client(url: str = REDIS_URL):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def delete_redis_keys(prefix: str, url: str = REDIS_URL) -> int:
    client = redis_client(url)
    deleted = 0
    batch = []
    for name in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(name)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


SEED = """
import json
from accounts.models import Merchant
from inventory.models import Material
merchant, _ = Merchant.objects.get_or_create(name={merchant!r})
for index, code, unit, capacity, drain in {bins!r}:
    Material.objects.get_or_create(
        merchant=merchant, code=code, defaults={{"name": code.title(), "unit": unit, "kind": "supplies"}}
    )
print("BENCH_JSON " + json.dumps({{"secret": merchant.provisioning_secret}}))
"""

VERIFY = """
import json
from datetime import datetime
from django.db.models import Count, Min, Q
from devices.models import Device, DeviceBin, DeviceStatusHistory
from devices.services import flush_heartbeats
since = datetime.fromisoformat({since!r})
fleet = Device.objects.filter(serial__startswith={prefix!r})
bins_in_run = Count("bins", filter=Q(bins__reported_at__gte=since))
by_periodic_flush = fleet.annotate(n=bins_in_run).filter(n__gt=0).count()
flushed = flush_heartbeats()
print("BENCH_JSON " + json.dumps({{
    "flushed": flushed,
    "machines": fleet.count(),
    "online": fleet.filter(is_online=True).count(),
    "seen_during_run": fleet.filter(last_seen_at__gte=since).count(),
    "oldest_last_seen": (fleet.aggregate(m=Min("last_seen_at"))["m"] or since).isoformat(),
    "with_readings": fleet.filter(uptime_s__isnull=False, temperature_c__isnull=False,
                                  device_time__isnull=False).count(),
    "bins": DeviceBin.objects.filter(device__in=fleet).count(),
    "machines_with_bins_reported_during_run": fleet.annotate(
        n=Count("bins", filter=Q(bins__reported_at__gte=since))).filter(n__gt=0).count(),
    "history_rows": DeviceStatusHistory.objects.filter(device__in=fleet).count(),
    "machines_with_bins_written_by_the_periodic_flush": by_periodic_flush,
}}))
"""


# --- HTTP to the bench server (loopback only) ----------------------------------------------------


def http(
    port: int, method: str, path: str, body: dict | None = None, timeout: float = 10
) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError, ValueError):
            if http(port, "GET", "/bench/ceiling", timeout=2)[0] == 200:
                return
        time.sleep(0.25)
    raise BenchError(f"gunicorn did not answer within {timeout_s:.0f} s:\n{log_path.read_text()[-3000:]}")


def start_gunicorn(
    children: Children,
    env: dict[str, str],
    *,
    workers: int,
    port: int,
    log_path: Path,
    timeout_s: int | None = None,
) -> subprocess.Popen:
    """The production web server: `workers` gunicorn sync workers on 127.0.0.1:`port`, once it answers.
    `timeout_s` replaces gunicorn's worker timeout (30 s, which production keeps) when given."""
    command = [str(VENV_BIN / "gunicorn"), "coffeeshop.wsgi", "--workers", str(workers)]
    # Sync workers that shed requests past MAX_QUEUE_WAIT_MS in the backlog, as gunicorn.conf.py says.
    command += ["--worker-class", "coffeeshop.shedding.SheddingSyncWorker", "--bind", f"{HOST}:{port}"]
    command += ["--log-level", "warning"]
    if timeout_s is not None:
        command += ["--timeout", str(timeout_s)]
    with log_path.open("w") as log:
        server = children.start(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_until_ready(server, port, log_path)
    return server


def start_background_jobs(children: Children, env: dict[str, str], log_path: Path) -> list[subprocess.Popen]:
    """The Celery worker and beat of a production deployment (Procfile), on the same machine: the
    heartbeat's write-behind flush runs on its schedule during the runs, and its CPU is counted."""
    celery = str(VENV_BIN / "celery")
    commands = (
        [celery, "-A", "coffeeshop", "worker", "--concurrency", "1", "--without-mingle", "--without-gossip"],
        [
            celery,
            "-A",
            "coffeeshop",
            "beat",
            "--scheduler",
            "coffeeshop.beat:Scheduler",
        ],
    )
    with log_path.open("a") as log:
        jobs = [
            children.start(
                [*command, "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            for command in commands
        ]
    time.sleep(3)
    if any(job.poll() is not None for job in jobs):
        raise BenchError(f"Celery did not start:\n{log_path.read_text()[-3000:]}")
    return jobs


def register_fleet(port: int, secret: str, count: int) -> list[tuple[str, str]]:
    """Register `count` machines through POST /api/v1/devices/register; returns (device_id, token)."""

    def register(i: int) -> tuple[str, str]:
        for _ in range(20):  # a worker's first requests load the API (about a second): the ones queued
            status, body = http(  # behind it past MAX_QUEUE_WAIT_MS get 503, and retry as machines do
                port,
                "POST",
                "/api/v1/devices/register",
                {
                    "serial": f"{SERIAL_PREFIX}{i:06d}",
                    "model": "CM-2000",
                    "firmware": "1.4.2",
                    "provisioning_secret": secret,
                    "alias": f"Bench {i}",
                },
            )
            if status != 503:
                break
            time.sleep(0.5)
        if status != 201:
            raise BenchError(f"registering machine {i}: HTTP {status} {body}")
        return body["data"]["device_id"], body["data"]["token"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(register, range(1, count + 1)))


# --- Memory ----------------------------------------------------------------------------------------


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVICE_COMMS = {"postgres", "redis-server"}


def _proc_ticks(pid: int) -> tuple[str, int] | None:
    """(command name, user+system clock ticks) of a process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, int(fields[11]) + int(fields[12])


def _is_bench_service(pid: int, comm: str) -> bool:
    """Redis, PostgreSQL's own processes, and the PostgreSQL backends serving a bench database
    (`coffeeshop_bench*`, so bench/orders.py's and bench/commands.py's count too); backends of other
    sessions' databases (tests) count as other processes."""
    if comm == "redis-server":
        return True
    if comm != "postgres":
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            title = cmdline.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    is_client_backend = "(" in title or "[local]" in title
    return not is_client_backend or f" {DB_NAME}" in title


@dataclass
class CpuSnapshot:
    at: float
    machine_busy: int
    server: dict[int, int]
    services: dict[int, int]
    reaped_children_s: float
    jobs: dict[int, int] = field(default_factory=dict)


def cpu_snapshot(server_pid: int, jobs_pids: tuple[int, ...] = ()) -> CpuSnapshot:
    """CPU used so far by the machine, the gunicorn tree, PostgreSQL + Redis, the Celery worker and
    beat (`jobs_pids`, with their children), and our reaped children."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    tree = {server_pid, *_children(server_pid)}
    jobs_tree = {pid for job in jobs_pids for pid in (job, *_children(job))}
    server, services, jobs = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        found = _proc_ticks(pid)
        if found is None:
            continue
        if pid in tree:
            server[pid] = found[1]
        elif pid in jobs_tree:
            jobs[pid] = found[1]
        elif found[0] in SERVICE_COMMS and _is_bench_service(pid, found[0]):
            services[pid] = found[1]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(time.monotonic(), busy, server, services, usage.ru_utime + usage.ru_stime, jobs)


def _ticks_between(before: dict[int, int], after: dict[int, int]) -> int:
    """Ticks used between two snapshots by the processes alive at both (per process: never negative)."""
    return sum(max(0, ticks - before[pid]) for pid, ticks in after.items() if pid in before)


def cpu_between(before: CpuSnapshot, after: CpuSnapshot, requests: int) -> dict:
    """Cores used on average during a run, by whom; `other_cores` is everything not part of the bench."""
    elapsed = after.at - before.at
    server_ticks = _ticks_between(before.server, after.server)
    cores = {
        "machine_cores": (after.machine_busy - before.machine_busy) / CLK_TCK / elapsed,
        "gunicorn_cores": server_ticks / CLK_TCK / elapsed,
        "postgres_redis_cores": _ticks_between(before.services, after.services) / CLK_TCK / elapsed,
        "wrk_cores": (after.reaped_children_s - before.reaped_children_s) / elapsed,
    }
    if before.jobs:  # only bench/heartbeat.py runs Celery beside the server
        cores["celery_cores"] = _ticks_between(before.jobs, after.jobs) / CLK_TCK / elapsed
    cores["other_cores"] = max(
        0.0, cores["machine_cores"] - sum(v for k, v in cores.items() if k != "machine_cores")
    )
    result = {name: round(value, 2) for name, value in cores.items()}
    result["gunicorn_cpu_ms_per_request"] = (
        round(server_ticks / CLK_TCK * 1000 / requests, 3) if requests else None
    )
    return result


class RssSampler:
    """VmRSS of the gunicorn master and its workers every 100 ms, in a thread, while `with`-ed."""

    def __init__(self, master_pid: int):
        self.master_pid = master_pid
        self.peak_workers_sum_kib = 0
        self.peak_process_kib = 0
        self.peak_master_kib = 0
        self.samples = 0
        self.worker_pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self):
        while not self._stop.is_set():
            master = _rss_kib(self.master_pid) or 0
            workers = [(pid, _rss_kib(pid) or 0) for pid in _children(self.master_pid)]
            self.worker_pids.update(pid for pid, _ in workers)
            self.peak_master_kib = max(self.peak_master_kib, master)
            self.peak_workers_sum_kib = max(self.peak_workers_sum_kib, sum(rss for _, rss in workers))
            self.peak_process_kib = max([self.peak_process_kib, master, *(rss for _, rss in workers)])
            self.samples += 1
            self._stop.wait(RSS_SAMPLE_INTERVAL_S)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        mib = 1024
        return {
            "workers_peak_sum_mib": round(self.peak_workers_sum_kib / mib, 1),
            "max_process_peak_mib": round(self.peak_process_kib / mib, 1),
            "master_peak_mib": round(self.peak_master_kib / mib, 1),
            "workers_seen": len(self.worker_pids),
            "samples": self.samples,
        }


# --- wrk ---------------------------------------------------------------------------------------------

LUA = r"""
-- Generated by bench/heartbeat.py for one run; not meant to be edited.
local MODE = "%(mode)s"
local NTHREADS = %(threads)d
local CHANGE_EVERY = %(change_every)d
local MACHINES = {%(machines)s}
local BINS = {%(bins)s}
local PORT_HEADERS_JSON = {["Content-Type"] = "application/json", ["X-Forwarded-Proto"] = "https"}
local CEILING_HEADERS = {["X-Forwarded-Proto"] = "https"}

local threads = {}
local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local mine = {}
local start_cycle = 0
sent = 0
ok = 0
bad = 0
full = 0
cycles = 0
first_bad = ""

function init(args)
  start_cycle = tonumber(args[1] or "0")
  for i, m in ipairs(MACHINES) do
    if (i - 1) %% NTHREADS == tid then
      table.insert(mine, {id = m[1], auth = "Device " .. m[2], n = i})
    end
  end
end

-- Machine m's c-th heartbeat: idle, a temperature that drifts, bins that drain by a whole percent every
-- CHANGE_EVERY heartbeats (the only heartbeats whose report changes) and by a few grams in between.
local function heartbeat(m, c)
  local step = math.floor(c / CHANGE_EVERY)
  local frac = (c %% CHANGE_EVERY) / CHANGE_EVERY
  if c %% CHANGE_EVERY == 0 then full = full + 1 end
  local bins = {}
  for b, spec in ipairs(BINS) do
    local pct = 95 - ((m.n * 7 + b * 13 + step * spec[5]) %% 85)
    local remaining = spec[4] * (pct + 0.3 - 0.6 * frac) / 100
    bins[b] = string.format(
      '{"index": %%d, "material": "%%s", "remaining": %%.1f, "capacity": %%d, "unit": "%%s"}',
      spec[1], spec[2], remaining, spec[4], spec[3])
  end
  return string.format(
    '{"state": "idle", "temperature_c": %%.1f, "ip": "10.%%d.%%d.%%d", ' ..
    '"wifi": {"ssid": "shop-5g", "rssi_dbm": %%d}, "firmware": "1.4.2", "uptime_s": %%d, ' ..
    '"package_version": "2026.11.3", "sent_at": "%%s", "bins": [%%s]}',
    92 + 0.8 * math.sin(c / 9 + m.n),
    math.floor(m.n / 65536) %% 256, math.floor(m.n / 256) %% 256, m.n %% 256,
    -58 - (c + m.n) %% 9, 86400 + c * 30, os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ"), table.concat(bins, ", "))
end

function request()
  if MODE == "ceiling" then
    sent = sent + 1
    return wrk.format("GET", "/bench/ceiling", CEILING_HEADERS)
  end
  local m = mine[sent %% #mine + 1]
  local c = start_cycle + math.floor(sent / #mine) + m.n %% CHANGE_EVERY
  sent = sent + 1
  cycles = math.floor(sent / #mine) + 1
  PORT_HEADERS_JSON["Authorization"] = m.auth
  return wrk.format("POST", "/api/v1/devices/" .. m.id .. "/status", PORT_HEADERS_JSON, heartbeat(m, c))
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 400) end
  end
end

function done(summary, latency, requests)
  local t = {ok = 0, bad = 0, full = 0, cycles = 0}
  local fb = ""
  for _, th in ipairs(threads) do
    t.ok = t.ok + th:get("ok")
    t.bad = t.bad + th:get("bad")
    t.full = t.full + th:get("full")
    t.cycles = math.max(t.cycles, th:get("cycles"))
    if fb == "" then fb = th:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "ok": %%d, "non_2xx": %%d, ' ..
    '"full_path_sent": %%d, "cycles": %%d, "errors": {"connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d}, "latency_us": {"mean": %%.1f, "stdev": %%.1f, "max": %%d, ' ..
    '"p50": %%d, "p90": %%d, "p99": %%d, "p999": %%d}}\n',
    summary.requests, summary.duration, summary.bytes, t.ok, t.bad, t.full, t.cycles,
    e.connect, e.read, e.write, e.status, e.timeout, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
  if fb ~= "" then io.write("BENCH_FIRST_BAD " .. string.gsub(fb, "\n", " ") .. "\n") end
end
"""


def write_lua(path: Path, *, mode: str, threads: int, change_every: int, machines) -> None:
    path.write_text(
        LUA
        % {
            "mode": mode,
            "threads": threads,
            "change_every": change_every,
            "machines": ", ".join(f'{{"{device_id}", "{token}"}}' for device_id, token in machines),
            "bins": ", ".join(
                f'{{{i}, "{code}", "{unit}", {cap}, {drain}}}' for i, code, unit, cap, drain in BINS
            ),
        }
    )


@dataclass
class RunResult:
    name: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    ok: int
    non_2xx: int
    socket_errors: dict
    full_path_sent: int
    cpu: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    first_bad: str = ""


def run_wrk(
    children: Children,
    *,
    name: str,
    lua: Path,
    port: int,
    threads: int,
    connections: int,
    duration_s: int,
    start_cycle: int,
    log_path: Path,
    server_pid: int,
    jobs_pids: tuple[int, ...] = (),
) -> tuple[RunResult, int]:
    """One bounded wrk run at 127.0.0.1; returns its result and the cycles per machine it went through."""
    args = [
        "wrk",
        "--latency",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        f"http://{HOST}:{port}/",
        "--",
        str(start_cycle),
    ]
    before = cpu_snapshot(server_pid, jobs_pids)
    proc = children.start(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration_s + 60)
    finally:
        children.stop(proc, grace_s=1)
        children.procs.remove(proc)
    after = cpu_snapshot(server_pid, jobs_pids)
    with log_path.open("a") as log:
        log.write(f"===== {name}: {' '.join(args)}\n{out}\n")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{out[-3000:]}")
    data = next((json.loads(line[11:]) for line in out.splitlines() if line.startswith("BENCH_JSON ")), None)
    if data is None:
        raise BenchError(f"wrk printed no result:\n{out[-3000:]}")
    first_bad = next((line[16:] for line in out.splitlines() if line.startswith("BENCH_FIRST_BAD ")), "")
    lat = data["latency_us"]
    duration = data["duration_us"] / 1e6
    result = RunResult(
        name=name,
        requests=data["requests"],
        duration_s=round(duration, 2),
        rps=round(data["requests"] / duration, 1),
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        p999_ms=lat["p999"] / 1000,
        max_ms=lat["max"] / 1000,
        ok=data["ok"],
        non_2xx=data["non_2xx"],
        socket_errors=data["errors"],
        full_path_sent=data["full_path_sent"],
        first_bad=first_bad,
        cpu=cpu_between(before, after, data["requests"]),
    )
    return result, data["cycles"]


# --- Reporting -------------------------------------------------------------------------------------


def versions(pg_version: str, use_redis: bool) -> dict:
    found = {"python": platform.python_version(), "postgresql": pg_version, "cores": os.cpu_count()}
    for package in ("django", "djangorestframework", "gunicorn", "psycopg", "redis"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    with contextlib.suppress(Exception):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        found["wrk"] = wrk.stdout.split()[1]
    if use_redis:
        with contextlib.suppress(Exception):
            found["redis_server"] = redis_client().info("server")["redis_version"]
    return found


def git_commit() -> str | None:
    """The checked-out commit, read from .git's files (no git command runs)."""
    with contextlib.suppress(OSError):
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        ref_file = ROOT / ".git" / ref
        if ref_file.exists():
            return ref_file.read_text().strip()
        for line in (ROOT / ".git" / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return None


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def markdown_table(report: dict) -> str:
    ceiling, heartbeat = report["runs"]["ceiling"], report["runs"]["heartbeat"]
    cfg = report["config"]
    rows = [
        "| run | req/s | p50 | p99 | non-2xx | share of ceiling | gunicorn CPU per request "
        "| RSS peak, workers (sum) | RSS peak, largest process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in (
        ("bare Django JSON view (ceiling)", ceiling),
        (f"heartbeat ({cfg['store']})", heartbeat),
    ):
        share = run["rps"] / ceiling["rps"] if ceiling["rps"] else 0
        mem = run["memory"]
        rows.append(
            f"| {label} | {fmt_int(run['rps'])} | {run['p50_ms']:.1f} ms | {run['p99_ms']:.1f} ms | "
            f"{run['non_2xx']} | {share:.0%} | {run['cpu']['gunicorn_cpu_ms_per_request']:.2f} ms | "
            f"{mem['workers_peak_sum_mib']:.0f} MiB | {mem['max_process_peak_mib']:.0f} MiB |"
        )
    return "\n".join(rows)


def cpu_line(name: str, cpu: dict) -> str:
    return (
        f"{name}: cores busy {cpu['machine_cores']:.2f} of {os.cpu_count()}"
        f" = gunicorn {cpu['gunicorn_cores']:.2f}"
        f" + PostgreSQL/Redis {cpu['postgres_redis_cores']:.2f}"
        + (f" + Celery worker/beat {cpu['celery_cores']:.2f}" if "celery_cores" in cpu else "")
        + f" + wrk {cpu['wrk_cores']:.2f} + other processes {cpu['other_cores']:.2f}"
    )


# --- Main ------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=200, help="machines registered and round-robined")
    parser.add_argument("--duration", type=int, default=20, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up before each run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--no-redis", action="store_true", help="run without Redis (the embedded default)")
    parser.add_argument(
        "--change-every",
        type=int,
        default=30,
        help="a machine's bin levels move by a whole percent every N heartbeats (news)",
    )
    parser.add_argument(
        "--require-goal",
        action="store_true",
        help=f"exit 3 when the heartbeat is below {GOAL_SHARE * 100:.0f}%% of the ceiling",
    )
    args = parser.parse_args(argv)
    for name in ("machines", "duration", "connections", "threads", "workers", "change_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if args.machines < args.threads:
        parser.error("--machines must be at least --threads")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench/heartbeat.py needs wrk (HTTP load generator), which is not installed.\n"
            "On Debian/Ubuntu: apt-get install -y wrk",
            file=sys.stderr,
        )
        return 2
    gunicorn = VENV_BIN / "gunicorn"
    if not gunicorn.exists():
        print(f"{gunicorn} is missing: run `make install` first.", file=sys.stderr)
        return 2

    use_redis = not args.no_redis
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key_prefix = f"csbench-{stamp}-{secrets.token_hex(3)}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / f"heartbeat-{stamp}.log"
    env = server_env(use_redis=use_redis, key_prefix=key_prefix)
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="coffeeshop-bench-"))
    env["COFFEESHOP_DATA_DIR"] = str(workdir / "data")  # Celery's server-less broker, without Redis
    # SIGINT too: a shell that starts the bench in the background leaves Ctrl-C's SIGINT ignored.
    old_handlers = {
        sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }

    def step(text: str) -> None:
        print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)

    try:
        if use_redis:
            try:
                redis_client().ping()
            except Exception as exc:
                raise BenchError(
                    f"Redis at {REDIS_URL} is not reachable ({exc}); use --no-redis or start it"
                ) from exc
        step(f"fresh database {DB_NAME} on {HOST}:5432")
        pg_version = recreate_database()
        manage(env, "migrate", "--no-input")
        secret = shell_json(env, SEED.format(merchant=MERCHANT_NAME, bins=BINS))["secret"]

        port = free_port()
        step(
            f"gunicorn coffeeshop.wsgi, {args.workers} sync workers, on {HOST}:{port} "
            f"({'Redis' if use_redis else 'no Redis'}); log: {log_path.relative_to(ROOT)}"
        )
        server = start_gunicorn(children, env, workers=args.workers, port=port, log_path=log_path)
        step("Celery worker and beat (the periodic jobs, among them the heartbeat flush every 15 s)")
        jobs = start_background_jobs(children, env, log_path)

        step(f"registering {args.machines} machines through POST /api/v1/devices/register")
        machines = register_fleet(port, secret, args.machines)

        common = {
            "port": port,
            "threads": args.threads,
            "connections": args.connections,
            "log_path": log_path,
            "server_pid": server.pid,
            "jobs_pids": tuple(job.pid for job in jobs),
        }
        runs: dict[str, RunResult] = {}
        started: dict[str, datetime] = {}
        for name in ("ceiling", "heartbeat"):
            lua = workdir / f"{name}.lua"
            write_lua(lua, mode=name, threads=args.threads, change_every=args.change_every, machines=machines)
            with RssSampler(server.pid) as sampler:
                if args.warmup:
                    step(f"{name}: warm-up {args.warmup} s")
                    warm, cycles = run_wrk(
                        children,
                        name=f"{name} warm-up",
                        lua=lua,
                        duration_s=args.warmup,
                        start_cycle=0,
                        **common,
                    )
                    if name == "heartbeat" and warm.non_2xx and not warm.first_bad.startswith("503 "):
                        raise BenchError(
                            f"heartbeat warm-up got {warm.non_2xx} non-2xx replies: {warm.first_bad}"
                        )
                    if name == "heartbeat" and warm.non_2xx:  # every first heartbeat takes the full path:
                        step(f"heartbeat warm-up: {warm.non_2xx} shed (503) while the fleet came online")
                else:
                    cycles = 0
                step(f"{name}: measuring {args.duration} s, {args.connections} connections")
                started[name] = datetime.now(UTC)
                result, _ = run_wrk(
                    children, name=name, lua=lua, duration_s=args.duration, start_cycle=cycles, **common
                )
            result.memory = sampler.summary()
            runs[name] = result
            step(
                f"{name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"non-2xx {result.non_2xx}, workers' RSS peak {result.memory['workers_peak_sum_mib']:.0f} MiB"
            )
            if server.poll() is not None:
                raise BenchError(f"gunicorn died during the {name} run:\n{log_path.read_text()[-3000:]}")
            if any(job.poll() is not None for job in jobs):
                raise BenchError(f"Celery died during the {name} run:\n{log_path.read_text()[-3000:]}")

        step("flushing the write-behind and checking the database")
        check = shell_json(env, VERIFY.format(since=started["heartbeat"].isoformat(), prefix=SERIAL_PREFIX))

        heartbeat, ceiling = runs["heartbeat"], runs["ceiling"]
        share = heartbeat.rps / ceiling.rps if ceiling.rps else 0.0
        problems = []
        if heartbeat.non_2xx or heartbeat.ok != heartbeat.requests:
            problems.append(
                f"heartbeat: {heartbeat.non_2xx} non-2xx replies of {heartbeat.requests} "
                f"(first: {heartbeat.first_bad or 'none recorded'})"
            )
        if any(heartbeat.socket_errors.values()):
            problems.append(f"heartbeat: socket errors {heartbeat.socket_errors}")
        if ceiling.non_2xx:
            problems.append(f"ceiling: {ceiling.non_2xx} non-2xx replies (first: {ceiling.first_bad})")
        n = args.machines
        per_machine = heartbeat.requests / n
        if per_machine < 2:
            problems.append(
                f"the run sent {per_machine:.1f} heartbeats per machine: too short to check every "
                "machine; use a longer --duration or fewer --machines"
            )
        expected = [
            ("machines in the database", check["machines"], n),
            ("machines online", check["online"], n),
            ("machines whose last_seen_at is within the measured run", check["seen_during_run"], n),
            ("machines with temperature, uptime and machine time recorded", check["with_readings"], n),
            ("bins recorded", check["bins"], n * len(BINS)),
        ]
        if (
            use_redis
            and args.duration > FLUSH_EVERY_S  # the run holds at least one periodic flush
            and per_machine >= 2 * args.change_every
            and not check["machines_with_bins_written_by_the_periodic_flush"]
        ):
            problems.append(
                "no bin level reached the database during the run: is the periodic flush running?"
            )
        if per_machine >= 2 * args.change_every:  # every machine crossed a whole percent at least once
            expected.append(
                (
                    "machines whose bins were updated during the measured run",
                    check["machines_with_bins_reported_during_run"],
                    n,
                )
            )
        for what, got, want in expected:
            if got != want:
                problems.append(f"database check: {what}: {got}, expected {want}")

        noisy = [name for name, run in runs.items() if run.cpu["other_cores"] > NOISE_CORES]
        report = {
            "benchmark": "heartbeat",
            "timestamp": stamp,
            "command": " ".join(
                [".venv/bin/python", "bench/heartbeat.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "commit": git_commit(),
            "config": {
                "machines": n,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "connections": args.connections,
                "wrk_threads": args.threads,
                "gunicorn_workers": args.workers,
                "worker_class": "sync",
                "store": "PostgreSQL + Redis" if use_redis else "PostgreSQL, no Redis",
                "redis": use_redis,
                "db_conn_max_age": 60,
                "change_every": args.change_every,
                "throttle_device": env["THROTTLE_DEVICE"],
            },
            "versions": versions(pg_version, use_redis),
            "runs": {name: asdict(run) for name, run in runs.items()},
            "heartbeat_share_of_ceiling": round(share, 4),
            "goal_share": GOAL_SHARE,
            "goal_met": share >= GOAL_SHARE,
            "database_check": check,
            "shared_machine_runs": noisy,
            "problems": problems,
        }
        out_path = RESULTS_DIR / f"heartbeat-{stamp}.json"
        out_path.write_text(json.dumps(report, indent=2) + "\n")

        print()
        print(
            f"{n} machines, {args.workers} gunicorn sync workers, wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration}s ({args.warmup} s warm-up), {report['config']['store']}, "
            f"{heartbeat.full_path_sent:,} of {heartbeat.requests:,} heartbeats with a changed report "
            f"(1 in {args.change_every} per machine)"
        )
        print()
        print(markdown_table(report))
        print()
        print(
            f"heartbeat / ceiling = {share:.1%} (goal: at least {GOAL_SHARE:.0%}: "
            f"{'MET' if share >= GOAL_SHARE else 'NOT MET'})"
        )
        print(
            f"database: {check['seen_during_run']}/{n} machines seen during the run, "
            f"{check['flushed']} flushed from the write-behind, {check['bins']} bins"
        )
        for name, run in runs.items():
            print(cpu_line(name, run.cpu))
        if noisy:
            print(
                f"WARNING: other processes used more than {NOISE_CORES} core during a run "
                f"({', '.join(noisy)}): the machine was shared, so the figures are low and noisy; run again "
                "on an idle machine before quoting them"
            )
        print(f"results: {out_path.relative_to(ROOT)}")
        if problems:
            print("\nFAILED: the run cannot be trusted:\n  - " + "\n  - ".join(problems), file=sys.stderr)
            return 1
        if args.require_goal and share < GOAL_SHARE:
            return 3
        return 0
    except BenchError as exc:
        print(f"\nbench/heartbeat.py: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("\nbench/heartbeat.py: interrupted; stopping gunicorn and wrk", file=sys.stderr)
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
