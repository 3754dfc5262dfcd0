"""Remote commands end to end: staff send them over HTTP, simulated machines take them by heartbeat, pull
and WebSocket and carry them out, and the results come back; with a real Celery worker on Redis, the
sweeper retries and then times out a command nobody answers, and the offline sweep catches a machine
that went silent, each with its alarm."""

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import transaction
from django.db.models import F
from rest_framework.authtoken.models import Token

from accounts.models import Role
from devices.models import Device
from operations.models import Alarm, AlarmType, CommandStatus, RemoteCommand
from operations.services.commands import send_command
from operations.tasks import dispatch_command_batch
from simulator import EpisodeTiming, EventKind, FleetEvent, run_fleet
from tests.e2e.conftest import celery_worker, in_thread
from tests.factories import UserFactory, merchant_with_catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# With command_channels="mixed", machine N takes the Nth channel in turn.
CHANNEL_OF = {"CMD-000001": "heartbeat", "CMD-000002": "pull", "CMD-000003": "websocket"}


class Watch:
    """The fleet's events, each with the moment (time.monotonic) it happened."""

    def __init__(self):
        self.events: list[tuple[float, FleetEvent]] = []

    def __call__(self, event: FleetEvent) -> None:
        self.events.append((time.monotonic(), event))

    def first(self, kind: EventKind, serial: str | None = None, containing: str = "") -> float | None:
        return next(
            (
                at
                for at, event in self.events
                if event.kind == kind and serial in (None, event.serial) and containing in event.detail
            ),
            None,
        )

    async def until(self, predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while not (found := predicate()):
            if time.monotonic() > deadline:
                seen = "\n".join(f"{e.serial} {e.kind} {e.detail}" for _, e in self.events[-30:])
                pytest.fail(f"{what} did not happen within {timeout_s} s; last events:\n{seen}")
            await asyncio.sleep(0.05)
        return found


async def eventually(fn: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    """Poll blocking ORM code `fn` (in a thread) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await in_thread(fn)
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s} s (last: {found!r})")
        await asyncio.sleep(interval_s)


def _staff_token(merchant) -> str:
    ops = UserFactory(role=Role.OPS, merchants=[merchant])
    return Token.objects.create(user=ops).key


def _device_ids(merchant) -> dict[str, int]:
    return dict(Device.objects.filter(merchant=merchant).values_list("serial", "pk"))


def _commands(ids) -> dict[str, RemoteCommand]:
    return {str(c.pk): c for c in RemoteCommand.objects.filter(pk__in=ids).select_related("device")}


def _all_succeeded(ids) -> dict[str, RemoteCommand] | None:
    commands = _commands(ids)
    return commands if all(c.status == CommandStatus.SUCCEEDED for c in commands.values()) else None


async def test_staff_commands_reach_each_machine_by_its_own_channel_and_come_back_succeeded(live_asgi_server):
    merchant = await in_thread(merchant_with_catalogue, name="Commands E2E")
    key = await in_thread(_staff_token, merchant)
    watch, stop = Watch(), asyncio.Event()
    fleet = asyncio.create_task(
        run_fleet(
            live_asgi_server.url,
            merchant.provisioning_secret,
            devices=3,
            duration_s=120,
            stop=stop,
            heartbeat_interval_s=1,
            pull_interval_s=1,
            command_channels="mixed",
            offline_probability=0,
            sales_per_hour=0,
            serial_prefix="CMD",
            seed=5,
            on_event=watch,
        )
    )
    try:
        await watch.until(
            lambda: (
                len({e.serial for _, e in watch.events if e.kind == EventKind.REGISTERED}) == 3
                and watch.first(EventKind.SOCKET, "CMD-000003", "open")
            ),
            timeout_s=20,
            what="three machines registered and the WebSocket one connected",
        )
        ids = await in_thread(_device_ids, merchant)
        orders = {
            "CMD-000001": {"type": "sync", "payload": {"what": ["status", "materials"]}},
            "CMD-000002": {"type": "make_product", "payload": {"product_id": "latte", "options": {}}},
            "CMD-000003": {"type": "set_params", "payload": {"params": {"brew_temp_c": 93}}},
        }
        async with httpx.AsyncClient(
            base_url=live_asgi_server.url, headers={"Authorization": f"Token {key}"}, timeout=10
        ) as staff:
            sent: dict[str, tuple[str, float]] = {}
            for serial, order in orders.items():
                called_at = time.monotonic()
                reply = await staff.post(f"/api/v1/devices/{ids[serial]}/commands", json=order)
                assert reply.status_code == 201, reply.text
                sent[serial] = (reply.json()["data"]["command_id"], called_at)

            pushed_id, pushed_called_at = sent["CMD-000003"]
            arrived_at = await watch.until(
                lambda: watch.first(EventKind.COMMANDS, "CMD-000003", pushed_id),
                timeout_s=5,
                what="the pushed command reaching the WebSocket machine",
            )
            assert arrived_at - pushed_called_at < 2.0, "a WebSocket machine hears of its command at once"

            done = await eventually(
                lambda: _all_succeeded([command_id for command_id, _ in sent.values()]),
                timeout_s=30,
                what="the three commands succeeding",
            )
            for serial, (command_id, _) in sent.items():
                command = done[command_id]
                assert command.device.serial == serial
                assert command.delivery_channel == CHANNEL_OF[serial], serial
                assert command.attempt == 1 and command.reported_status == "succeeded"
                assert command.sent_at and command.delivered_at and command.finished_at
            pushed = done[pushed_id]
            assert pushed.sent_at - pushed.created_at < timedelta(seconds=2)
            assert done[sent["CMD-000002"][0]].result["test_brew"] is True
            assert done[sent["CMD-000003"][0]].result == {"params": {"brew_temp_c": 93}}

            reply = await staff.post(
                "/api/v1/commands/batches",
                json={"type": "clean", "payload": {"program": "rinse"}, "device_ids": sorted(ids.values())},
            )
            assert reply.status_code == 202, reply.text
            batch = reply.json()["data"]
            assert batch["machines"] == 3 and batch["job"]["status"] == "pending"
            # No worker here: the batch's job runs in this process (a real worker runs one below).
            assert await in_thread(dispatch_command_batch, batch["job"]["id"]) == 3

            async def batch_counts():
                reply = await staff.get(f"/api/v1/commands/batches/{batch['id']}")
                assert reply.status_code == 200, reply.text
                return reply.json()["data"]["counts"]

            deadline = time.monotonic() + 30
            while (counts := await batch_counts())["succeeded"] < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
        batch_channels = await in_thread(
            lambda: dict(
                RemoteCommand.objects.filter(batch_id=batch["id"]).values_list(
                    "device__serial", "delivery_channel"
                )
            )
        )
    finally:
        stop.set()
        stats = await fleet

    assert counts["succeeded"] == 3 and counts["total"] == 3, counts
    assert stats.machines_on_heartbeat == stats.machines_on_pull == stats.machines_on_websocket == 1
    assert stats.commands_received == stats.commands_succeeded == 6
    if settings.REDIS_URL:
        assert batch_channels == CHANNEL_OF
        assert stats.commands_via_heartbeat == stats.commands_via_pull == stats.commands_via_websocket == 2
    else:
        # The job's nudge cannot leave its process without Redis: the socket machine's next heartbeat
        # (every second here) carries its batch command before its socket looks again (every 10 s).
        assert batch_channels == {**CHANNEL_OF, "CMD-000003": batch_channels["CMD-000003"]}
        assert batch_channels["CMD-000003"] in ("websocket", "heartbeat")
    assert stats.commands_failed == stats.commands_rejected == stats.commands_duplicate_deliveries == 0
    assert stats.command_results_unsent == 0 and stats.machines_crashed == 0


# --- A real Celery worker on Redis --------------------------------------------------------------------


@pytest.fixture
def celery_worker_queue(live_asgi_server, django_db_blocker, tmp_path):
    """A real `celery worker` (solo pool) on the test database and Redis, like the daphne server; it
    listens on a queue of its own, so no other worker on the same Redis takes these tasks. Yields the
    queue's name once the worker has answered a task."""
    queue = f"e2e-commands-{os.getpid()}-{secrets.token_hex(3)}"
    with celery_worker(queue, django_db_blocker, tmp_path):
        yield queue


def _run_task(task, queue: str, timeout_s: float = 20, args=()):
    """Send `task` to the worker through Redis and wait for its result (blocking)."""
    return task.apply_async(args, queue=queue).get(timeout=timeout_s)


def _shorten_leases(batch_id: int) -> None:
    """Lease and back off for seconds, not a minute: the test watches two attempts time out. A command
    the machine already leased gets the short lease too."""
    commands = RemoteCommand.objects.filter(batch_id=batch_id)
    commands.update(lease_s=2, retry_backoff_s=1)
    commands.filter(status=CommandStatus.SENT).update(lease_expires_at=F("sent_at") + timedelta(seconds=2))


def _quick_command(device, lease_s: int = 2) -> RemoteCommand:
    with transaction.atomic():
        command = send_command(device, "restart", {"reason": "e2e"}, max_attempts=2, retry_backoff_s=1)
        RemoteCommand.objects.filter(pk=command.pk).update(lease_s=lease_s)
    return command


async def test_a_real_celery_worker_times_out_an_unanswered_command_and_marks_a_silent_machine_offline(
    live_asgi_server, celery_worker_queue
):
    from operations.tasks import mark_silent_devices_offline, sweep_commands

    queue = celery_worker_queue
    merchant = await in_thread(merchant_with_catalogue, name="Worker E2E")
    key = await in_thread(_staff_token, merchant)
    watch, stop = Watch(), asyncio.Event()
    fleet = asyncio.create_task(
        run_fleet(
            live_asgi_server.url,
            merchant.provisioning_secret,
            devices=3,
            duration_s=150,
            stop=stop,
            heartbeat_interval_s=1,
            command_channels="heartbeat",
            offline_probability=0,
            sales_per_hour=0,
            serial_prefix="CEL",
            seed=9,
            on_event=watch,
            misbehaving_serials={"CEL-000002": ["ignore_commands"], "CEL-000003": ["go_silent"]},
            misbehaviour_timings={"go_silent": EpisodeTiming((4.0, 4.0), (300.0, 300.0), (600.0, 600.0))},
        )
    )
    try:
        await watch.until(
            lambda: len({e.serial for _, e in watch.events if e.kind == EventKind.REGISTERED}) == 3,
            timeout_s=20,
            what="three machines registered",
        )
        ids = await in_thread(_device_ids, merchant)
        good, ignoring, silent = ids["CEL-000001"], ids["CEL-000002"], ids["CEL-000003"]
        await in_thread(lambda: Device.objects.filter(pk=silent).update(offline_timeout_s=2))

        async with httpx.AsyncClient(
            base_url=live_asgi_server.url, headers={"Authorization": f"Token {key}"}, timeout=10
        ) as staff:
            reply = await staff.post(
                "/api/v1/commands/batches",
                json={
                    "type": "set_params",
                    "payload": {"params": {"night_mode": True}},
                    "device_ids": [good, ignoring],
                    "max_attempts": 2,
                },
            )
            assert reply.status_code == 202, reply.text
            batch_id, job_id = reply.json()["data"]["id"], reply.json()["data"]["job"]["id"]
            # The server queued the job on its default queue; this worker takes it from its own.
            assert await in_thread(_run_task, dispatch_command_batch, queue, args=(job_id,)) == 2
            job = (await staff.get(f"/api/v1/jobs/{job_id}")).json()["data"]
            assert (job["status"], job["progress"], job["result_rows"]) == ("succeeded", 100, 2)
            await in_thread(_shorten_leases, batch_id)
            lone = await in_thread(_quick_command, await in_thread(Device.objects.get, pk=ignoring))

            swept = {"expired": 0, "retried": 0, "timed_out": 0}
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                for name, count in (await in_thread(_run_task, sweep_commands, queue)).items():
                    swept[name] += count
                statuses = await in_thread(
                    lambda: set(
                        RemoteCommand.objects.filter(device_id=ignoring).values_list("status", flat=True)
                    )
                )
                if statuses == {CommandStatus.TIMED_OUT}:
                    break
                await asyncio.sleep(1)
            counts = (await staff.get(f"/api/v1/commands/batches/{batch_id}")).json()["data"]["counts"]

        ignored = await in_thread(lambda: RemoteCommand.objects.get(pk=lone.pk))
        command_alarms = await in_thread(
            lambda: list(
                Alarm.objects.filter(device_id=ignoring, type=AlarmType.COMMAND_FAILED, is_active=True)
            )
        )

        await watch.until(
            lambda: watch.first(EventKind.OFFLINE, "CEL-000003", "go_silent"),
            timeout_s=15,
            what="the silent machine going silent",
        )
        await asyncio.sleep(3.5)  # past its 2 s offline timeout
        went_offline = await in_thread(_run_task, mark_silent_devices_offline, queue)
        devices = await in_thread(
            lambda: dict(Device.objects.filter(merchant=merchant).values_list("pk", "is_online"))
        )
        offline_alarms = await in_thread(
            lambda: list(
                Alarm.objects.filter(type=AlarmType.OFFLINE, is_active=True).values_list(
                    "device_id", flat=True
                )
            )
        )
    finally:
        stop.set()
        stats = await fleet

    assert counts["succeeded"] == 1 and counts["timed_out"] == 1 and counts["total"] == 2, counts
    assert ignored.status == CommandStatus.TIMED_OUT and ignored.attempt == 2
    assert swept["retried"] >= 2 and swept["timed_out"] >= 2, swept
    assert len(command_alarms) == 1, "one active alarm for the machine, bumped by the second command"
    assert command_alarms[0].count >= 2
    assert stats.commands_ignored == 2 and stats.commands_duplicate_deliveries >= 2
    assert stats.commands_succeeded == 1

    assert went_offline == 1
    assert devices == {good: True, ignoring: True, silent: False}
    assert offline_alarms == [silent]


# --- Every alarm type, from machines misbehaving on purpose -------------------------------------------

DEMO_MISBEHAVIOUR = {
    "DEMO-000001": ["fail_commands"],
    "DEMO-000002": ["ignore_commands"],
    "DEMO-000003": ["go_silent"],
    "DEMO-000004": ["overheat"],
    "DEMO-000005": ["run_dry"],
}
FAST_EPISODES = {
    "go_silent": EpisodeTiming((2.0, 2.0), (120.0, 120.0), (600.0, 600.0)),
    "overheat": EpisodeTiming((1.0, 1.0), (8.0, 8.0), (600.0, 600.0)),
    "run_dry": EpisodeTiming((1.0, 1.0), (6.0, 6.0), (600.0, 600.0)),
}


def _send_failing_commands(ids) -> None:
    """What staff do in a demo: an upgrade and a cleaning to the failing machine, a restart to the one
    that never answers (with a one-second lease and one attempt, so it times out at once)."""
    failing, ignoring = Device.objects.get(pk=ids["DEMO-000001"]), Device.objects.get(pk=ids["DEMO-000002"])
    upgrade = {"package_id": "17", "version": "2026.11.4", "url": "/packages/17.json", "sha256": "a" * 64}
    send_command(failing, "upgrade", upgrade)
    send_command(failing, "clean", {"program": "rinse"})
    with transaction.atomic():
        command = send_command(ignoring, "restart", {"reason": "demo"}, max_attempts=1)
        RemoteCommand.objects.filter(pk=command.pk).update(lease_s=1)
    Device.objects.filter(pk=ids["DEMO-000003"]).update(offline_timeout_s=2)


RECOVERING = {("DEMO-000004", AlarmType.TEMPERATURE_OUT_OF_RANGE), ("DEMO-000005", AlarmType.MATERIAL_EMPTY)}


def _when(alarms: set, condition: Callable[[set], bool]) -> set | None:
    return alarms if condition(alarms) else None


def _sweep_and_list_alarms(merchant) -> set[tuple[str, str]]:
    """The periodic jobs, run in this process (what beat and the worker do every few seconds)."""
    from operations import tasks

    tasks.sweep_commands()
    tasks.mark_silent_devices_offline()
    return set(Alarm.objects.filter(merchant=merchant).values_list("device__serial", "type"))


def _active_alarms(merchant) -> set[tuple[str, str]]:
    return set(Alarm.objects.filter(merchant=merchant, is_active=True).values_list("device__serial", "type"))


async def test_machines_misbehaving_on_purpose_raise_every_alarm_type_and_clear_them_when_they_recover(
    live_asgi_server,
):
    merchant = await in_thread(merchant_with_catalogue, name="Alarm Demo")
    watch, stop = Watch(), asyncio.Event()
    fleet = asyncio.create_task(
        run_fleet(
            live_asgi_server.url,
            merchant.provisioning_secret,
            devices=5,
            duration_s=120,
            stop=stop,
            heartbeat_interval_s=1,
            command_channels="heartbeat",
            offline_probability=0,
            sales_per_hour=0,
            serial_prefix="DEMO",
            seed=3,
            on_event=watch,
            misbehaving_serials=DEMO_MISBEHAVIOUR,
            misbehaviour_timings=FAST_EPISODES,
        )
    )
    expected = {
        ("DEMO-000001", AlarmType.UPGRADE_FAILED),
        ("DEMO-000001", AlarmType.COMMAND_FAILED),
        ("DEMO-000002", AlarmType.COMMAND_FAILED),
        ("DEMO-000003", AlarmType.OFFLINE),
        ("DEMO-000004", AlarmType.TEMPERATURE_OUT_OF_RANGE),
        ("DEMO-000005", AlarmType.MATERIAL_LOW),
        ("DEMO-000005", AlarmType.MATERIAL_EMPTY),
    }
    try:
        await watch.until(
            lambda: len({e.serial for _, e in watch.events if e.kind == EventKind.REGISTERED}) == 5,
            timeout_s=20,
            what="five machines registered",
        )
        await in_thread(_send_failing_commands, await in_thread(_device_ids, merchant))
        raised = await eventually(
            lambda: _when(_sweep_and_list_alarms(merchant), lambda alarms: alarms >= expected),
            timeout_s=45,
            what="every alarm type",
            interval_s=1,
        )
        recovered = await eventually(
            lambda: _when(_active_alarms(merchant), lambda active: not active & RECOVERING),
            timeout_s=45,
            what="the overheated boiler and the dry bin recovering",
        )
    finally:
        stop.set()
        stats = await fleet

    assert {alarm_type for _, alarm_type in raised} == set(AlarmType), "every alarm type appeared"
    assert ("DEMO-000003", AlarmType.OFFLINE) in recovered, "the silent machine is still silent"
    assert stats.overheat_periods == 1 and stats.dry_runs == 1 and stats.silent_periods == 1
    assert stats.commands_failed == 2 and stats.commands_ignored == 1
