"""A command batch is a background job: the request records the batch and answers at once, the job
creates one command per machine in chunks, shows its progress, stops when canceled, and never gives a
machine two commands of one batch, however often it runs."""

from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Role
from audit.models import OperationLog
from coffeeshop.asgi import application
from devices.models import Device
from operations.models import CommandBatch, CommandStatus, RemoteCommand, TaskJob
from operations.services import cancel_job, commands, reclaim_stale_jobs
from operations.tasks import dispatch_command_batch
from tests.factories import DeviceFactory, UserFactory
from tests.operations.batches import sent_batch, worker_at_commit

pytestmark = pytest.mark.django_db

CLEAN = {"type": "clean", "payload": {"program": "rinse"}}


@pytest.fixture
def fleet(merchant):
    return [DeviceFactory(merchant=merchant) for _ in range(5)]


@pytest.fixture
def ops(staff_client, merchant):
    return staff_client(Role.OPS, [merchant])


@pytest.fixture
def small_chunks(settings):
    settings.COMMAND_BATCH_CHUNK = 2


def post_batch(client, body: dict):
    """POST a batch; the job it queues runs once the request's transaction commits, as on a worker."""
    with worker_at_commit():
        reply = client.post("/api/v1/commands/batches", body, format="json")
    return reply


def test_the_request_answers_202_with_the_batch_and_its_job_before_any_command_exists(
    ops, fleet, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        reply = ops.post(
            "/api/v1/commands/batches", {**CLEAN, "device_ids": [d.pk for d in fleet]}, format="json"
        )

    assert reply.status_code == 202, reply.content
    batch = reply.json()["data"]
    assert batch["machines"] == 5
    assert batch["job"]["status"] == "pending" and batch["job"]["progress"] == 0
    assert batch["counts"]["total"] == 0
    assert queued, "the job is queued on commit"
    assert not RemoteCommand.objects.exists()
    job = TaskJob.objects.get(pk=batch["job"]["id"])
    assert (job.kind, job.created_by, job.params["batch"]) == ("command_batch", ops.user, batch["id"])
    assert ops.get(f"/api/v1/commands/batches/{batch['id']}").json()["data"]["job"]["id"] == job.pk


def test_after_its_job_the_batch_has_one_command_per_machine_and_the_job_succeeded(ops, fleet, small_chunks):
    reply = post_batch(ops, {**CLEAN, "device_ids": [d.pk for d in fleet]})

    batch = ops.get(f"/api/v1/commands/batches/{reply.json()['data']['id']}").json()["data"]
    assert batch["counts"]["pending"] == batch["counts"]["total"] == batch["machines"] == 5
    assert batch["job"]["status"] == "succeeded" and batch["job"]["progress"] == 100
    assert batch["job"]["result_rows"] == 5
    made = RemoteCommand.objects.filter(batch_id=batch["id"])
    assert sorted(made.values_list("device_id", flat=True)) == sorted(d.pk for d in fleet)
    assert {(c.type, c.payload["program"], c.created_by_id) for c in made} == {
        ("clean", "rinse", ops.user.pk)
    }
    job = ops.get(f"/api/v1/jobs/{batch['job']['id']}").json()["data"]
    assert job["kind"] == "command_batch" and job["download_url"] is None


def test_a_filter_targets_only_the_callers_machines(ops, fleet, other_merchant):
    foreign = DeviceFactory(merchant=other_merchant, model=fleet[0].model)

    reply = post_batch(ops, {**CLEAN, "filter": {"model": fleet[0].model}})

    assert reply.status_code == 202, reply.content
    made = RemoteCommand.objects.filter(batch_id=reply.json()["data"]["id"])
    assert made.count() == 5 and not made.filter(device=foreign).exists()


def test_a_user_of_merchant_a_cannot_target_merchant_bs_machines(ops, fleet, other_merchant):
    foreign = DeviceFactory(merchant=other_merchant)

    by_id = post_batch(ops, {**CLEAN, "device_ids": [fleet[0].pk, foreign.pk]})
    by_filter = post_batch(ops, {**CLEAN, "filter": {"merchant_id": other_merchant.pk}})

    assert by_id.status_code == 400 and "device_ids" in by_id.json()["error"]["details"]["fields"]
    assert by_filter.status_code == 400
    assert not CommandBatch.objects.exists() and not TaskJob.objects.exists()
    assert not RemoteCommand.objects.exists()


def test_a_batch_whose_job_has_not_run_is_shown_to_its_merchant_only(
    ops, fleet, staff_client, merchant, other_merchant
):
    reply = ops.post("/api/v1/commands/batches", {**CLEAN, "device_ids": [fleet[0].pk]}, format="json")
    batch_url = f"/api/v1/commands/batches/{reply.json()['data']['id']}"
    colleague = staff_client(Role.VIEWER, [merchant])
    outsider = staff_client(Role.ADMIN, [other_merchant])

    assert colleague.get(batch_url).json()["data"]["counts"]["total"] == 0
    assert outsider.get(batch_url).status_code == 404
    assert outsider.get("/api/v1/commands/batches").json()["data"]["results"] == []


def test_canceling_the_job_midway_stops_it_and_the_batch_keeps_what_was_made(ops, fleet, small_chunks):
    with worker_at_commit():
        batch = commands.start_batch(
            Device.objects.filter(pk__in=[d.pk for d in fleet]),
            "sync",
            {"what": ["status"]},
            user=ops.user,
            target={},
            enqueue=lambda job_id: None,
        )
    chunks = []

    def cancel_after_the_first_chunk(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if 'INTO "operations_remotecommand"' in sql and not chunks:
            chunks.append(sql)
            ops.post(f"/api/v1/jobs/{batch.job_id}/cancel")  # someone clicks Cancel while the job runs
        return result

    with connection.execute_wrapper(cancel_after_the_first_chunk):
        dispatch_command_batch(batch.job_id)

    job = TaskJob.objects.get(pk=batch.job_id)
    assert job.status == TaskJob.Status.CANCELED and job.progress < 100
    assert batch.commands.count() == job.result_rows == 2
    shown = ops.get(f"/api/v1/commands/batches/{batch.pk}").json()["data"]
    assert (shown["counts"]["total"], shown["machines"], shown["job"]["status"]) == (2, 5, "canceled")


def test_a_job_canceled_before_it_starts_makes_no_command(ops, fleet):
    with worker_at_commit():
        batch = commands.start_batch(
            Device.objects.all(), "unlock", {}, user=ops.user, target={}, enqueue=lambda job_id: None
        )
    cancel_job(batch.job)

    assert dispatch_command_batch(batch.job_id) is None
    assert not batch.commands.exists()
    assert TaskJob.objects.get(pk=batch.job_id).status == TaskJob.Status.CANCELED


def test_canceling_a_batchs_pending_commands_also_stops_its_job(ops, fleet):
    with worker_at_commit():
        batch = commands.start_batch(
            Device.objects.all(), "unlock", {}, user=ops.user, target={}, enqueue=lambda job_id: None
        )

    reply = ops.post(f"/api/v1/commands/batches/{batch.pk}/cancel_pending")
    dispatch_command_batch(batch.job_id)

    assert reply.status_code == 200
    assert TaskJob.objects.get(pk=batch.job_id).status == TaskJob.Status.CANCELED
    assert not batch.commands.exists()


def test_running_the_job_twice_gives_no_machine_a_second_command(ops, fleet, small_chunks):
    batch = sent_batch(Device.objects.all(), "sync", {"what": ["status"]}, user=ops.user)
    # The worker died after two chunks: the job is still `running` and silent; the reclaim sweep gives
    # it back, and its task is delivered again.
    TaskJob.objects.filter(pk=batch.job_id).update(
        status=TaskJob.Status.RUNNING, attempts=1, beat_at=timezone.now() - timedelta(hours=1)
    )
    batch.commands.filter(device__in=fleet[3:]).delete()
    assert reclaim_stale_jobs(enqueue=lambda job: None)["requeued"] == [batch.job_id]

    with worker_at_commit():
        assert dispatch_command_batch(batch.job_id) == 5
    assert dispatch_command_batch(batch.job_id) is None  # a finished job does nothing

    per_machine = batch.commands.values_list("device_id", flat=True)
    assert sorted(per_machine) == sorted(d.pk for d in fleet)
    assert TaskJob.objects.get(pk=batch.job_id).status == TaskJob.Status.SUCCEEDED


def test_the_database_refuses_a_second_command_for_a_machine_of_a_batch(ops, fleet):
    batch = sent_batch(Device.objects.filter(pk=fleet[0].pk), "unlock", {}, user=ops.user)
    twin = batch.commands.get()
    twin.pk = None
    twin._state.adding = True

    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


def test_the_batch_creation_is_audited_once(ops, fleet):
    reply = post_batch(ops, {**CLEAN, "device_ids": [d.pk for d in fleet]})

    created = OperationLog.objects.filter(action="batch.created", target_id=str(reply.json()["data"]["id"]))
    assert created.count() == 1
    assert created.get().changes["machines"] == 5 and created.get().actor == ops.user


def test_every_machine_of_the_batch_is_flagged_as_having_commands(ops, fleet):
    from coffeeshop.redis import get_redis

    if get_redis() is None:
        pytest.skip(reason="the has-commands flag lives in Redis (without it every heartbeat looks)")
    sent_batch(Device.objects.all(), "unlock", {}, user=ops.user)

    assert all(commands.may_have_commands(d.pk) for d in fleet)
    assert RemoteCommand.objects.filter(status=CommandStatus.PENDING).count() == 5


@pytest.mark.django_db(transaction=True)
async def test_a_machine_holding_its_websocket_gets_its_batch_command_pushed(machine):
    from asgiref.sync import sync_to_async

    headers = [(b"authorization", f"Device {machine.token}".encode())]
    socket = WebsocketCommunicator(application, f"/ws/devices/{machine.device.pk}/", headers=headers)
    assert (await socket.connect())[0]

    def make_batch():
        return commands.start_batch(
            Device.objects.filter(pk=machine.device.pk),
            "lock",
            {"reason": "night"},
            user=UserFactory(role=Role.OPS, merchants=[machine.device.merchant]),
            target={},
            enqueue=dispatch_command_batch,  # runs on commit, in this process, as a worker would
        )

    batch = await sync_to_async(make_batch)()
    message = await socket.receive_json_from(timeout=5)
    command = await sync_to_async(batch.commands.get)()
    assert message["type"] == "command" and message["command"]["command_id"] == str(command.pk)
    await socket.disconnect()
