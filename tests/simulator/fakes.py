"""What the simulator's tests share: a machine to poke, an in-process fake of the protocol (`FakeServer`)
behind httpx.MockTransport, short fleet runs against it, and a clock the test moves by hand."""

import asyncio
import hashlib
import itertools
import json
import random
import re

import httpx

from simulator import (
    BACKLOG_LIMIT,
    CommandChannel,
    FleetSession,
    FleetSettings,
    ProtocolClient,
    SimulatedMachine,
    run_fleet,
)

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
SECRET = "s3cret"


def make_machine(seed: int = 7) -> SimulatedMachine:
    return SimulatedMachine("SIM-000001", "CM-2000", "1.4.2", "Lobby 1", rng=random.Random(seed))


def envelope(data, status=200, headers=None):
    return httpx.Response(status, json={"ok": True, "data": data}, headers=headers)


def error(status, code, message="", details=None, headers=None):
    body = {"ok": False, "error": {"code": code, "message": message, "details": details or {}}}
    return httpx.Response(status, json=body, headers=headers)


def protocol_client(handler, attempts=3):
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = httpx.AsyncClient(base_url="http://server.test", transport=httpx.MockTransport(handler))
    return ProtocolClient(client, attempts=attempts, sleep=record_sleep, rng=random.Random(0)), sleeps


