"""The fleet simulator's own logic, with no server: its physics, the bodies it builds, its retries, and its
machines' lives against an in-process fake of the protocol (httpx.MockTransport)."""

import asyncio
import json
import logging
import random
import re
import statistics
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from devices.simulator import (
    DEFAULT_BINS,
    MACHINE_STATES,
    BinLevel,
    BoilerTemperature,
    EventKind,
    FleetConfigurationError,
    FleetEvent,
    FleetSession,
    FleetSettings,
    ProtocolClient,
    Rejected,
    SimulatedMachine,
    Unauthorized,
    Unreachable,
    build_fleet,
    fleet_serial,
    format_timestamp,
    parse_retry_after,
    run_fleet,
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

    assert body == {"serial": "SIM-000001", "model": "CM-2000", "firmware": "1.4.2",
                    "provisioning_secret": SECRET, "alias": "Lobby 1"}


def test_heartbeat_body_has_exactly_the_protocol_fields_and_types():
    machine = make_machine()
    machine.step()

    body = machine.heartbeat_body()

    assert set(body) == {"state", "temperature_c", "ip", "wifi", "firmware", "uptime_s", "package_version",
                         "sent_at", "bins"}
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
    assert all(0 <= delay <= api.backoff_base_s * 2 ** attempt for attempt, delay in enumerate(sleeps))


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
    replies = iter([
        error(401, "UNAUTHORIZED", "token revoked"),
        error(400, "VALIDATION_ERROR", "bad", {"fields": {"bins.0.material": ["unknown"]}}),
        httpx.Response(500, text="<html>oops</html>"),
    ])
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
    """Just enough of protocol v1 to watch the simulator behave: registration, tokens, heartbeats."""

    def __init__(self, secret=SECRET, revoke_after_heartbeats=None):
        self.secret = secret
        self.revoke_after_heartbeats = revoke_after_heartbeats
        self.interval_s = 30
        self.devices: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.registrations: list[tuple[str, int]] = []
        self.heartbeats: list[dict] = []
        self.material_reports: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/api/v1/devices/register":
            return self.register(body)
        device_id = request.url.path.split("/")[4]
        if request.headers.get("Authorization") != f"Device {self.tokens.get(device_id)}":
            return error(401, "UNAUTHORIZED", "bad token")
        if request.url.path.endswith("/status"):
            self.heartbeats.append(body)
            if self.revoke_after_heartbeats and len(self.heartbeats) % self.revoke_after_heartbeats == 0:
                self.tokens[device_id] = "revoked"
            return envelope({"server_time": "2026-11-24T08:15:00Z", "heartbeat_interval_s": 30,
                             "commands": [], "desired_package": None})
        self.material_reports.append(body)
        return envelope({})

    def register(self, body):
        if body.get("provisioning_secret") != self.secret:
            return error(403, "FORBIDDEN", "wrong secret")
        status = 200 if body["serial"] in self.devices else 201
        device_id = self.devices.setdefault(body["serial"], str(len(self.devices) + 1))
        self.tokens[device_id] = f"token-{len(self.registrations)}"
        self.registrations.append((body["serial"], status))
        return envelope({"device_id": device_id, "token": self.tokens[device_id],
                         "heartbeat_interval_s": self.interval_s, "server_time": "2026-11-24T08:15:00Z"},
                        status=status)


def fake_client(server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://server.test", transport=httpx.MockTransport(server))


async def fly(server, events=None, devices=3, duration_s=0.4, secret=SECRET, **options):
    return await run_fleet(
        "http://server.test", secret, devices, duration_s=duration_s, heartbeat_interval_s=0.02,
        offline_probability=options.pop("offline_probability", 0.0), seed=1,
        on_event=events.append if events is not None else None,
        transport=httpx.MockTransport(server), **options,
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
        stats = await run_fleet("http://server.test", SECRET, 2, duration_s=0.3, heartbeat_interval_s=0.02,
                                offline_probability=0.0, on_event=clumsy_listener,
                                transport=httpx.MockTransport(server))

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


@pytest.mark.parametrize("arguments", [
    {"base_url": "localhost:8000"},
    {"devices": -1},
    {"duration_s": 0},
    {"heartbeat_interval_s": -1.0},
    {"offline_probability": 1.5},
    {"serial_prefix": ""},
])
async def test_a_fleet_that_cannot_run_is_refused_before_any_call(arguments):
    calls = []
    options = {"base_url": "http://server.test", "provisioning_secret": SECRET, "devices": 1, **arguments}

    with pytest.raises(FleetConfigurationError):
        await run_fleet(**options, transport=httpx.MockTransport(calls.append))

    assert calls == []
