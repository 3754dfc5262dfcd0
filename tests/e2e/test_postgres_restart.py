"""PostgreSQL stopped and started again under a running server: every call that needs it answers the
protocol's 503 UNAVAILABLE with Retry-After (never a 500), nothing is half-written, and the server
recovers by itself. A private PostgreSQL cluster on its own port (initdb'd for this test, holding a
copy of the test database), stopped with `pg_ctl stop -m fast` and started again; real servers (daphne
with its pool, gunicorn with persistent connections); real HTTP."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from django.db import connection
from django.test import Client

from accounts.models import Role
from tests.conftest import protocol_order
from tests.e2e.conftest import _free_port, asgi_server
from tests.factories import MerchantFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


@pytest.fixture(autouse=True)
def _needs_a_private_postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip(reason=f"restarts PostgreSQL (this run uses {connection.vendor})")
    if PG_BIN is None or shutil.which("runuser") is None:
        pytest.skip(reason="needs PostgreSQL's server binaries and runuser to start a private cluster")


class PrivatePostgres:
    """A throwaway cluster owned by the `postgres` user (initdb refuses root), trust auth, no fsync."""

    def __init__(self, root: Path):
        self.dir, self.port = root / "pgdata", _free_port()
        root.chmod(0o777)  # under /tmp directly: pytest's own temporary folders are root's alone
        self._as_postgres(PG_BIN / "initdb", "-D", self.dir, "-A", "trust", "-U", "postgres", "--no-sync")

    def _as_postgres(self, *command, check=True):
        done = subprocess.run(["runuser", "-u", "postgres", "--", *map(str, command)], capture_output=True)
        if check and done.returncode != 0:
            log = (self.dir / "log").read_text()[-2000:] if (self.dir / "log").exists() else ""
            pytest.fail(f"{command[0]} failed: {done.stdout.decode()}{done.stderr.decode()}\n{log}")
        return done

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            PG_BIN / "pg_ctl", "-D", self.dir, "-o", options, "-w", "-l", self.dir / "log", "start"
        )

    def stop(self):
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop", check=False)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def copy_of(self, source: str, name: str) -> str:
        """The test database, schema and rows, copied into this cluster as `name`."""
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name], check=True
        )
        dump = subprocess.run(
            ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--no-owner", source],
            capture_output=True,
            check=True,
        )
        subprocess.run(
            ["psql", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", name],
            input=dump.stdout,
            capture_output=True,
            check=True,
        )
        return self.url(name)


@pytest.fixture
def private_postgres():
    root = Path(tempfile.mkdtemp(prefix="coffeeshop-pg-"))
    cluster = PrivatePostgres(root)
    cluster.start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


def count(url: str, sql: str, *params) -> int:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as db:
        return db.execute(sql, params).fetchone()[0]


@pytest.mark.parametrize("server", ["daphne", "gunicorn"])
def test_a_postgresql_restart_answers_503_with_retry_after_and_recovers(
    server, private_postgres, django_db_blocker, tmp_path_factory
):
    merchant = MerchantFactory(name="Restart")
    signed_in = Client()
    signed_in.force_login(UserFactory(role=Role.OPS, merchants=[merchant]))
    session = {"sessionid": signed_in.cookies["sessionid"].value}  # its row travels with the copy
    url = private_postgres.copy_of(connection.settings_dict["NAME"], "coffeeshop_restart")
    env = {"DATABASE_URL": url, "CACHE_KEY_PREFIX": f"pg-restart-{server}-{os.getpid()}"}
    with asgi_server(django_db_blocker, tmp_path_factory, server=server, **env) as live:
        client = httpx.Client(base_url=live.url, timeout=30)
        registered = client.post(
            "/api/v1/devices/register",
            json={
                "serial": "PGR-1",
                "model": "CM-2000",
                "firmware": "1.0",
                "provisioning_secret": merchant.provisioning_secret,
            },
        )
        assert registered.status_code == 201, registered.text
        device_id, token = registered.json()["data"]["device_id"], registered.json()["data"]["token"]
        auth = {"Authorization": f"Device {token}"}

        def sell(order_id):
            return client.post(
                f"/api/v1/devices/{device_id}/orders/create", json=protocol_order(order_id), headers=auth
            )

        def heartbeat(state="idle"):
            return client.post(f"/api/v1/devices/{device_id}/status", json={"state": state}, headers=auth)

        assert heartbeat().status_code == 200
        assert sell("BEFORE-1").status_code == 201

        private_postgres.stop()
        during = [
            sell("DURING-1"),
            heartbeat("fault"),  # news: the full path, which needs the database
            client.post("/api/v1/devices/register", json={
                "serial": "PGR-2", "model": "CM-2000", "firmware": "1.0",
                "provisioning_secret": merchant.provisioning_secret,
            }),
            client.get("/admin/devices/device/", cookies=session),
            client.get("/api/v1/health"),
        ]  # fmt: skip

        for reply in during:
            assert reply.status_code == 503, (reply.request.url.path, reply.status_code, reply.text[:300])
            assert int(reply.headers.get("Retry-After", 0)) > 0, (reply.request.url.path, reply.text[:300])
            if reply.request.url.path.startswith("/api/"):
                assert reply.json()["error"]["code"] == "UNAVAILABLE"

        private_postgres.start()
        deadline = time.monotonic() + 30
        while (retried := sell("DURING-1")).status_code == 503:
            assert time.monotonic() < deadline, "the server did not recover once PostgreSQL was back"
            time.sleep(0.5)
        assert retried.status_code == 201, retried.text
        assert sell("DURING-1").status_code == 200  # the retry of the retry: a duplicate
        assert heartbeat("fault").status_code == 200
        assert client.get("/api/v1/health").status_code == 200
        assert client.get("/admin/devices/device/", cookies=session).status_code == 200

    orders = "SELECT count(*) FROM orders_order WHERE machine_order_id = %s"
    assert [count(url, orders, order_id) for order_id in ("BEFORE-1", "DURING-1")] == [1, 1]
    assert count(url, "SELECT count(*) FROM devices_device WHERE serial = 'PGR-2'") == 0
    assert count(url, "SELECT count(*) FROM devices_device WHERE state = 'fault'") == 1