class FakeServer:
    """Just enough of protocol v1 to watch the simulator behave: registration, tokens, heartbeats, and
    orders, idempotent on (device, order_id) like the real one. Order calls can be made to fail:
    `unreachable_order_calls` refuse the connection before anything is stored, `timeouts_after_storing`
    store the order(s) and then let the reply time out, `reject_order_ids` are refused as invalid.

    Commands: `send(device_id, type, payload)` queues one; the next heartbeat reply or pull hands it
    out once (`deliveries` records by which channel); `results` records every result call, and
    `lost_results` lets that many result replies time out after they were recorded.

    Packages are served at /packages/<name> (`package_requests` records each download);
    `desired_package` is offered in the heartbeat reply of every machine whose heartbeat reports
    another version, as the real server does; `package_versions` keeps what each machine reported."""

    def __init__(self, secret=SECRET, revoke_after_heartbeats=None):
        self.secret = secret
        self.revoke_after_heartbeats = revoke_after_heartbeats
        self.interval_s = 30
        self.devices: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.registrations: list[tuple[str, int]] = []
        self.heartbeats: list[dict] = []
        self.material_reports: list[dict] = []
        self.orders: dict[tuple[str, str], dict] = {}
        self.order_requests: list[dict] = []
        self.unreachable_order_calls = 0
        self.timeouts_after_storing = 0
        self.reject_order_ids: set[str] = set()
        self.pending: dict[str, list[dict]] = {}
        self.command_numbers = itertools.count(1)
        self.deliveries: list[tuple[str, str, str]] = []  # (device_id, command_id, channel)
        self.results: list[tuple[str, str, dict]] = []  # (device_id, command_id, body)
        self.lost_results = 0
        self.pulls = 0
        self.packages: dict[str, bytes] = {}
        self.package_requests: list[httpx.Request] = []
        self.desired_package: dict | None = None
        self.package_versions: dict[str, list[str]] = {}

    def send(self, device_id, command_type, payload=None, command_id=None):
        command = {
            "command_id": command_id or f"cmd-{next(self.command_numbers)}",
            "type": command_type,
            "payload": payload if payload is not None else {},
            "issued_at": "2026-11-24T08:15:00Z",
            "expires_at": "2026-11-24T09:15:00Z",
            "attempt": 1,
        }
        self.pending.setdefault(device_id, []).append(command)
        return command

    def lease(self, device_id, channel):
        leased, self.pending[device_id] = self.pending.get(device_id, []), []
        self.deliveries.extend((device_id, command["command_id"], channel) for command in leased)
        return leased

    def results_of(self, command_id):
        return [body["status"] for _, cid, body in self.results if cid == command_id]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/packages/"):
            self.package_requests.append(request)
            package = self.packages.get(request.url.path.rsplit("/", 1)[1])
            return httpx.Response(200, content=package) if package else error(404, "NOT_FOUND", "no package")
        body = json.loads(request.content) if request.content else None
        if request.url.path == "/api/v1/devices/register":
            return self.register(body)
        device_id = request.url.path.split("/")[4]
        if request.headers.get("Authorization") != f"Device {self.tokens.get(device_id)}":
            return error(401, "UNAUTHORIZED", "bad token")
        if request.url.path.endswith("/orders/create"):
            return self.take_orders(request, device_id, body)
        if request.url.path.endswith("/commands/pending"):
            self.pulls += 1
            return envelope({"commands": self.lease(device_id, "pull")})
        if request.url.path.endswith("/result"):
            command_id = request.url.path.split("/")[6]
            self.results.append((device_id, command_id, body))
            if self.lost_results:
                self.lost_results -= 1
                raise httpx.ReadTimeout("the reply was lost", request=request)
            return envelope({"command_id": command_id, "status": body["status"]})
        if request.url.path.endswith("/status"):
            self.heartbeats.append(body)
            self.package_versions.setdefault(device_id, []).append(body.get("package_version"))
            if self.revoke_after_heartbeats and len(self.heartbeats) % self.revoke_after_heartbeats == 0:
                self.tokens[device_id] = "revoked"
            desired = self.desired_package
            return envelope(
                {
                    "server_time": "2026-11-24T08:15:00Z",
                    "heartbeat_interval_s": 30,
                    "commands": self.lease(device_id, "heartbeat"),
                    "desired_package": desired
                    if desired and desired["version"] != body.get("package_version")
                    else None,
                }
            )
        self.material_reports.append(body)
        return envelope({})

    def take_orders(self, request, device_id, body):
        if self.unreachable_order_calls:
            self.unreachable_order_calls -= 1
            raise httpx.ConnectError("connection refused", request=request)
        self.order_requests.append(body)
        if "orders" in body:
            assert len(body["orders"]) <= BACKLOG_LIMIT, "413"
            results = []
            for order in body["orders"]:
                outcome = self.take_one(device_id, order)
                if outcome in {"accepted", "duplicate"}:
                    results.append({"order_id": order["order_id"], "result": outcome})
                else:
                    code, message = outcome
                    results.append(
                        {
                            "order_id": order["order_id"],
                            "result": "rejected",
                            "error": {"code": code, "message": message, "details": {}},
                        }
                    )
            reply = envelope({"results": results})
        else:
            outcome = self.take_one(device_id, body)
            if outcome == "accepted":
                reply = envelope({"order_id": body["order_id"], "result": "accepted"}, status=201)
            elif outcome == "duplicate":
                reply = envelope({"order_id": body["order_id"], "result": "duplicate"})
            else:
                code, message = outcome
                reply = error(409 if code == "CONFLICT" else 400, code, message)
        if self.timeouts_after_storing:
            self.timeouts_after_storing -= 1
            raise httpx.ReadTimeout("the reply was lost", request=request)
        return reply

    def take_one(self, device_id, order):
        if order["order_id"] in self.reject_order_ids:
            return "VALIDATION_ERROR", "total must equal the sum"
        known = self.orders.setdefault((device_id, order["order_id"]), order)
        if known is order:
            return "accepted"
        return "duplicate" if known == order else ("CONFLICT", "already received with different content")

    def register(self, body):
        if body.get("provisioning_secret") != self.secret:
            return error(403, "FORBIDDEN", "wrong secret")
        status = 200 if body["serial"] in self.devices else 201
        device_id = self.devices.setdefault(body["serial"], str(len(self.devices) + 1))
        self.tokens[device_id] = f"token-{len(self.registrations)}"
        self.registrations.append((body["serial"], status))
        return envelope(
            {
                "device_id": device_id,
                "token": self.tokens[device_id],
                "heartbeat_interval_s": self.interval_s,
                "server_time": "2026-11-24T08:15:00Z",
            },
            status=status,
        )


