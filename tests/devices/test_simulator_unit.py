"""The fleet simulator's own logic, with no server: its physics, the bodies it builds, its retries, its
sales, and its machines' lives against an in-process fake of the protocol (httpx.MockTransport)."""

import asyncio
import hashlib
import itertools
import json
import logging
import math
import random
import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from devices.simulator import (
    BACKLOG_LIMIT,
    DAILY_SALES_CURVE,
    DEFAULT_BINS,
    DEMO_MISBEHAVIOUR,
    FLAT_SALES_CURVE,
    LARGE_CUP_SCALE,
    MACHINE_STATES,
    MENU,
    PAYMENT_METHODS,
    BinLevel,
    BoilerTemperature,
    CommandChannel,
    CommandOutcome,
    Episodes,
    EpisodeTiming,
    EventKind,
    FleetConfigurationError,
    FleetEvent,
    FleetSession,
    FleetSettings,
    Misbehaviour,
    OrderNumbers,
    ProtocolClient,
    Rejected,
    SimulatedMachine,
    Unauthorized,
    Unreachable,
    backlog_chunks,
    build_fleet,
    choose_misbehaving,
    command_channels_of,
    fleet_serial,
    format_timestamp,
    parse_retry_after,
    run_fleet,
    sales_rate_per_hour,
)

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
SECRET = "s3cret"


def make_machine(seed: int = 7) -> SimulatedMachine:
    return SimulatedMachine("SIM-000001", "CM-2000", "1.4.2", "Lobby 1", rng=random.Random(seed))


# --- Physics -----------------------------------------------------------------------------------------


def test_boiler_temperature_stays_physical_and_hovers_around_92c_over_10k_steps():
    boiler, rng = BoilerTemperature(), random.Random(1)

    readings = [boiler.step(rng) for _ in range(10_000)]

    assert all(BoilerTemperature.FLOOR_C <= reading <= BoilerTemperature.CEILING_C for reading in readings)
    assert 91.5 <= statistics.median(readings) <= 92.5
    assert 90.5 <= statistics.mean(readings) <= 93.0
    within_a_degree = sum(1 for reading in readings if abs(reading - 92.0) <= 1.0)
    assert within_a_degree / len(readings) > 0.7, "mostly near the setpoint"
    assert min(readings) < 88.0, "it has dips"
    assert max(readings) > 94.0, "it has overshoots"


def test_bin_levels_never_leave_zero_to_capacity_and_near_empty_bins_get_refilled():
    machine = make_machine()
    refills: list[int] = []

    for _ in range(10_000):
        refills.extend(machine.step())
        for level in machine.bins:
            assert 0.0 <= level.remaining <= level.spec.capacity

    assert {spec.index for spec in DEFAULT_BINS} <= set(refills), "every bin ran low and was refilled"


def test_a_bin_draw_larger_than_its_content_empties_it_and_a_fill_never_overflows_it():
    level = BinLevel(DEFAULT_BINS[0], 30.0)

    level.draw(500)
    assert level.remaining == 0.0
    level.fill_to(10 * DEFAULT_BINS[0].capacity)
    assert level.remaining == DEFAULT_BINS[0].capacity


def test_the_machine_is_mostly_idle_but_sometimes_brews_or_cleans():
    machine = make_machine()
    states = []
    for _ in range(2_000):
        machine.step()
        states.append(machine.state)

    assert set(states) == {"idle", "brewing", "cleaning"}
    assert states.count("idle") > len(states) / 2


def test_default_bins_are_a_catalogue_with_unique_indexes_and_material_codes():
    assert [spec.index for spec in DEFAULT_BINS] == [1, 2, 3, 4, 5]
    assert len({spec.material for spec in DEFAULT_BINS}) == len(DEFAULT_BINS)
    assert {spec.material for spec in DEFAULT_BINS} >= {"BEAN-ARABICA", "MILK-POWDER", "WATER"}


# --- Protocol bodies ---------------------------------------------------------------------------------


def test_registration_body_has_exactly_the_protocol_fields():
    body = make_machine().registration_body(SECRET)

    assert body == {
        "serial": "SIM-000001",
        "model": "CM-2000",
        "firmware": "1.4.2",
        "provisioning_secret": SECRET,
        "alias": "Lobby 1",
    }


def test_heartbeat_body_has_exactly_the_protocol_fields_and_types():
    machine = make_machine()
    machine.step()

    body = machine.heartbeat_body()

    assert set(body) == {
        "state",
        "temperature_c",
        "ip",
        "wifi",
        "firmware",
        "uptime_s",
        "package_version",
        "sent_at",
        "bins",
    }
    assert body["state"] in MACHINE_STATES
    assert type(body["temperature_c"]) is float
    assert isinstance(body["ip"], str) and len(body["ip"].split(".")) == 4
    assert set(body["wifi"]) == {"ssid", "rssi_dbm"}
    assert isinstance(body["wifi"]["ssid"], str) and type(body["wifi"]["rssi_dbm"]) is int
    assert -100 < body["wifi"]["rssi_dbm"] < 0
    assert body["firmware"] == "1.4.2"
    assert type(body["uptime_s"]) is int and body["uptime_s"] >= 0
    assert isinstance(body["package_version"], str)
    assert ISO_WITH_OFFSET.match(body["sent_at"])
    assert len(body["bins"]) == len(DEFAULT_BINS)
    for reported in body["bins"]:
        assert set(reported) == {"index", "material", "remaining", "capacity", "unit"}
        assert all(type(reported[name]) is int for name in ("index", "remaining", "capacity"))
        assert 0 <= reported["remaining"] <= reported["capacity"]
    assert json.loads(json.dumps(body)) == body, "plain JSON, no Decimals or datetimes"


def test_materials_body_names_only_the_refilled_bins_flagged_as_refilled():
    machine = make_machine()
    moment = datetime(2026, 11, 24, 8, 15, tzinfo=UTC)

    body = machine.materials_body({2, 5}, now=moment)

    assert body["sent_at"] == "2026-11-24T08:15:00Z"
    assert [reported["index"] for reported in body["bins"]] == [2, 5]
    assert all(reported["refilled"] is True for reported in body["bins"])
    assert set(body["bins"][0]) == {"index", "material", "remaining", "capacity", "unit", "refilled"}


def test_timestamps_are_iso8601_with_an_offset_and_naive_times_are_refused():
    assert format_timestamp(datetime(2026, 11, 24, 8, 15, 0, 123456, tzinfo=UTC)) == "2026-11-24T08:15:00Z"
    china = timezone(timedelta(hours=8))
    assert format_timestamp(datetime(2026, 11, 24, 8, 14, 31, tzinfo=china)) == "2026-11-24T08:14:31+08:00"
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 11, 24, 8, 15))


