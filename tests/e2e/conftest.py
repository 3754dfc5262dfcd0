"""Real servers for end-to-end tests: daphne serving coffeeshop.asgi (HTTP and WebSockets) or gunicorn
serving coffeeshop.wsgi, in its own process, on the test database, reached over real sockets by real
clients."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url_of_test_db() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


class LiveServer:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path, data_dir: Path):
        self.url = url
        self.process = process
        self.log_path = log_path  # the server's stdout and stderr
        self.data_dir = data_dir  # its COFFEESHOP_DATA_DIR: media (package files, exports) live under it

    @property
    def ws_url(self) -> str:
        parsed = urlparse(self.url)
        return f"ws://{parsed.netloc}"


@pytest.fixture
def live_asgi_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One server per test: the database is flushed between transactional tests, which gives content
    types new ids that a long-lived server process would still have cached."""
    with asgi_server(django_db_blocker, tmp_path_factory) as server:
        yield server


# The servers the README starts, as commands on a port.
SERVERS = {
    "daphne": lambda port: [
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "coffeeshop.asgi:application"
    ],
    "runserver": lambda port: [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
    "gunicorn": lambda port: [
        sys.executable, "-m", "gunicorn", "coffeeshop.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}"
    ],
}  # fmt: skip


@contextlib.contextmanager
def asgi_server(django_db_blocker, tmp_path_factory, server="daphne", **extra_env):
    """daphne serving coffeeshop.asgi (or another of the README's `SERVERS`) on the test database (and
    Redis, unless `extra_env` says otherwise) on a free port, once it answers its health check."""
    port = _free_port()
    command = SERVERS[server](port)
    with _live_server(server, command, port, django_db_blocker, tmp_path_factory, extra_env) as live:
        yield live


@contextlib.contextmanager
def wsgi_server(django_db_blocker, tmp_path_factory, *, workers: int = 1, **extra_env):
    """gunicorn's sync workers (the shedding ones, gunicorn.conf.py) serving coffeeshop.wsgi, as
    production serves HTTP, on the test database (and Redis, unless `extra_env` says otherwise) on a
    free port, once it answers."""
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "coffeeshop.wsgi", "--workers", str(workers)]
    command += ["--worker-class", "coffeeshop.shedding.SheddingSyncWorker", "--bind", f"127.0.0.1:{port}"]
    with _live_server("gunicorn", command, port, django_db_blocker, tmp_path_factory, extra_env) as server:
        yield server


@contextlib.contextmanager
def _live_server(name, command, port, django_db_blocker, tmp_path_factory, extra_env):
    with django_db_blocker.unblock():
        database_url = _database_url_of_test_db()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "coffeeshop.settings",
        "LIVE_POLL_INTERVAL_S": "1",
        "COFFEESHOP_DATA_DIR": str(data_dir := tmp_path_factory.mktemp("server-data")),
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
        env["CACHE_KEY_PREFIX"] = settings.CACHES["default"].get("KEY_PREFIX", "coffeeshop")
    # Each server decides its own connection handling (asgi.py, manage.py), as in production: never
    # inherit the pool settings this test process may have picked up from importing coffeeshop.asgi.
    for inherited in ("DB_POOL", "DB_CONN_MAX_AGE"):
        env.pop(inherited, None)
    env.update(extra_env)
    log_path = tmp_path_factory.mktemp("server-log") / f"{name}.log"
    log = open(log_path, "w+")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # CI's 2 cores may be busy with a worker and a browser
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            process.kill()
            pytest.fail(f"{name} did not start:\n{log.read()[-3000:]}")
        time.sleep(0.2)
    try:
        yield LiveServer(url, process, log_path, data_dir)
    finally:
        stop(process, timeout_s=10)
        log.close()


def stop(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within `timeout_s` (nothing if it already has)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def session_cookie_for(live_asgi_server):
    """session_cookie_for(user) -> the `sessionid` cookie value of a logged-in admin session."""
    from django.test import Client

    def make(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    return make


async def in_thread(fn, *args, **kwargs):
    """Run blocking ORM code from an async test, closing the thread's connection afterwards so the test
    database can be dropped at the end of the run."""
    import asyncio

    from django.db import connections

    def run():
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return await asyncio.to_thread(run)


def celery_env(django_db_blocker, data_dir: Path, **extra_env) -> dict:
    """The environment of a Celery process (worker or beat) on the test database and Redis."""
    if not settings.REDIS_URL:
        pytest.skip(reason="needs REDIS_URL: Celery gets and sends tasks through Redis, as in production")
    with django_db_blocker.unblock():
        database_url = _database_url_of_test_db()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "coffeeshop.settings",
        "COFFEESHOP_DATA_DIR": str(data_dir),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "coffeeshop"),
        **extra_env,
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


@contextlib.contextmanager
def celery_worker(
    queue: str,
    django_db_blocker,
    data_dir: Path,
    *,
    shared_queue: str = "",
    concurrency: int | None = None,
    **extra_env,
):
    """A real `celery worker` process (solo pool; with `concurrency`, the prefork pool production runs)
    on the test database and Redis, taking tasks from `queue` only (no other worker on the same Redis
    takes them), and from `shared_queue` if given (one that several workers take from, as in
    production). Yields the process once it has answered a task on `queue`; stops it afterwards unless
    the test killed it."""
    env = celery_env(django_db_blocker, data_dir, **extra_env)
    log_path = data_dir / f"celery-{queue}.log"
    with log_path.open("a") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "coffeeshop",
                "--quiet",  # no banner: with LOG_FORMAT=json every line is JSON, as Procfile.prod runs it
                "worker",
                "--without-mingle",
                "--without-gossip",
                *(
                    ["-P", "solo"]
                    if concurrency is None
                    else ["-P", "prefork", "--concurrency", str(concurrency)]
                ),
                "-Q",
                f"{queue},{shared_queue}" if shared_queue else queue,
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        from operations.tasks import sweep_commands

        try:
            # Answers once the worker is up: loading Django takes over 30 s when several runs share 2 cores.
            sweep_commands.apply_async(queue=queue).get(timeout=120)
        except Exception as error:
            pytest.fail(f"the Celery worker did not answer ({error!r}):\n{log_path.read_text()[-3000:]}")
        yield worker
    finally:
        stop(worker, timeout_s=15)
    if worker.returncode not in (0, -15, -9):
        print(log_path.read_text()[-3000:])
