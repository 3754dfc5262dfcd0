"""Remote commands at fleet scale: how long one batch for 10,000 machines takes to create (the request's
reply, then its background job until every command exists), and how fast a batch reaches 500 machines
holding their WebSockets.

    .venv/bin/python bench/commands.py [--devices 10000] [--sockets 500] [--processes 2] [--rounds 3]

What it does, in order (bench/README.md, "Commands", explains how to read the result):

1. creates a fresh PostgreSQL database `coffeeshop_bench_commands` (dropping only that one), migrates it;
2. seeds it directly (bulk inserts, no HTTP): merchant "Bench Fleet Co" with --devices machines,
   merchant "Bench Sockets Co" with --sockets machines and a device token each, an Ops user of both
   with a DRF token;
3. (i, service) times, for every machine of the fleet merchant in `manage.py shell`, --rounds times,
   `operations.services.commands.start_batch` (what the request does) and then `dispatch_batch` (the
   job, run in the shell), and the job again with the per-machine WebSocket nudge switched off;
4. starts daphne on `coffeeshop.asgi` with the production settings and Redis: --processes processes
   accepting on one listening socket that this script opens (nothing in front of them), gunicorn on
   `coffeeshop.wsgi` (2 sync workers: how production serves staff HTTP, see asgi.py), and one Celery
   worker (solo pool) on the bench's Redis, after purging its queue;
5. (i, HTTP) times `POST /api/v1/commands/batches` with `{"filter": {"merchant_id": <fleet>}}`,
   --rounds times through each server: the reply (202), and until the batch's job has created every
   command (polling `GET /api/v1/commands/batches/{id}` every 50 ms);
6. (ii) opens --sockets WebSockets `/ws/devices/{id}/` from this process (asyncio, one event loop,
   127.0.0.1 only), POSTs a batch to the sockets merchant and takes, for each socket, the time from
   just before the POST to its command's arrival; --rounds times;
7. checks in the database that every batch has one command per machine and that every pushed command
   was leased by the WebSocket; prints a Markdown table, writes bench/results/commands-<timestamp>.json.

Every wait is bounded (--timeout per round); daphne runs in its own process group and is killed in
`finally`; the script deletes its Redis keys and leaves the database for inspection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.heartbeat import (  # noqa: E402 (run as a script: the project root goes on the path first)
    BenchError,
    Children,
    Interrupted,
    _raise_interrupted,
    delete_redis_keys,
    git_commit,
    manage,
    recreate_database,
    server_env,
    shell_json,
)

RESULTS_DIR = ROOT / "bench" / "results"
HOST = "127.0.0.1"  # the only address this benchmark ever sends traffic to
DB_NAME = "coffeeshop_bench_commands"
DB_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
DEFAULT_REDIS_URL = f"redis://{HOST}:6379/8"
FLEET_MERCHANT = "Bench Fleet Co"
SOCKETS_MERCHANT = "Bench Sockets Co"
OPS_EMAIL = "bench-ops@example.com"
COMMAND = {"type": "sync", "payload": {"what": ["status"]}}

SEED = """
import json, secrets
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device, DeviceCredential
from devices.services.credentials import hash_token
fleet = Merchant.objects.create(name={fleet!r})
sockets = Merchant.objects.create(name={sockets!r})
ops = User.objects.create_user({email!r}, password=secrets.token_urlsafe(16), role=Role.OPS)
grant_merchant_access(ops, fleet)
grant_merchant_access(ops, sockets)
def machines(merchant, prefix, n):
    return Device.objects.bulk_create(
        [Device(merchant=merchant, serial=f"{{prefix}}-{{i:06d}}", model="CM-2000", firmware="1.4.2")
         for i in range(1, n + 1)], batch_size=2000)
machines(fleet, "BFLEET", {devices})
held = machines(sockets, "BSOCK", {n_sockets})
tokens = [(d, secrets.token_urlsafe(32)) for d in held]
DeviceCredential.objects.bulk_create(
    [DeviceCredential(device=d, token_hash=hash_token(t), token_prefix=t[:8]) for d, t in tokens])
print("BENCH_JSON " + json.dumps({{
    "fleet_id": fleet.pk, "sockets_id": sockets.pk, "key": Token.objects.create(user=ops).key,
    "sockets": [[d.pk, t] for d, t in tokens],
}}))
"""

SERVICE = """
import json, time
from accounts.models import Merchant, User
from devices.models import Device
from operations.models import RemoteCommand
from operations.services import commands
fleet = Merchant.objects.get(name={fleet!r})
ops = User.objects.get(email={email!r})
def run(label):
    started, created = [], []
    for _ in range({rounds}):
        start = time.perf_counter()
        batch = commands.start_batch(
            Device.objects.filter(merchant=fleet), {kind!r}, {payload!r}, user=ops,
            target={{"filter": {{"merchant_id": fleet.pk}}, "bench": label}}, enqueue=lambda job_id: None)
        queued = time.perf_counter()
        commands.dispatch_batch(batch.job_id)
        started.append(queued - start)
        created.append(time.perf_counter() - queued)
        assert RemoteCommand.objects.filter(batch=batch).count() == {devices}, label
    return started, created