def test_the_machine_clock_is_near_real_time_but_may_drift_and_use_its_own_zone():
    machine = make_machine()

    sent_at = datetime.fromisoformat(machine.heartbeat_body()["sent_at"].replace("Z", "+00:00"))

    assert sent_at.utcoffset() in {timedelta(0), timedelta(hours=8)}
    assert abs(sent_at - datetime.now(UTC)) < timedelta(seconds=30)


def test_no_money_slips_into_a_body_as_a_float_or_decimal():
    body = make_machine().heartbeat_body()

    def leaves(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        elif isinstance(value, list):
            for item in value:
                yield from leaves(item)
        else:
            yield value

    assert not any(isinstance(leaf, Decimal) for leaf in leaves(body))
    assert [name for name, value in body.items() if isinstance(value, float)] == ["temperature_c"]


def test_retry_after_reads_seconds_and_http_dates_and_ignores_garbage():
    now = datetime(2026, 11, 24, 8, 15, tzinfo=UTC)

    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after("Tue, 24 Nov 2026 08:15:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_serials_are_deterministic_so_a_restart_brings_back_the_same_machines():
    assert fleet_serial("SIM", 1) == "SIM-000001"

    first, again = build_fleet(4, "LAB", seed=3), build_fleet(4, "LAB", seed=3)

    assert [m.serial for m in first] == ["LAB-000001", "LAB-000002", "LAB-000003", "LAB-000004"]

    def identity(machine):
        return machine.serial, machine.model, machine.alias, machine.ip

    assert [identity(machine) for machine in first] == [identity(machine) for machine in again]
    assert [level.remaining for level in first[0].bins] == [level.remaining for level in again[0].bins]
    assert {m.model for m in first} == {"CM-2000", "CM-3000", "EspressoPro"}


# --- Transport ---------------------------------------------------------------------------------------


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


async def test_a_throttled_call_waits_the_retry_after_then_succeeds():
    replies = iter([error(429, "THROTTLED", headers={"Retry-After": "7"}), envelope({"fine": True})])
    api, sleeps = protocol_client(lambda request: next(replies))

    reply = await api.request("POST", "/api/v1/devices/1/status", body={"state": "idle"}, token="t")

    assert reply.data == {"fine": True}
    assert sleeps == [7.0]


async def test_timeouts_are_retried_with_growing_backoff_then_reported_unreachable():
    calls = []

    def time_out(request):
        calls.append(request)
        raise httpx.ConnectTimeout("slow", request=request)

    api, sleeps = protocol_client(time_out, attempts=4)

    with pytest.raises(Unreachable):
        await api.request("POST", "/api/v1/devices/register", body={})

    assert len(calls) == 4
    assert len(sleeps) == 3, "no sleep after the last attempt"
    assert all(0 <= delay <= api.backoff_base_s * 2**attempt for attempt, delay in enumerate(sleeps))


async def test_every_call_but_registration_carries_the_device_token():
    seen = []

    def handler(request):
        seen.append(request.headers.get("Authorization"))
        return envelope({})

    api, _ = protocol_client(handler)
    await api.request("POST", "/api/v1/devices/register", body={})
    await api.request("POST", "/api/v1/devices/1/status", body={}, token="abc")

    assert seen == [None, "Device abc"]


async def test_error_envelopes_become_rejections_and_401_asks_for_reregistration():
    replies = iter(
        [
            error(401, "UNAUTHORIZED", "token revoked"),
            error(400, "VALIDATION_ERROR", "bad", {"fields": {"bins.0.material": ["unknown"]}}),
            httpx.Response(500, text="<html>oops</html>"),
        ]
    )
    api, _ = protocol_client(lambda request: next(replies))

    with pytest.raises(Unauthorized):
        await api.request("POST", "/x", body={}, token="t")
    with pytest.raises(Rejected) as rejected:
        await api.request("POST", "/x", body={}, token="t")
    assert rejected.value.code == "VALIDATION_ERROR"
    assert rejected.value.details == {"fields": {"bins.0.material": ["unknown"]}}
    with pytest.raises(Rejected) as crashed:
        await api.request("POST", "/x", body={}, token="t")
    assert crashed.value.status == 500


# --- Machines' lives against a fake server -----------------------------------------------------------


class FakeServer:
    """Just enough of protocol v1 to watch the simulator behave: registration, tokens, heartbeats, and
    orders, idempotent on (device, order_id) like the real one. Order calls can be made to fail:
    `unreachable_order_calls` refuse the connection before anything is stored, `timeouts_after_storing`
    store the order(s) and then let the reply time out, `reject_order_ids` are refused as invalid.

    Commands: `send(device_id, type, payload)` queues one; the next heartbeat reply or pull hands it
    out once (`deliveries` records by which channel); `results` records every result call, and
    `lost_results` lets that many result replies time out after they were recorded. Packages are
    served at /packages/<name>."""

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
            if self.revoke_after_heartbeats and len(self.heartbeats) % self.revoke_after_heartbeats == 0:
                self.tokens[device_id] = "revoked"
            return envelope(
                {
                    "server_time": "2026-11-24T08:15:00Z",
                    "heartbeat_interval_s": 30,
                    "commands": self.lease(device_id, "heartbeat"),
                    "desired_package": None,
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


async def test_a_fleet_registers_every_machine_and_heartbeats_at_the_overridden_interval():
    server = FakeServer()

    stats = await fly(server, devices=3)

    assert sorted(serial for serial, _ in server.registrations) == ["SIM-000001", "SIM-000002", "SIM-000003"]
    assert stats.registered == 3
    assert stats.heartbeats_sent == len(server.heartbeats) >= 3 * 3
    assert stats.heartbeats_failed == 0


async def test_a_restarted_fleet_reregisters_the_same_serials_as_known_machines():
    server = FakeServer()
    await fly(server, devices=2, duration_s=0.1)

    await fly(server, devices=2, duration_s=0.1)

    assert [status for _, status in server.registrations] == [201, 201, 200, 200]
    assert len(server.devices) == 2


async def test_a_machine_whose_token_is_refused_registers_again_and_carries_on():
    server = FakeServer(revoke_after_heartbeats=5)
    events: list[FleetEvent] = []

    stats = await fly(server, events, devices=1)

    assert stats.reregistrations >= 1
    assert stats.heartbeats_failed == stats.reregistrations
    assert any(event.kind == EventKind.REREGISTERED for event in events)
    assert all(status == 200 for _, status in server.registrations[1:])
    assert len(server.heartbeats) > 5 + 1, "heartbeats went on with the new token"


async def test_a_wrong_secret_stops_the_machines_without_crashing_the_fleet():
    events: list[FleetEvent] = []

    stats = await fly(FakeServer(), events, devices=2, duration_s=2.0, secret="wrong")

    assert stats.registered == 0
    assert stats.machines_refused == 2
    assert stats.machines_crashed == 0
    assert {event.kind for event in events} == {EventKind.REFUSED}


async def test_machines_drop_offline_and_come_back():
    server = FakeServer()
    events: list[FleetEvent] = []

    stats = await fly(server, events, devices=2, duration_s=0.6, offline_probability=0.5)

    kinds = [event.kind for event in events]
    assert stats.offline_periods >= 1
    assert EventKind.OFFLINE in kinds and EventKind.BACK in kinds
    assert stats.heartbeats_sent > 0


async def test_a_bug_in_one_machine_is_logged_with_its_traceback_and_the_others_carry_on(caplog):
    server = FakeServer()

    def clumsy_listener(event: FleetEvent) -> None:
        if event.kind == EventKind.REGISTERED and event.serial == "SIM-000001":
            raise KeyError("a bug")

    with caplog.at_level(logging.ERROR, logger="devices.simulator"):
        stats = await run_fleet(
            "http://server.test",
            SECRET,
            2,
            duration_s=0.3,
            heartbeat_interval_s=0.02,
            offline_probability=0.0,
            on_event=clumsy_listener,
            transport=httpx.MockTransport(server),
        )

    assert stats.machines_crashed == 1
    assert any(record.exc_info and "SIM-000001" in record.getMessage() for record in caplog.records)
    assert stats.registered == 2
    assert stats.heartbeats_sent == len(server.heartbeats) > 0, "SIM-000002 kept heartbeating"


async def test_a_refill_of_a_near_empty_bin_is_reported_flagged_as_refilled():
    server = FakeServer()
    machine = make_machine()
    for level in machine.bins:
        level.remaining = 0.0

    async with fake_client(server) as client:
        session = FleetSession(ProtocolClient(client), SECRET)
        await machine.register(session)
        for _ in range(10):
            await machine.tick(session)

    reported = [reported for report in server.material_reports for reported in report["bins"]]
    assert sorted(reported["index"] for reported in reported) == [1, 2, 3, 4, 5], "each refill reported once"
    assert all(reported["refilled"] is True for reported in reported)
    assert all(reported["remaining"] >= 0.85 * reported["capacity"] for reported in reported)
    assert session.stats.material_reports_sent == len(server.material_reports)
    assert not machine.unreported_refills


async def test_the_machine_heartbeats_at_the_servers_interval_unless_told_otherwise():
    server = FakeServer()
    machine = make_machine()

    async with fake_client(server) as client:
        session = FleetSession(ProtocolClient(client), SECRET)
        assert machine.interval_s(session) == 30.0, "the protocol's default until the server says"
        server.interval_s = 45
        await machine.register(session)
        overridden = FleetSession(ProtocolClient(client), SECRET, FleetSettings(heartbeat_interval_s=0.5))

    assert machine.interval_s(session) == 45.0
    assert machine.interval_s(overridden) == 0.5


async def test_setting_stop_ends_the_fleet_early_and_still_returns_its_counters():
    server = FakeServer()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)

    stats = await asyncio.wait_for(fly(server, devices=2, duration_s=None, stop=stop), timeout=5)

    assert stats.registered == 2
    assert stats.heartbeats_sent == len(server.heartbeats) > 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"base_url": "localhost:8000"},
        {"devices": -1},
        {"duration_s": 0},
        {"heartbeat_interval_s": -1.0},
        {"offline_probability": 1.5},
        {"serial_prefix": ""},
        {"sales_per_hour": -1.0},
        {"sales_per_hour": float("nan")},
        {"duplicate_probability": 1.01},
        {"sales_curve": (1.0,) * 23},
        {"sales_curve": (0.0,) * 24},
        {"sales_curve": (-1.0,) + (1.0,) * 23},
        {"offline_intervals": (5.0, 1.0)},
        {"serial_prefix": "X" * 41},
    ],
)
async def test_a_fleet_that_cannot_run_is_refused_before_any_call(arguments):
    calls = []
    options = {"base_url": "http://server.test", "provisioning_secret": SECRET, "devices": 1, **arguments}

    with pytest.raises(FleetConfigurationError):
        await run_fleet(**options, transport=httpx.MockTransport(calls.append))

    assert calls == []