def recipe(product_id, name, recipe_version, price, *steps):
    """One recipe of a package, in the protocol's format."""
    return {
        "product_id": product_id,
        "name": name,
        "recipe_version": recipe_version,
        "price": price,
        "steps": list(steps),
    }


LATTE_RECIPE = recipe(
    "latte",
    "Latte",
    "7",
    "19.50",
    {"action": "grind", "material": "BEAN-ARABICA", "amount": 25, "unit": "g"},
    {"action": "brew", "water_ml": 40, "temperature_c": 93},
    {"action": "add", "material": "MILK-POWDER", "amount": 15, "unit": "g"},
    {"action": "pour", "water_ml": 200},
)


def serve_package(server, recipes=(LATTE_RECIPE,), version="2026.11.4", package_id="17", tamper=None):
    """Put a package in the protocol's format on the fake server; returns its offer (`desired_package`,
    and with `size` dropped, an `upgrade` payload). `tamper` changes the bytes served, not the offer."""
    package = {
        "package_id": package_id,
        "version": version,
        "created_at": "2026-11-24T08:00:00Z",
        "recipes": list(recipes),
    }
    content = json.dumps(package, sort_keys=True, separators=(",", ":")).encode()
    name = f"{package_id}-{version}.json"
    server.packages[name] = content if tamper is None else tamper(content)
    return {
        "package_id": package_id,
        "version": version,
        "url": f"/packages/{name}",
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content),
    }


def upgrade_payload(offer):
    return {name: value for name, value in offer.items() if name != "size"}


def fake_client(server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://server.test", transport=httpx.MockTransport(server))


def no_sockets(url, **options):
    """A WebSocket opener for fleets against the HTTP-only fake: every connection is refused."""
    raise ConnectionRefusedError(f"no WebSocket server at {url}")


async def fly(server, events=None, devices=3, duration_s=0.4, secret=SECRET, **options):
    """A short fleet run against the fake; it sells nothing unless the test asks for sales."""
    options.setdefault("connect_socket", no_sockets)
    return await run_fleet(
        "http://server.test",
        secret,
        devices,
        duration_s=duration_s,
        heartbeat_interval_s=0.02,
        offline_probability=options.pop("offline_probability", 0.0),
        seed=1,
        on_event=events.append if events is not None else None,
        transport=httpx.MockTransport(server),
        sales_per_hour=options.pop("sales_per_hour", 0),
        **options,
    )


def no_sleep_session(client, **settings):
    async def no_sleep(seconds: float) -> None:
        return None

    return FleetSession(ProtocolClient(client, sleep=no_sleep), SECRET, FleetSettings(**settings))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def clocked_machine(seed: int = 7, now: float = 1000.0) -> tuple[SimulatedMachine, FakeClock]:
    clock = FakeClock(now)
    machine = SimulatedMachine(
        "SIM-000001", "CM-2000", "1.4.2", "Lobby 1", rng=random.Random(seed), clock=clock
    )
    return machine, clock


async def commanded_machine(server, client, channel=CommandChannel.HEARTBEAT, misbehaviours=(), seed=7):
    """A registered machine on `channel` whose commands take no time, with its session."""
    machine = make_machine(seed)
    machine.command_channel = channel
    if misbehaviours:
        machine.misbehave(misbehaviours)
    session = no_sleep_session(client, command_time_scale=0.0, sales_per_hour=0)
    await machine.register(session)
    return machine, session


async def settle(machine) -> None:
    """Let the machine's command worker finish what it has in hand."""
    for _ in range(100):
        if machine._worker is None or machine._worker.done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the command worker never finished")


async def run_commands(server, machine, session, *commands):
    """Queue the commands on the fake server, deliver them with one heartbeat, and wait for the results."""
    sent = [server.send(machine.device_id, kind, payload) for kind, payload in commands]
    await machine.heartbeat(session)
    await settle(machine)
    return sent