started, created = run("service")
commands._nudge_sockets = lambda device_ids: None
_, without_nudges = run("service without nudges")
print("BENCH_JSON " + json.dumps({{
    "service_start_s": started, "service_job_s": created, "service_job_without_nudges_s": without_nudges}}))
"""

WORKER_PING = """
import json
from operations.tasks import sweep_commands
print("BENCH_JSON " + json.dumps({"swept": sweep_commands.apply_async().get(timeout=120)}))
"""

VERIFY = """
import json
from django.db.models import Count, Q
from operations.models import CommandBatch
rows = CommandBatch.objects.filter(pk__in={batch_ids!r}).annotate(
    n=Count("commands"), by_socket=Count("commands", filter=Q(commands__delivery_channel="websocket")))
print("BENCH_JSON " + json.dumps({{str(b.pk): [b.n, b.by_socket] for b in rows}}))
"""


def bench_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    """The heartbeat bench's production environment, on this bench's database and Redis, and with the
    connection handling ASGI needs (psycopg's pool, no persistent connections: see asgi.py)."""
    env = server_env(use_redis=True, key_prefix=key_prefix)
    env.update(DATABASE_URL=DB_URL, REDIS_URL=redis_url, DB_CONN_MAX_AGE="0", DB_POOL="1")
    return env


def listening_socket() -> socket.socket:
    """One listening socket on the loopback that every daphne process accepts on (the kernel shares
    out the connections), so several processes serve one port with nothing in front of them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def start_gunicorn(children: Children, port: int, env, log):
    """gunicorn as the heartbeat bench runs it (sync workers, persistent connections), with a worker
    timeout long enough for the slowest batch this bench makes."""
    wsgi_env = {**env, "DB_CONN_MAX_AGE": "60"}
    wsgi_env.pop("DB_POOL", None)
    return children.start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "coffeeshop.wsgi",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--timeout",
            "600",
            "--bind",
            f"{HOST}:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=wsgi_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def start_worker(children: Children, env, log):
    """One Celery worker (solo pool: one job at a time) on the bench's Redis, its queue purged first so
    no message of an earlier, interrupted run names a job of this fresh database."""
    celery = [sys.executable, "-m", "celery", "-A", "coffeeshop"]
    purged = subprocess.run(
        [*celery, "purge", "-f"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if purged.returncode != 0:
        raise BenchError(f"celery purge failed:\n{purged.stdout[-2000:]}\n{purged.stderr[-2000:]}")
    return children.start(
        [*celery, "worker", "--without-mingle", "--without-gossip", "-P", "solo", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_daphne(children: Children, sock: socket.socket, processes: int, env, log) -> list:
    return [
        children.start(
            [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), "coffeeshop.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
        for _ in range(processes)
    ]


def staff_headers(key: str) -> dict[str, str]:
    # Production redirects plain HTTP: requests come as from behind the TLS terminator.
    return {"Authorization": f"Token {key}", "X-Forwarded-Proto": "https"}


def wait_until_ready(base_url: str, servers: list, log_path: Path, timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(server.poll() is not None for server in servers):
            raise BenchError(f"the server exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/api/v1/health", timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise BenchError(f"the server did not answer within {timeout_s:.0f} s:\n{log_path.read_text()[-3000:]}")


def post_batch(client, merchant_id: int, timeout_s: float) -> tuple[float, float, dict]:
    """POST a batch; (seconds to the reply, seconds until its job created every command, the batch)."""
    start = time.perf_counter()
    reply = client.post("/api/v1/commands/batches", json={**COMMAND, "filter": {"merchant_id": merchant_id}})
    replied = time.perf_counter() - start
    if reply.status_code != 202:
        raise BenchError(f"POST /api/v1/commands/batches: HTTP {reply.status_code} {reply.text[:500]}")
    batch = reply.json()["data"]
    deadline = start + timeout_s
    while batch["job"]["status"] not in ("succeeded", "failed", "canceled"):
        if time.perf_counter() > deadline:
            status = batch["job"]["status"]
            raise BenchError(f"batch {batch['id']}: its job is still {status} after {timeout_s} s")
        time.sleep(0.05)
        batch = client.get(f"/api/v1/commands/batches/{batch['id']}").json()["data"]
    created = time.perf_counter() - start
    if batch["job"]["status"] != "succeeded" or batch["counts"]["total"] != batch["machines"]:
        raise BenchError(f"batch {batch['id']}: job {batch['job']}, counts {batch['counts']}")
    return replied, created, batch


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 500 values is the 475th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


async def push_latency(
    base_url: str, key: str, merchant_id: int, sockets: list[list], rounds: int, timeout_s: float
) -> dict:
    """Open a WebSocket per machine, then per round POST a batch to all of them and time each arrival."""
    import httpx
    from websockets.asyncio.client import connect

    ws_base = base_url.replace("http://", "ws://", 1)
    opening = asyncio.Semaphore(50)

    async def open_socket(device_id: int, token: str):
        async with opening:
            return await connect(
                f"{ws_base}/ws/devices/{device_id}/",
                additional_headers={"Authorization": f"Device {token}"},
                proxy=None,
                compression=None,
                open_timeout=timeout_s,
                ping_interval=None,
            )

    started = time.perf_counter()
    opened = await asyncio.gather(*(open_socket(d, t) for d, t in sockets), return_exceptions=True)
    connections = [ws for ws in opened if not isinstance(ws, BaseException)]
    refused = [repr(ws) for ws in opened if isinstance(ws, BaseException)]
    open_s = time.perf_counter() - started
    if not connections:
        raise BenchError(f"no WebSocket opened: {refused[:3]}")

    async def listen(ws, heard: list[tuple[float, str]]) -> None:
        """Note the moment each command arrives, with its issued_at (which names its batch)."""
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == "command":
                heard.append((time.perf_counter(), message["command"]["issued_at"]))

    def arrival(heard: list[tuple[float, str]], issued_at: datetime) -> float | None:
        return next((at for at, issued in heard if parse_time(issued) == issued_at), None)

    results = []
    try:
        async with httpx.AsyncClient(
            base_url=base_url, headers=staff_headers(key), timeout=timeout_s
        ) as client:
            for _ in range(rounds):
                heard: list[list[tuple[float, str]]] = [[] for _ in connections]
                listeners = [
                    asyncio.create_task(listen(ws, h)) for ws, h in zip(connections, heard, strict=True)
                ]
                await asyncio.sleep(0.2)  # every listener is waiting before the clock starts
                before_post = time.perf_counter()
                reply = await client.post(
                    "/api/v1/commands/batches", json={**COMMAND, "filter": {"merchant_id": merchant_id}}
                )
                post_s = time.perf_counter() - before_post
                if reply.status_code != 202:
                    raise BenchError(
                        f"POST /api/v1/commands/batches: HTTP {reply.status_code} {reply.text[:500]}"
                    )
                batch = reply.json()["data"]
                # A batch's commands are issued at the batch's creation time: a command that arrives late
                # from an earlier round is not counted for this one.
                issued_at = parse_time(batch["created_at"])
                deadline = before_post + timeout_s
                while time.perf_counter() < deadline:
                    arrivals = [arrival(h, issued_at) for h in heard]
                    if all(at is not None for at in arrivals):
                        break
                    await asyncio.sleep(0.05)
                for listener in listeners:
                    listener.cancel()
                await asyncio.gather(*listeners, return_exceptions=True)
                latencies = [at - before_post for at in arrivals if at is not None]
                results.append(
                    {
                        "batch_id": batch["id"],
                        "post_s": post_s,
                        "arrived": len(latencies),
                        "latencies_s": sorted(latencies),
                    }
                )
    finally:
        await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
    return {"open_s": open_s, "opened": len(connections), "refused": refused[:5], "rounds": results}


def seconds_row(label: str, values: list[float]) -> str:
    return (
        f"| {label} | {statistics.median(values):.2f} s | {min(values):.2f} s | {max(values):.2f} s "
        f"| {len(values)} |"
    )


def markdown_tables(report: dict) -> str:
    config, batch, push = report["config"], report["batch_creation"], report["push"]
    lines = [
        f"(i) one batch for {config['devices']:,} machines (median, min, max over the rounds)",
        "",
        "| how | median | min | max | rounds |",
        "|---|---|---|---|---|",
        seconds_row(
            f"`POST /api/v1/commands/batches` reply (202) through daphne ({config['processes']} process(es))",
            batch["http_s"],
        ),
        seconds_row("… until the worker's job created every command", batch["http_done_s"]),
        seconds_row("`POST /api/v1/commands/batches` reply through gunicorn (2 sync)", batch["wsgi_s"]),
        seconds_row("… until the worker's job created every command", batch["wsgi_done_s"]),
        seconds_row("`start_batch` service call alone (what the request does)", batch["service_start_s"]),
        seconds_row("`dispatch_batch` (the job) run in the shell, nudges included", batch["service_job_s"]),
        seconds_row(
            "`dispatch_batch` without the per-machine WebSocket nudge", batch["service_job_without_nudges_s"]
        ),
        "",
        f"(ii) a batch to {config['sockets']} machines holding WebSockets: from just before the POST to each "
        "command's arrival",
        "",
        "| round | arrived | p50 | p95 | max | POST answered after |",
        "|---|---|---|---|---|---|",
    ]
    for number, run in enumerate(push["rounds"], start=1):
        latencies = run["latencies_s"]
        figures = (
            [f"{percentile(latencies, share) * 1000:.0f} ms" for share in (0.5, 0.95, 1.0)]
            if latencies
            else ["—"] * 3
        )
        lines.append(
            f"| {number} | {run['arrived']}/{push['opened']} | {' | '.join(figures)} "
            f"| {run['post_s'] * 1000:.0f} ms |"
        )
    every = [value for run in push["rounds"] for value in run["latencies_s"]]
    if every:
        lines.append(
            f"| all | {len(every)}/{push['opened'] * len(push['rounds'])} | "
            + " | ".join(f"{percentile(every, share) * 1000:.0f} ms" for share in (0.5, 0.95, 1.0))
            + " | |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="machines in the batch of (i)")
    parser.add_argument("--sockets", type=int, default=500, help="WebSockets held open in (ii)")
    parser.add_argument("--processes", type=int, default=2, help="daphne processes on the one port")
    parser.add_argument("--rounds", type=int, default=3, help="batches timed in each part")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds any one wait may take")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for daphne (%(default)s)")
    args = parser.parse_args(argv)
    if min(args.devices, args.sockets, args.processes, args.rounds) < 1:
        parser.error("--devices, --sockets, --processes and --rounds must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key_prefix = f"csbench-cmd-{stamp}-{secrets.token_hex(3)}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / f"commands-{stamp}.log"
    env = bench_env(args.redis_url, key_prefix)
    children = Children()
    old_handlers = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * args.sockets + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # daphne inherits it too

    def step(text: str) -> None:
        print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)

    load_before = os.getloadavg()
    try:
        import httpx
        import redis

        try:
            redis.Redis.from_url(args.redis_url, socket_connect_timeout=5).ping()
        except redis.RedisError as exc:
            raise BenchError(f"Redis at {args.redis_url} is not reachable ({exc}): start it first") from exc
        step(f"fresh database {DB_NAME} on {HOST}:5432")
        pg_version = recreate_database(DB_NAME)
        manage(env, "migrate", "--no-input")
        step(f"seeding {args.devices:,} + {args.sockets} machines straight into the database")
        seed = shell_json(
            env,
            SEED.format(
                fleet=FLEET_MERCHANT,
                sockets=SOCKETS_MERCHANT,
                email=OPS_EMAIL,
                devices=args.devices,
                n_sockets=args.sockets,
            ),
        )

        step(f"(i) start_batch + dispatch_batch, {args.devices:,} machines, shell, {args.rounds} rounds x2")
        service = shell_json(
            env,
            textwrap.dedent(
                SERVICE.format(
                    fleet=FLEET_MERCHANT,
                    email=OPS_EMAIL,
                    rounds=args.rounds,
                    kind=COMMAND["type"],
                    payload=COMMAND["payload"],
                    devices=args.devices,
                )
            ),
        )

        sock = listening_socket()
        port = sock.getsockname()[1]
        base_url = f"http://{HOST}:{port}"
        step(
            f"daphne, {args.processes} process(es) on {base_url}, production settings, Redis; "
            f"log: {log_path.name}"
        )
        with log_path.open("w") as log:
            servers = start_daphne(children, sock, args.processes, env, log)
            wsgi_port = free_port()
            wsgi = start_gunicorn(children, wsgi_port, env, log)
            worker = start_worker(children, env, log)
        wait_until_ready(base_url, servers, log_path)
        wait_until_ready(f"http://{HOST}:{wsgi_port}", [wsgi], log_path)
        shell_json(env, WORKER_PING)  # the worker answers: the first batch does not wait for it to start

        step(f"(i) POST /api/v1/commands/batches for {args.devices:,} machines, {args.rounds} rounds")
        http_s, http_done_s, http_batches = [], [], []
        with httpx.Client(
            base_url=base_url, headers=staff_headers(seed["key"]), timeout=args.timeout * 5
        ) as client:
            for _ in range(args.rounds):
                replied, created, batch = post_batch(client, seed["fleet_id"], args.timeout * 5)
                http_s.append(replied)
                http_done_s.append(created)
                http_batches.append(batch["id"])
                if batch["counts"]["total"] != args.devices:
                    raise BenchError(
                        f"the batch holds {batch['counts']['total']} commands, not {args.devices}"
                    )

        step(f"(i) the same through gunicorn, {args.rounds} rounds")
        wsgi_s, wsgi_done_s = [], []
        with httpx.Client(
            base_url=f"http://{HOST}:{wsgi_port}",
            headers=staff_headers(seed["key"]),
            timeout=args.timeout * 10,
        ) as client:
            for _ in range(args.rounds):
                replied, created, batch = post_batch(client, seed["fleet_id"], args.timeout * 5)
                wsgi_s.append(replied)
                wsgi_done_s.append(created)
                http_batches.append(batch["id"])
        children.stop(wsgi)

        step(f"(ii) {args.sockets} WebSockets, a batch to all of them, {args.rounds} rounds")
        push = asyncio.run(
            push_latency(
                base_url, seed["key"], seed["sockets_id"], seed["sockets"], args.rounds, args.timeout
            )
        )
        if any(server.poll() is not None for server in [*servers, worker]):
            raise BenchError(f"daphne or the worker died during the run:\n{log_path.read_text()[-3000:]}")

        step("checking the batches in the database")
        check = shell_json(
            env, VERIFY.format(batch_ids=http_batches + [r["batch_id"] for r in push["rounds"]])
        )
        problems = []
        for batch_id in http_batches:
            if check[str(batch_id)][0] != args.devices:
                problems.append(f"HTTP batch {batch_id}: {check[str(batch_id)][0]} commands")
        for run in push["rounds"]:
            total, by_socket = check[str(run["batch_id"])]
            if total != args.sockets or by_socket != run["arrived"]:
                problems.append(
                    f"push batch {run['batch_id']}: {total} commands, {by_socket} leased by WebSocket, "
                    f"{run['arrived']} arrived"
                )
            if run["arrived"] != push["opened"]:
                problems.append(
                    f"push batch {run['batch_id']}: {run['arrived']}/{push['opened']} arrived in time"
                )
        if push["opened"] != args.sockets:
            problems.append(f"{push['opened']}/{args.sockets} WebSockets opened: {push['refused']}")

        report = {
            "benchmark": "commands",
            "timestamp": stamp,
            "command": " ".join(
                [".venv/bin/python", "bench/commands.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "commit": git_commit(),
            "config": {
                "devices": args.devices,
                "sockets": args.sockets,
                "processes": args.processes,
                "server": f"daphne x{args.processes} on one listening socket, no proxy; gunicorn 2 sync "
                "workers for the second HTTP row of (i); one Celery worker (solo pool) runs the batch jobs",
                "rounds": args.rounds,
                "command": COMMAND,
                "store": "PostgreSQL + Redis (channel layer, cache)",
                "db_pool": "psycopg pool per process (DB_POOL=1, DB_CONN_MAX_AGE=0)",
                "cpus": os.cpu_count(),
            },
            "versions": {"postgresql": pg_version, "python": sys.version.split()[0]},
            "batch_creation": {
                "http_s": http_s,
                "http_done_s": http_done_s,
                "wsgi_s": wsgi_s,
                "wsgi_done_s": wsgi_done_s,
                **service,
            },
            "push": push,
            "database_check": check,
            "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
            "problems": problems,
        }
        out_path = RESULTS_DIR / f"commands-{stamp}.json"
        out_path.write_text(json.dumps(report, indent=2) + "\n")
        print()
        print(markdown_tables(report))
        print()
        print(f"WebSockets opened in {push['open_s']:.1f} s; results: {out_path.relative_to(ROOT)}")
        busiest = max(load_before[0], os.getloadavg()[0])
        if busiest > (os.cpu_count() or 1):
            print(
                f"WARNING: the 1-minute load average reached {busiest:.1f} on {os.cpu_count()} cores: other "
                "work shared the machine, so the figures are high and noisy; run again on an idle machine "
                "before quoting them"
            )
        if problems:
            print("\nFAILED: the run cannot be trusted:\n  - " + "\n  - ".join(problems), file=sys.stderr)
            return 1
        return 0
    except BenchError as exc:
        print(f"\nbench/commands.py: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("\nbench/commands.py: interrupted; stopping daphne", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        with contextlib.suppress(Exception):
            delete_redis_keys(key_prefix, args.redis_url)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