# --- Sales ---------------------------------------------------------------------------------------------

MONEY = re.compile(r"^\d+\.\d{2}$")
ORDER_ID = re.compile(r"^SIM-000001-(\d{8})-(\d{4,})$")
CHINA = timezone(timedelta(hours=8))


def sales(count, seed=7, now=None):
    machine = make_machine(seed)
    return machine, [machine.make_order(now) for _ in range(count)]


def no_sleep_session(client, **settings):
    async def no_sleep(seconds: float) -> None:
        return None

    return FleetSession(ProtocolClient(client, sleep=no_sleep), SECRET, FleetSettings(**settings))


async def registered_machine(server, client, seed=7, **settings):
    machine = make_machine(seed)
    session = no_sleep_session(client, **settings)
    await machine.register(session)
    return machine, session


def test_an_order_body_is_exactly_the_protocols_with_money_strings_and_a_total_that_adds_up():
    machine, orders = sales(500)

    for order in orders:
        body = order.body
        assert set(body) == {"order_id", "created_at", "currency", "total", "payment", "items", "is_test"}
        assert body["currency"] == "CNY" and body["is_test"] is False
        assert ISO_WITH_OFFSET.match(body["created_at"])
        assert MONEY.match(body["total"])
        assert set(body["payment"]) <= {"method", "status", "transaction_id"}
        assert {"method", "status"} <= set(body["payment"])
        assert body["payment"]["status"] in {"paid", "unpaid", "failed"}
        assert 1 <= len(body["items"]) <= 2
        for item in body["items"]:
            assert set(item) == {"product_id", "name", "qty", "unit_price", "recipe_version", "options"}
            assert type(item["qty"]) is int and item["qty"] >= 1
            assert MONEY.match(item["unit_price"])
            assert isinstance(item["recipe_version"], str) and item["recipe_version"]
            assert set(item["options"]) == {"size", "sugar"} and type(item["options"]["sugar"]) is int
        assert Decimal(body["total"]) == sum(Decimal(i["unit_price"]) * i["qty"] for i in body["items"])
        assert order.total == Decimal(body["total"])
        assert json.loads(json.dumps(body)) == body, "plain JSON: no Decimal, no datetime"
    created_at = datetime.fromisoformat(orders[0].body["created_at"].replace("Z", "+00:00"))
    assert created_at.utcoffset() == machine.tz.utcoffset(None), "the machine's own zone"
    assert abs(created_at - datetime.now(UTC)) < timedelta(seconds=30), "the machine's (skewed) clock"


def test_the_example_latte_of_the_protocol_comes_out_as_the_protocol_writes_it():
    machine = make_machine()
    moment = datetime(2026, 11, 24, 8, 14, 31, tzinfo=CHINA)
    machine.next_order_number = 42
    machine.rng = random.Random(0)

    body = machine.make_order(moment).body

    assert body["order_id"] == "SIM-000001-20261124-0042"
    assert body["created_at"] == "2026-11-24T08:14:31+08:00"


