"""Fleets against the in-process fake of the protocol: registration, re-registration, offline spells,
crashes, stopping, the checks on run_fleet's arguments, channels and misbehaviour across a fleet."""

import asyncio
import logging
import random

import httpx
import pytest

from simulator import (
    DEMO_MISBEHAVIOUR,
    CommandChannel,
    EpisodeTiming,
    EventKind,
    FleetConfigurationError,
    FleetEvent,
    FleetSession,
    FleetSettings,
    Misbehaviour,
    ProtocolClient,
    RefillRounds,
    build_fleet,
    choose_misbehaving,
    command_channels_of,
    fleet_serial,
    run_fleet,
)
from tests.simulator.fakes import SECRET, FakeServer, fake_client, fly, make_machine


def test_serials_are_deterministic_so_a_restart_brings_back_the_same_machines():
    assert fleet_serial("SIM", 1) == "SIM-000001"

    first, again = build_fleet(4, "LAB", seed=3), build_fleet(4, "LAB", seed=3)

    assert [m.serial for m in first] == ["LAB-000001", "LAB-000002", "LAB-000003", "LAB-000004"]

    def identity(machine):
        return machine.serial, machine.model, machine.alias, machine.ip

    assert [identity(machine) for machine in first] == [identity(machine) for machine in again]
    assert [level.remaining for level in first[0].bins] == [level.remaining for level in again[0].bins]
    assert {m.model for m in first} == {"CM-2000", "CM-3000", "EspressoPro"}


# --- Machines' lives against a fake server -----------------------------------------------------------


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
    assert 1 <= stats.heartbeats_failed <= stats.reregistrations, "a refused refill report re-registers too"
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

    with caplog.at_level(logging.ERROR, logger="simulator"):
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


async def test_a_rounds_refills_are_reported_once_each_flagged_as_refilled():
    server = FakeServer()
    machine = make_machine()
    machine.schedule_refills(RefillRounds(every_ticks=1, forget_report_probability=0.0))
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

    assert sorted(kind for kinds in demo.values() for kind in kinds) == sorted(set(Misbehaviour) - {"leak"})
    assert all(len(kinds) == 1 for kinds in demo.values()), "one kind per machine while the fleet allows"
    assert len(half) == 10 and all(kinds == {Misbehaviour.OVERHEAT} for kinds in half.values())
    assert list(tiny.values()) == [{Misbehaviour.GO_SILENT}], "above 0 means at least one machine"
    assert demo == choose_misbehaving(serials, DEMO_MISBEHAVIOUR, random.Random(3)), "reproducible"


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
        {"refill_round_intervals": 0},
        {"refill_round_intervals": float("inf")},
        {"forget_refill_probability": 1.5},
        {"install_failure_probability": -0.1},
    ],
)
async def test_a_fleet_with_impossible_command_misbehaviour_or_refill_options_is_refused_before_any_call(
    arguments,
):
    calls = []

    with pytest.raises(FleetConfigurationError):
        await run_fleet(
            "http://server.test", SECRET, 1, transport=httpx.MockTransport(calls.append), **arguments
        )

    assert calls == []
