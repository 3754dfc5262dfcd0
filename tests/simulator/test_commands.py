"""Remote commands on a machine: refusals, each command carried out for real, redeliveries, lost
results, busy machines, and machines told to fail or ignore commands."""

import asyncio
import hashlib
import json
import math

import httpx
import pytest

from simulator import LARGE_CUP_SCALE, CommandOutcome, FleetSession, FleetSettings
from tests.simulator.fakes import (
    ISO_WITH_OFFSET,
    SECRET,
    FakeServer,
    clocked_machine,
    commanded_machine,
    fake_client,
    make_machine,
    protocol_client,
    run_commands,
    settle,
)

# --- Commands --------------------------------------------------------------------------------------


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