def test_order_ids_are_unique_per_machine_and_carry_serial_machine_date_and_a_running_number():
    machine, orders = sales(2_000)

    ids = [order.order_id for order in orders]
    assert len(set(ids)) == len(ids)
    numbers = []
    for order in orders:
        day, number = ORDER_ID.match(order.order_id).groups()
        assert day == order.body["created_at"][:10].replace("-", ""), "the date on the machine's clock"
        numbers.append(int(number))
    assert numbers == list(range(1, 2_001))
    assert machine.next_order_number == 2_001


def test_the_product_and_payment_mix_follows_the_weights_over_many_sales():
    _, orders = sales(20_000, seed=3)
    lines = [item for order in orders for item in order.body["items"]]
    payments = [order.body["payment"] for order in orders]

    products = Counter(item["product_id"] for item in lines)
    total_weight = sum(product.weight for product in MENU)
    for product in MENU:
        assert products[product.product_id] / len(lines) == pytest.approx(
            product.weight / total_weight, abs=0.015
        )
        assert {i["unit_price"] for i in lines if i["product_id"] == product.product_id} == {
            f"{product.price}"
        }
    methods = Counter(payment["method"] for payment in payments)
    for method, weight in PAYMENT_METHODS:
        assert methods[method] / len(payments) == pytest.approx(weight / 100, abs=0.015)
    statuses = Counter(payment["status"] for payment in payments)
    assert statuses["paid"] / len(payments) > 0.93
    assert statuses["unpaid"] > 0 and statuses["failed"] > 0
    assert all(p.get("transaction_id") for p in payments if p["status"] == "paid" and p["method"] != "cash")
    assert not any(
        p.get("transaction_id") for p in payments if p["status"] != "paid" or p["method"] == "cash"
    )
    quantities = Counter(item["qty"] for item in lines)
    assert set(quantities) == {1, 2} and quantities[1] / len(lines) == pytest.approx(0.85, abs=0.02)
    assert Counter(len(order.body["items"]) for order in orders)[1] / len(orders) == pytest.approx(
        0.9, abs=0.02
    )


def test_backlog_chunks_hold_at_most_500_orders_and_keep_the_order_sold():
    orders = list(range(1_234))

    chunks = backlog_chunks(orders)

    assert [len(chunk) for chunk in chunks] == [500, 500, 234]
    assert [order for chunk in chunks for order in chunk] == orders
    assert backlog_chunks(list(range(500))) == [list(range(500))]
    assert backlog_chunks([]) == []


def test_the_daily_curve_sells_more_at_breakfast_and_lunch_than_at_night_and_averages_the_base_rate():
    def at(hour):
        return sales_rate_per_hour(datetime(2026, 11, 24, hour, 30, tzinfo=CHINA), 10.0)

    assert at(8) > 4 * at(3)
    assert at(12) > at(10) and at(15) > at(14)
    assert at(3) > 0, "night is quiet, not dead"
    assert statistics.mean(at(hour) for hour in range(24)) == pytest.approx(10.0)
    flat = {
        sales_rate_per_hour(datetime(2026, 11, 24, h, tzinfo=CHINA), 10.0, FLAT_SALES_CURVE)
        for h in range(24)
    }
    assert flat == {10.0}
    assert len(DAILY_SALES_CURVE) == 24


def test_a_machine_reports_brewing_while_it_makes_a_sold_drink_and_the_bins_drain():
    now = [1_000.0]
    machine = SimulatedMachine(
        "SIM-000001", "CM-2000", "1.4.2", "Lobby 1", rng=random.Random(7), clock=lambda: now[0]
    )
    water = next(level for level in machine.bins if level.spec.material == "WATER")
    water_before = water.remaining

    machine.brew(machine.make_order())

    assert machine.heartbeat_body()["state"] == "brewing"
    assert water.remaining < water_before, "every drink on the menu takes water"
    now[0] += 10 * 60
    assert machine.heartbeat_body()["state"] == "idle"


def test_order_numbers_survive_a_restart_through_the_state_file_and_a_crash_never_reuses_one(tmp_path):
    path = tmp_path / "state" / "numbers.json"
    numbers = OrderNumbers(path)
    assert numbers.first_free("SIM-000001") == 1

    numbers.note_used("SIM-000001", 2)
    crashed = OrderNumbers(path)
    assert crashed.first_free("SIM-000001") >= 2, "a killed simulator resumes past every number it used"

    numbers.settle({"SIM-000001": 7, "SIM-000002": 3})
    assert OrderNumbers(path).first_free("SIM-000001") == 7
    assert OrderNumbers(path).first_free("SIM-000002") == 3


def test_a_corrupt_state_file_is_refused_before_any_call(tmp_path):
    path = tmp_path / "numbers.json"
    path.write_text("not json")

    with pytest.raises(FleetConfigurationError):
        OrderNumbers(path)


async def test_a_selling_fleet_delivers_every_order_exactly_once():
    server = FakeServer()

    stats = await fly(
        server,
        devices=3,
        duration_s=0.5,
        sales_per_hour=36_000,
        sales_curve=FLAT_SALES_CURVE,
        duplicate_probability=0.0,
    )

    assert stats.orders_sold >= 3
    delivered = {(record.serial, record.order_id) for record in stats.delivered}
    serial_of = {device_id: serial for serial, device_id in server.devices.items()}
    assert delivered == {(serial_of[device_id], order_id) for device_id, order_id in server.orders}
    assert len(stats.delivered) == len(delivered) == stats.orders_accepted
    assert stats.delivered_total == sum(Decimal(order["total"]) for order in server.orders.values())
    assert stats.orders_sold == len(stats.delivered) + stats.orders_unsent
    assert stats.orders_duplicate == stats.orders_rejected == stats.orders_conflict == 0
    assert all("orders" not in body for body in server.order_requests), "online sales go up one by one"


async def test_sales_made_offline_are_buffered_and_go_up_as_backlogs_of_at_most_500_in_the_order_sold():
    server = FakeServer()
    events: list[FleetEvent] = []
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)
        session.on_event = events.append
        machine.is_offline = True
        sold = [await machine.sell(session) for _ in range(1_203)]
        assert server.order_requests == [], "silent while offline"
        machine.is_offline = False

        await machine.tick(session)

    assert [len(body["orders"]) for body in server.order_requests] == [500, 500, 203]
    uploaded = [order["order_id"] for body in server.order_requests for order in body["orders"]]
    assert uploaded == [order.order_id for order in sold]
    assert machine.outbox == []
    assert session.stats.backlogs_uploaded == 3
    assert session.stats.orders_buffered_max == 1_203
    assert session.stats.orders_accepted == len(session.stats.delivered) == 1_203
    assert [event.detail for event in events if event.kind == EventKind.BACKLOG] == [
        "500 orders uploaded: 500 accepted, 0 duplicate, 0 rejected",
        "500 orders uploaded: 500 accepted, 0 duplicate, 0 rejected",
        "203 orders uploaded: 203 accepted, 0 duplicate, 0 rejected",
    ]


