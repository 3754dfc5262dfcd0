"""A command reaches its machine once, by whichever channel the machine uses, and its result comes back."""

from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from coffeeshop.asgi import application
from operations.models import CommandStatus, RemoteCommand
from operations.services import commands
from tests.operations.batches import worker_at_commit

pytestmark = pytest.mark.django_db


def heartbeat(machine, state="idle"):
    reply = machine.post(f"/api/v1/devices/{machine.device.pk}/status", {"state": state}, format="json")
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]["commands"]


def test_a_command_rides_on_the_next_heartbeat_once(machine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        command = commands.send_command(machine.device, "open_door", {"duration_s": 5})
    delivered = heartbeat(machine)
    assert [c["command_id"] for c in delivered] == [str(command.pk)]
    assert delivered[0]["type"] == "open_door" and delivered[0]["payload"] == {"duration_s": 5}
    assert delivered[0]["attempt"] == 1
    assert heartbeat(machine) == []  # leased: not handed out twice
    assert (
        machine.get(f"/api/v1/devices/{machine.device.pk}/commands/pending").json()["data"]["commands"] == []
    )
    command.refresh_from_db()
    assert command.status == CommandStatus.SENT and command.delivery_channel == "heartbeat"


def test_a_pulled_command_reports_its_result_and_a_second_report_is_harmless(
    machine, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        command = commands.send_command(machine.device, "clean", {"program": "rinse"})
    pulled = machine.get(f"/api/v1/devices/{machine.device.pk}/commands/pending").json()["data"]["commands"]
    assert [c["command_id"] for c in pulled] == [str(command.pk)]
    url = f"/api/v1/devices/{machine.device.pk}/commands/{command.pk}/result"
    assert machine.post(url, {"status": "accepted"}, format="json").json()["data"]["status"] == "delivered"
    assert machine.post(url, {"status": "succeeded", "result": {"ok": 1}}, format="json").status_code == 200
    assert machine.post(url, {"status": "succeeded", "result": {"ok": 1}}, format="json").status_code == 200
    assert machine.post(url, {"status": "failed", "error": "x"}, format="json").status_code == 409
    command.refresh_from_db()
    assert command.status == CommandStatus.SUCCEEDED and command.result == {"ok": 1}
    assert command.sent_at and command.delivered_at and command.finished_at


def test_a_bad_payload_is_refused_naming_the_field(machine):
    from coffeeshop.exceptions import Invalid

    with pytest.raises(Invalid) as refused:
        commands.send_command(machine.device, "open_door", {"duration_s": "long"})
    assert list(refused.value.details["fields"]) == ["payload.duration_s"]
    assert not RemoteCommand.objects.exists()


def test_an_unanswered_command_is_retried_then_times_out(machine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        command = commands.send_command(
            machine.device, "restart", {"reason": "t"}, max_attempts=2, retry_backoff_s=10
        )
    start = timezone.now()
    assert (
        len(commands.lease_deliverable_commands(machine.device.pk, state="idle", channel="pull", now=start))
        == 1
    )
    swept = commands.sweep_commands(now=start + timedelta(seconds=61))
    assert [c.pk for c in swept["retried"]] == [command.pk]
    again = commands.lease_deliverable_commands(
        machine.device.pk, state="idle", channel="pull", now=start + timedelta(seconds=72)
    )
    assert again[0]["attempt"] == 2
    swept = commands.sweep_commands(now=start + timedelta(seconds=200))
    assert [c.pk for c in swept["timed_out"]] == [command.pk]
    command.refresh_from_db()
    assert command.status == CommandStatus.TIMED_OUT


@pytest.mark.django_db(transaction=True)
async def test_a_machine_holding_its_websocket_gets_a_new_command_pushed(machine):
    from asgiref.sync import sync_to_async

    headers = [(b"authorization", f"Device {machine.token}".encode())]
    socket = WebsocketCommunicator(application, f"/ws/devices/{machine.device.pk}/", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    command = await sync_to_async(commands.send_command)(machine.device, "lock", {"reason": "night"})
    message = await socket.receive_json_from(timeout=5)
    assert message == {"type": "command", "command": {**message["command"], "command_id": str(command.pk)}}
    assert message["command"]["type"] == "lock"
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_for_another_machines_path_is_refused(machine):
    headers = [(b"authorization", f"Device {machine.token}".encode())]
    socket = WebsocketCommunicator(application, "/ws/devices/999999/", headers=headers)
    connected, code = await socket.connect()
    assert not connected and code == 4403


def test_staff_send_a_command_and_a_batch_and_see_its_counts(machine, staff_client, merchant, other_merchant):
    from accounts.models import Role
    from tests.factories import DeviceFactory

    ops = staff_client(Role.OPS, [merchant])
    sent = ops.post(
        f"/api/v1/devices/{machine.device.pk}/commands",
        {"type": "open_door", "payload": {"duration_s": 3}},
        format="json",
    )
    assert sent.status_code == 201, sent.content
    bad = ops.post(
        f"/api/v1/devices/{machine.device.pk}/commands", {"type": "open_door", "payload": {}}, format="json"
    )
    assert bad.status_code == 400 and list(bad.json()["error"]["details"]["fields"]) == ["payload.duration_s"]
    second = DeviceFactory(merchant=merchant, model="CM-3000")
    foreign = DeviceFactory(merchant=other_merchant, model="CM-3000")
    with worker_at_commit():
        batch = ops.post(
            "/api/v1/commands/batches",
            {"type": "clean", "payload": {"program": "rinse"}, "filter": {"model": "CM-3000"}},
            format="json",
        )
    assert batch.status_code == 202, batch.content
    shown = ops.get(f"/api/v1/commands/batches/{batch.json()['data']['id']}").json()["data"]
    assert shown["counts"]["pending"] == 1 and shown["counts"]["total"] == 1
    assert RemoteCommand.objects.filter(device=foreign).count() == 0
    assert RemoteCommand.objects.filter(device=second).count() == 1
    refused = ops.post(
        "/api/v1/commands/batches",
        {"type": "clean", "payload": {"program": "rinse"}, "device_ids": [foreign.pk]},
        format="json",
    )
    assert refused.status_code == 400
    viewer = staff_client(Role.VIEWER, [merchant])
    assert (
        viewer.post(
            f"/api/v1/devices/{machine.device.pk}/commands", {"type": "unlock", "payload": {}}, format="json"
        ).status_code
        == 403
    )
    canceled = ops.post(f"/api/v1/commands/batches/{batch.json()['data']['id']}/cancel_pending")
    assert canceled.json()["data"]["counts"]["canceled"] == 1


@pytest.mark.django_db(transaction=True)
async def test_a_retry_that_comes_due_reaches_a_machine_holding_its_socket(machine, monkeypatch):
    from asgiref.sync import sync_to_async

    from coffeeshop.protocol import consumers

    monkeypatch.setattr(consumers, "RECHECK_S", 0.2)
    command = await sync_to_async(commands.send_command)(machine.device, "lock", {"reason": "night"})
    await sync_to_async(RemoteCommand.objects.filter(pk=command.pk).update)(
        next_attempt_at=timezone.now() + timedelta(seconds=1)
    )
    headers = [(b"authorization", f"Device {machine.token}".encode())]
    socket = WebsocketCommunicator(application, f"/ws/devices/{machine.device.pk}/", headers=headers)
    assert (await socket.connect())[0]
    assert await socket.receive_nothing(timeout=0.5)  # not due yet
    message = await socket.receive_json_from(timeout=3)
    assert message["command"]["command_id"] == str(command.pk)
    await socket.disconnect()