async def test_a_sale_whose_reply_timed_out_is_sent_again_and_its_duplicate_counts_as_delivered_once():
    server = FakeServer()
    server.timeouts_after_storing = 1
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)

        await machine.sell(session)

    assert len(server.order_requests) == 2, "the timed-out call was retried"
    assert len(server.orders) == 1
    assert session.stats.orders_accepted == 0 and session.stats.orders_duplicate == 1
    assert [record.order_id for record in session.stats.delivered] == [order for _, order in server.orders]
    assert machine.outbox == []


async def test_sales_wait_through_an_unreachable_server_and_go_up_as_a_backlog_when_it_is_back():
    server = FakeServer()
    server.unreachable_order_calls = 3 * 2  # two sales, three attempts each
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)

        first, second = await machine.sell(session), await machine.sell(session)
        assert machine.outbox == [first, second] and server.orders == {}
        await machine.tick(session)

    assert server.order_requests == [{"orders": [first.body, second.body]}]
    assert session.stats.order_uploads_failed == 2
    assert session.stats.orders_buffered_max == 2
    assert [record.order_id for record in session.stats.delivered] == [first.order_id, second.order_id]
    assert machine.outbox == []


async def test_a_rejected_order_in_a_backlog_is_logged_with_its_error_and_dropped_not_retried(caplog):
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)
        machine.is_offline = True
        good, bad = await machine.sell(session), await machine.sell(session)
        server.reject_order_ids = {bad.order_id}
        machine.is_offline = False

        with caplog.at_level(logging.WARNING, logger="devices.simulator"):
            await machine.tick(session)
            await machine.tick(session)

    assert len([body for body in server.order_requests if "orders" in body]) == 1, "not sent again"
    assert session.stats.orders_rejected == 1 and session.stats.orders_accepted == 1
    assert [record.order_id for record in session.stats.delivered] == [good.order_id]
    assert any(
        bad.order_id in r.getMessage() and "VALIDATION_ERROR" in r.getMessage() for r in caplog.records
    )
    assert machine.outbox == []


async def test_a_conflict_never_expected_from_a_correct_machine_is_counted_and_logged_as_an_error(caplog):
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)
        order = await machine.sell(session)
        machine.next_order_number -= 1  # a machine that lost its counter reuses the id for another sale

        with caplog.at_level(logging.ERROR, logger="devices.simulator"):
            reused = await machine.sell(session)

    assert reused.order_id == order.order_id
    assert session.stats.orders_conflict == 1
    assert any(r.levelno == logging.ERROR and "conflict" in r.getMessage() for r in caplog.records)
    assert machine.outbox == [], "dropped, not retried forever"
    assert len(session.stats.delivered) == 1


async def test_with_a_duplicate_probability_every_answered_order_is_re_sent_and_counted_as_a_duplicate():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=1.0)
        for _ in range(5):
            await machine.sell(session)
        machine.is_offline = True
        for _ in range(3):
            await machine.sell(session)
        machine.is_offline = False
        await machine.tick(session)

    assert len(server.orders) == 8
    assert session.stats.orders_accepted == 8
    assert session.stats.orders_duplicate == session.stats.orders_resent == 8
    assert len(session.stats.delivered) == 8
    assert session.stats.orders_conflict == 0


async def test_a_restarted_fleet_with_a_state_file_numbers_on_and_never_reuses_an_order_id(tmp_path):
    server = FakeServer()
    options = {
        "devices": 2,
        "duration_s": 0.3,
        "sales_per_hour": 36_000,
        "sales_curve": FLAT_SALES_CURVE,
        "duplicate_probability": 0.0,
        "state_file": tmp_path / "numbers.json",
    }

    first = await fly(server, **options)
    second = await fly(server, **options)

    assert first.orders_sold > 0 and second.orders_sold > 0
    assert first.orders_conflict == second.orders_conflict == 0
    assert second.orders_accepted == len(second.delivered), "every order of the second run was new"
    numbers = sorted(int(order_id.rsplit("-", 1)[1]) for serial, order_id in server.orders if serial == "1")
    assert numbers == list(range(1, len(numbers) + 1)), "numbering went on without a gap"


async def test_offline_spells_stop_sales_reaching_the_server_until_the_machine_is_back_and_nothing_is_lost():
    server = FakeServer()
    events: list[FleetEvent] = []

    stats = await fly(
        server,
        events,
        devices=3,
        duration_s=0.8,
        offline_probability=0.5,
        offline_intervals=(1.0, 3.0),
        sales_per_hour=36_000,
        sales_curve=FLAT_SALES_CURVE,
        duplicate_probability=0.1,
    )

    assert stats.offline_periods >= 1 and stats.backlogs_uploaded >= 1 and stats.orders_buffered_max >= 1
    assert stats.orders_sold == len(stats.delivered) + stats.orders_unsent
    assert (
        len(server.orders) == len(stats.delivered) == len({(r.serial, r.order_id) for r in stats.delivered})
    )
    unsent = {(r.serial, r.order_id) for r in stats.unsent}
    serial_of = {device_id: serial for serial, device_id in server.devices.items()}
    assert not unsent & {(serial_of[device_id], order_id) for device_id, order_id in server.orders}
    assert stats.orders_conflict == stats.orders_rejected == 0
    assert any(event.kind == EventKind.SOLD and "offline" in event.detail for event in events)


# --- Commands --------------------------------------------------------------------------------------


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


def test_mixed_command_channels_are_taken_in_turn_and_unknown_ones_are_refused():
    assert command_channels_of("mixed") == (
        CommandChannel.HEARTBEAT,
        CommandChannel.PULL,
        CommandChannel.WEBSOCKET,
    )
    assert command_channels_of("pull") == (CommandChannel.PULL,)
    assert command_channels_of(["websocket", "heartbeat"]) == (
        CommandChannel.WEBSOCKET,
        CommandChannel.HEARTBEAT,
    )
    with pytest.raises(FleetConfigurationError):
        command_channels_of("carrier-pigeon")
    with pytest.raises(FleetConfigurationError):
        command_channels_of([])


def test_misbehaving_machines_are_a_fraction_of_the_fleet_at_least_one_each_and_spread_out():
    serials = [fleet_serial("SIM", i) for i in range(1, 21)]

    demo = choose_misbehaving(serials, DEMO_MISBEHAVIOUR, random.Random(3))
    half = choose_misbehaving(serials, {"overheat": 0.5}, random.Random(3))
    tiny = choose_misbehaving(serials[:3], {"go_silent": 0.01, "run_dry": 0.0}, random.Random(3))

    assert sorted(kind for kinds in demo.values() for kind in kinds) == sorted(Misbehaviour)
    assert all(len(kinds) == 1 for kinds in demo.values()), "one kind per machine while the fleet allows"
    assert len(half) == 10 and all(kinds == {Misbehaviour.OVERHEAT} for kinds in half.values())
    assert list(tiny.values()) == [{Misbehaviour.GO_SILENT}], "above 0 means at least one machine"
    assert demo == choose_misbehaving(serials, DEMO_MISBEHAVIOUR, random.Random(3)), "reproducible"


def test_an_episode_starts_after_its_delay_lasts_its_time_and_comes_back_later():
    timing = EpisodeTiming(first_after_s=(10.0, 10.0), lasts_s=(5.0, 5.0), every_s=(100.0, 100.0))
    episodes = Episodes(timing, random.Random(1), now=0.0)

    seen = [t for t in range(0, 250) if episodes.is_on(float(t))]
    later = Episodes(timing, random.Random(1), now=0.0)

    assert seen == [*range(10, 15), *range(115, 120), *range(220, 225)]
    assert later.remaining_s(5.0) == 0.0
    assert later.remaining_s(11.5) == 3.5
    assert later.remaining_s(16.0) == 0.0


def test_an_overheating_boiler_climbs_above_100c_then_cools_back_into_the_brewing_range():
    boiler, rng = BoilerTemperature(), random.Random(2)

    boiler.overheating = True
    hot = [boiler.step(rng) for _ in range(20)]
    boiler.overheating = False
    cooling = [boiler.step(rng) for _ in range(20)]

    assert max(hot) > 100.0 and hot[-1] > 100.0
    assert all(reading <= BoilerTemperature.OVERHEAT_CEILING_C for reading in hot)
    assert cooling[0] > 98.0, "it cools step by step, it does not jump back"
    assert 88.0 <= cooling[-1] <= 96.0


def test_an_overheating_machine_reports_the_heat_only_during_its_episode():
    machine, clock = clocked_machine()
    machine.misbehave(["overheat"], {"overheat": EpisodeTiming((60.0, 60.0), (300.0, 300.0), (9e9, 9e9))})
    before, during, after = [], [], []

    for _ in range(10):
        machine.step()
        clock.now += 5
        before.append(machine.heartbeat_body()["temperature_c"])
    clock.now = 1000.0 + 60
    for _ in range(30):
        machine.step()
        clock.now += 5
        during.append(machine.heartbeat_body()["temperature_c"])
    clock.now = 1000.0 + 400
    for _ in range(30):
        machine.step()
        after.append(machine.heartbeat_body()["temperature_c"])

    assert max(before) < 98.0
    assert max(during) > 100.0
    assert max(after[-10:]) < 98.0, "recovered"


def test_a_machine_running_dry_reports_one_bin_low_then_empty_then_refilled():
    machine, clock = clocked_machine()
    machine.misbehave(["run_dry"], {"run_dry": EpisodeTiming((30.0, 30.0), (100.0, 100.0), (9e9, 9e9))})
    machine.step()
    assert machine.dry_bin is None

    clock.now += 30
    assert machine.step() == []
    dry = machine.dry_bin
    level = next(b for b in machine.heartbeat_body()["bins"] if b["index"] == dry)
    assert 0 < level["remaining"] <= 0.1 * level["capacity"], "low first"
    clock.now += 10
    for _ in range(30):
        refilled = machine.step()
        assert dry not in refilled, "nobody refills it while it runs dry"
    assert next(b for b in machine.heartbeat_body()["bins"] if b["index"] == dry)["remaining"] == 0

    clock.now += 100
    refilled = machine.step()
    assert dry in refilled and machine.dry_bin is None
    assert next(b for b in machine.materials_body({dry})["bins"])["refilled"] is True
    assert machine.bins[dry - 1].remaining >= 0.85 * machine.bins[dry - 1].spec.capacity


def test_a_machine_going_silent_knows_how_long_its_silence_lasts():
    machine, clock = clocked_machine()
    assert machine.silence_due_s() == 0.0
    machine.misbehave(["go_silent"], {"go_silent": EpisodeTiming((5.0, 5.0), (20.0, 20.0), (9e9, 9e9))})

    assert machine.silence_due_s() == 0.0
    clock.now += 8
    assert machine.silence_due_s() == 17.0


@pytest.mark.parametrize(
    ("command", "status", "error"),
    [
        ({"type": "teleport", "payload": {}}, "rejected", "unsupported command type"),
        ({"type": "open_door", "payload": {"duration_s": "long"}}, "rejected", "duration_s"),
        ({"type": "open_door", "payload": []}, "rejected", "not an object"),
        ({"type": "make_product", "payload": {"product_id": "bubble_tea"}}, "rejected", "bubble_tea"),
        ({"type": "clean", "payload": {"program": "car-wash"}}, "rejected", "car-wash"),
        ({"type": "sync", "payload": {"what": ["weather"]}}, "rejected", "weather"),
    ],
)
def test_a_command_the_machine_cannot_understand_is_rejected_saying_why(command, status, error):
    refusal = make_machine().refusal_of({"command_id": "c1", **command})

    assert refusal is not None and refusal.status == status and error in refusal.error


def test_a_locked_machine_refuses_to_brew_and_a_machine_serving_a_customer_asks_for_a_retry():
    machine, clock = clocked_machine()
    latte = {"command_id": "c1", "type": "make_product", "payload": {"product_id": "latte"}}
    assert machine.refusal_of(latte) is None

    machine.is_locked, machine.lock_reason = True, "night"
    assert machine.refusal_of(latte) == CommandOutcome("rejected", error="the machine is locked (night)")
    machine.is_locked = False
    machine.brew(machine.make_order())
    assert machine.refusal_of(latte).status == "busy"
    assert (
        machine.refusal_of({"command_id": "c2", "type": "set_params", "payload": {"params": {"a": 1}}})
        is None
    )
    clock.now += 3600
    assert machine.refusal_of(latte) is None


def test_only_a_final_result_carries_finished_at():
    assert CommandOutcome("accepted").as_protocol("2026-11-24T08:15:00Z") == {
        "status": "accepted",
        "result": {},
    }
    assert CommandOutcome("failed", {"x": 1}, "boom").as_protocol("2026-11-24T08:15:00Z") == {
        "status": "failed",
        "result": {"x": 1},
        "error": "boom",
        "finished_at": "2026-11-24T08:15:00Z",
    }


async def test_each_command_is_accepted_then_carried_out_and_its_result_reported_over_http():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        uptime_before = machine.uptime_s
        await run_commands(
            server,
            machine,
            session,
            ("open_door", {"duration_s": 30}),
            ("set_params", {"params": {"brew_temp_c": 93}}),
            ("clean", {"program": "rinse"}),
            ("sync", {"what": ["status", "materials"]}),
            ("restart", {"reason": "stuck grinder"}),
        )

    statuses = {cid: server.results_of(cid) for _, cid, _ in server.deliveries}
    assert all(reported == ["accepted", "succeeded"] for reported in statuses.values()), statuses
    assert session.stats.commands_received == session.stats.commands_succeeded == 5
    assert session.stats.commands_via_heartbeat == 5
    finals = [body for _, _, body in server.results if body["status"] == "succeeded"]
    assert all(ISO_WITH_OFFSET.match(body["finished_at"]) for body in finals)
    assert finals[0]["result"] == {"door": "open", "duration_s": 30}
    assert machine.params == {"brew_temp_c": 93}
    assert finals[2]["result"]["program"] == "rinse"
    assert len(server.heartbeats) == 2 and len(server.material_reports) == 1, "sync sent both at once"
    assert all(b["refilled"] is False for b in server.material_reports[0]["bins"])
    assert machine.uptime_s < uptime_before, "the restart reset the uptime"


async def test_a_remote_test_brew_drains_the_bins_shows_brewing_and_sells_nothing():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        beans = machine.bins[0].remaining
        session = FleetSession(
            session.api, SECRET, FleetSettings(command_time_scale=0.05, sales_per_hour=0), session.stats
        )
        server.send(machine.device_id, "make_product", {"product_id": "latte", "options": {"size": "large"}})
        await machine.heartbeat(session)
        await asyncio.sleep(0.05)
        states = [machine.reported_state]
        await settle(machine)

    assert states == ["brewing"]
    assert machine.bins[0].remaining == pytest.approx(beans - 18 * LARGE_CUP_SCALE)
    assert server.orders == {} and session.stats.orders_sold == 0
    (result,) = [body for _, _, body in server.results if body["status"] == "succeeded"]
    assert result["result"]["test_brew"] is True and result["result"]["product_id"] == "latte"


async def test_a_locked_machine_rejects_a_remote_brew_until_it_is_unlocked():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        lock, refused, unlock, brewed = await run_commands(
            server,
            machine,
            session,
            ("lock", {"reason": "night"}),
            ("make_product", {"product_id": "espresso"}),
            ("unlock", {}),
            ("make_product", {"product_id": "espresso"}),
        )

    assert server.results_of(lock["command_id"]) == ["accepted", "succeeded"]
    assert server.results_of(refused["command_id"]) == ["rejected"], "refused before it was accepted"
    assert server.results_of(unlock["command_id"]) == ["accepted", "succeeded"]
    assert server.results_of(brewed["command_id"]) == ["accepted", "succeeded"]
    assert session.stats.commands_rejected == 1 and session.stats.commands_succeeded == 3


async def test_a_brew_without_enough_of_a_material_fails_naming_it():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        machine.bins[0].remaining = 5.0
        (command,) = await run_commands(
            server, machine, session, ("make_product", {"product_id": "espresso"})
        )

    (final,) = [
        body for _, cid, body in server.results if cid == command["command_id"] and body["status"] == "failed"
    ]
    assert "BEAN-ARABICA" in final["error"]
    assert machine.bins[0].remaining == 5.0, "nothing drawn"


async def test_an_upgrade_downloads_checks_and_installs_the_package_and_the_next_heartbeat_reports_it():
    server = FakeServer()
    package = json.dumps({"package_id": "17", "version": "2026.11.4", "recipes": []}).encode()
    server.packages["17.json"] = package
    good = {
        "package_id": "17",
        "version": "2026.11.4",
        "url": "/packages/17.json",
        "sha256": hashlib.sha256(package).hexdigest(),
    }
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        tampered, installed = await run_commands(
            server,
            machine,
            session,
            ("upgrade", {**good, "version": "2026.11.5", "sha256": "0" * 64}),
            ("upgrade", good),
        )
        await machine.heartbeat(session)

    assert server.results_of(tampered["command_id"]) == ["accepted", "failed"]
    assert server.results_of(installed["command_id"]) == ["accepted", "succeeded"]
    assert server.package_requests[0].headers["Authorization"] == f"Device {machine.token}"
    assert server.heartbeats[-1]["package_version"] == "2026.11.4"


async def test_a_package_on_another_host_is_fetched_without_the_machines_token():
    requests = []

    def cdn(request):
        requests.append(request)
        return httpx.Response(200, content=b"{}")

    api, _ = protocol_client(cdn)

    await api.download("https://cdn.example.test/p.json", token="secret-token")
    await api.download("/packages/p.json", token="secret-token")

    assert "Authorization" not in requests[0].headers
    assert requests[1].headers["Authorization"] == "Device secret-token"


async def test_a_redelivered_command_is_not_carried_out_again_and_its_result_is_reported_again():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        (command,) = await run_commands(server, machine, session, ("set_params", {"params": {"n": 1}}))
        machine.params.clear()
        server.pending[machine.device_id] = [dict(command, attempt=2)]  # the server never heard the result
        await machine.heartbeat(session)
        await settle(machine)

    assert server.results_of(command["command_id"]) == ["accepted", "succeeded", "succeeded"]
    assert machine.params == {}, "not carried out twice"
    assert session.stats.commands_received == 1 and session.stats.commands_duplicate_deliveries == 1


async def test_a_result_whose_reply_was_lost_is_sent_again_at_the_next_tick():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        tries = session.api.attempts
        server.lost_results = 2 * tries  # every try of `accepted` and of the final result
        (command,) = await run_commands(server, machine, session, ("unlock", {}))
        assert set(machine.results_waiting) == {command["command_id"]}
        await machine.tick(session)

    assert server.results_of(command["command_id"]) == ["accepted"] * tries + ["succeeded"] * (tries + 1)
    assert not machine.results_waiting
    assert session.stats.command_reports_failed == 2


async def test_a_machine_serving_a_customer_says_busy_and_brews_when_the_command_comes_again():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        machine.serving_until = math.inf
        (command,) = await run_commands(server, machine, session, ("clean", {"program": "rinse"}))
        machine.serving_until = -math.inf
        server.pending[machine.device_id] = [dict(command, attempt=2)]
        await machine.heartbeat(session)
        await settle(machine)

    assert server.results_of(command["command_id"]) == ["busy", "accepted", "succeeded"]
    assert session.stats.commands_busy == 1 and session.stats.commands_succeeded == 1


async def test_a_machine_told_to_fail_commands_reports_them_failed():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client, misbehaviours=["fail_commands"])
        (command,) = await run_commands(server, machine, session, ("clean", {"program": "full"}))

    assert server.results_of(command["command_id"]) == ["accepted", "failed"]
    assert session.stats.commands_failed == 1


async def test_a_machine_told_to_ignore_commands_never_answers_even_when_they_come_again():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client, misbehaviours=["ignore_commands"])
        (command,) = await run_commands(server, machine, session, ("unlock", {}))
        server.pending[machine.device_id] = [dict(command, attempt=2)]
        await machine.heartbeat(session)
        await settle(machine)

    assert server.results == []
    assert session.stats.commands_ignored == 1 and session.stats.commands_duplicate_deliveries == 1


async def test_a_pulling_machine_collects_its_commands_by_pull_before_its_heartbeat_can():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client, channel=CommandChannel.PULL)
        server.send(machine.device_id, "unlock", {})
        await machine.tick(session)
        await settle(machine)

    assert [channel for _, _, channel in server.deliveries] == ["pull"]
    assert session.stats.commands_via_pull == 1 and session.stats.pulls_sent == 1


async def test_a_fleet_takes_commands_by_each_channel_and_counts_them_by_channel():
    server = FakeServer()
    events: list[FleetEvent] = []
    stop = asyncio.Event()

    async def send_when_registered():
        while len(server.devices) < 2:
            await asyncio.sleep(0.01)
        for device_id in server.devices.values():
            server.send(device_id, "set_params", {"params": {"x": 1}})
        while len([r for r in server.results if r[2]["status"] == "succeeded"]) < 2:
            await asyncio.sleep(0.01)
        stop.set()

    sender = asyncio.create_task(send_when_registered())
    stats = await fly(
        server,
        events,
        devices=2,
        duration_s=5,
        stop=stop,
        command_channels=["heartbeat", "pull"],
        pull_interval_s=0.05,
        command_time_scale=0,
    )
    await sender

    assert stats.machines_on_heartbeat == stats.machines_on_pull == 1
    assert stats.commands_received == stats.commands_succeeded == 2
    assert stats.commands_via_heartbeat == 1 and stats.commands_via_pull == 1
    assert sorted(channel for _, _, channel in server.deliveries) == ["heartbeat", "pull"]
    assert stats.pulls_sent >= 1
    assert any(event.kind == EventKind.EXECUTED and "succeeded" in event.detail for event in events)


async def test_a_machine_on_the_websocket_takes_pushed_commands_and_reconnects_after_a_drop():
    from websockets.asyncio.server import serve

    server = FakeServer()
    seen_headers, connections = [], []

    async def machine_socket(socket):
        seen_headers.append((socket.request.path, socket.request.headers.get("Authorization")))
        connections.append(socket)
        if len(connections) == 1:
            command = server.send("1", "set_params", {"params": {"pushed": True}})
            server.pending["1"].remove(command)
            await socket.send(json.dumps({"type": "command", "command": command}))
            await socket.send("not json")
            await asyncio.sleep(0.1)
            await socket.close()  # the server restarts: the machine must come back
            return
        await socket.wait_closed()

    async with serve(machine_socket, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        stop = asyncio.Event()

        async def stop_when_reconnected():
            while len(connections) < 2:
                await asyncio.sleep(0.02)
            stop.set()

        watcher = asyncio.create_task(stop_when_reconnected())
        async with fake_client(server) as client:
            machine, session = await commanded_machine(server, client, channel=CommandChannel.WEBSOCKET)
            session.socket_url = f"ws://127.0.0.1:{port}"
            socket_task = asyncio.create_task(machine.hold_socket(session))
            await asyncio.wait_for(watcher, timeout=10)
            await settle(machine)
            socket_task.cancel()  # as the fleet does when it stops
            await asyncio.gather(socket_task, return_exceptions=True)

    assert seen_headers[0] == ("/ws/devices/1/", f"Device {machine.token}")
    assert machine.params == {"pushed": True}
    assert session.stats.commands_via_websocket == 1
    assert [body["status"] for _, _, body in server.results] == ["accepted", "succeeded"], "results over HTTP"
    assert session.stats.websocket_connections == 2 and session.stats.websocket_drops >= 1


async def test_socket_backoff_grows_while_the_server_refuses_and_is_capped():
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    def refuse(url, **options):
        attempts.append(loop.time())
        raise ConnectionRefusedError("down")

    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client, channel=CommandChannel.WEBSOCKET)
        session.connect_socket = refuse
        task = asyncio.create_task(machine.hold_socket(session))
        await asyncio.sleep(2.0)
        session.stopping.set()
        await asyncio.wait_for(task, timeout=5)

    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert 2 <= len(attempts) <= 4, "about 0.5-1 s, then 1-2 s: no tight loop"
    assert all(gap >= 0.45 for gap in gaps)


async def test_a_silent_machine_stops_heartbeating_for_its_episode_and_then_comes_back():
    server = FakeServer()
    events: list[FleetEvent] = []

    stats = await fly(
        server,
        events,
        devices=1,
        duration_s=1.2,
        command_channels="heartbeat",
        misbehave={"go_silent": 1.0},
        misbehaviour_timings={"go_silent": EpisodeTiming((0.2, 0.2), (0.5, 0.5), (60.0, 60.0))},
    )

    assert stats.machines_misbehaving == 1 and stats.silent_periods == 1 and stats.offline_periods == 1
    kinds = [event.kind for event in events]
    assert EventKind.OFFLINE in kinds and EventKind.BACK in kinds
    offline = next(event for event in events if event.kind == EventKind.OFFLINE)
    assert "go_silent" in offline.detail
    assert stats.heartbeats_sent < 1.2 / 0.02 - 0.5 / 0.02 + 5, "no heartbeat while silent"


@pytest.mark.parametrize(
    "arguments",
    [
        {"command_channels": "smoke-signals"},
        {"pull_interval_s": 0},
        {"command_time_scale": -1},
        {"misbehave": {"explode": 0.5}},
        {"misbehave": {"overheat": 1.5}},
        {"misbehaving_serials": {"SIM-000001": ["sulk"]}},
        {"misbehaving_serials": {"SIM-000002": ["overheat"]}},
        {"misbehaviour_timings": {"fail_commands": EpisodeTiming((1, 2), (1, 2), (1, 2))}},
        {"misbehaviour_timings": {"overheat": EpisodeTiming((2, 1), (1, 2), (1, 2))}},
    ],
)
async def test_a_fleet_with_impossible_command_or_misbehaviour_options_is_refused_before_any_call(arguments):
    calls = []

    with pytest.raises(FleetConfigurationError):
        await run_fleet(
            "http://server.test", SECRET, 1, transport=httpx.MockTransport(calls.append), **arguments
        )

    assert calls == []


def test_the_command_line_misbehaves_like_the_demo_unless_told_otherwise():
    import argparse

    from devices.management.commands.simulate_fleet import _misbehaviour, misbehaviour_option

    assert misbehaviour_option(None) == DEMO_MISBEHAVIOUR, "without --misbehave: every alarm type shows"
    assert misbehaviour_option([_misbehaviour("none")]) == {}
    asked = [_misbehaviour("overheat"), _misbehaviour("run_dry:0.5"), _misbehaviour("overheat:1")]
    assert misbehaviour_option(asked) == {Misbehaviour.OVERHEAT: 1.0, Misbehaviour.RUN_DRY: 0.5}
    assert _misbehaviour("go_silent") == (Misbehaviour.GO_SILENT, 0.1)
    for wrong in ("explode", "overheat:2", "overheat:lots"):
        with pytest.raises(argparse.ArgumentTypeError):
            _misbehaviour(wrong)
