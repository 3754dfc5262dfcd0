"""Remote commands: what I send you arrives once, in time, or I know it did not.

Lifecycle (a timestamp for each step):
    pending → sent (leased to the machine) → delivered (machine said "accepted") → succeeded | failed
    and, from the unfinished states: timed_out (attempts used up), expired (never delivered before
    its expiry), canceled (by staff).

One lifecycle whatever the channel: the heartbeat reply, a pull and the machine's WebSocket all hand
out commands through `lease_deliverable_commands`, which locks the rows it leases (SKIP LOCKED), so two
concurrent deliveries never hand out one command twice. `sweep_commands` re-examines every unfinished
command from the database alone, so nothing stays `sent` forever, also after a restart.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.tenancy import merchant_ids_for
from audit import services as audit
from coffeeshop.exceptions import Conflict, Invalid, NotFound
from coffeeshop.live import broadcast_after_commit, send_to_groups
from devices.models import Device, DeviceState
from operations.models import (
    UNFINISHED_COMMAND_STATUSES,
    CommandBatch,
    CommandResult,
    CommandStatus,
    CommandType,
    RemoteCommand,
    TaskJob,
)
from operations.payloads import validated_payload
from operations.services import alarms
from operations.services.jobs import (
    JobSuperseded,
    cancel_job,
    claim_job,
    create_job,
    finish_job,
    report_progress,
)
from operations.services.pending_flags import (
    flag_pending,
    forget_flag_unless_pending,
    may_have_commands,
)

DEFAULT_EXPIRY_S = 3600
FINAL_BY_RESULT = {
    CommandResult.SUCCEEDED: CommandStatus.SUCCEEDED,
    CommandResult.FAILED: CommandStatus.FAILED,
    CommandResult.REJECTED: CommandStatus.FAILED,
}


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def command_for_machine(command: RemoteCommand) -> dict:
    """A command as the machine sees it (protocol: Commands)."""
    return {
        "command_id": str(command.id),
        "type": command.type,
        "payload": command.payload,
        "issued_at": iso(command.created_at),
        "expires_at": iso(command.expires_at),
        "attempt": command.attempt,
    }


def command_summary(command: RemoteCommand) -> dict:
    return {
        "id": str(command.id),
        "device_id": command.device_id,
        "type": command.type,
        "status": command.status,
        "attempt": command.attempt,
        "batch_id": command.batch_id,
        "error": command.error,
    }


# --- the "has something for this machine" flag keeps the heartbeat from querying for nothing ------


def _nudge_sockets(device_ids) -> None:
    """Tell machines holding a WebSocket to collect their commands now (once the commands are committed)."""
    sends = [(device_group(device_id), {"type": "commands.available"}) for device_id in device_ids]
    if sends:
        transaction.on_commit(lambda: send_to_groups(sends))


def _merchant_of(command: RemoteCommand) -> int:
    return Device.objects.filter(pk=command.device_id).values_list("merchant_id", flat=True).get()


def device_group(device_id: int) -> str:
    return f"device.{device_id}"


# --- creating -----------------------------------------------------------------------------------


def _checked_payload(command_type: str, payload) -> dict:
    if command_type not in CommandType.values:
        raise Invalid(_("Unknown command type."), details={"fields": {"type": [_("unknown command type")]}})
    clean, errors = validated_payload(command_type, payload)
    if errors:
        raise Invalid(_("Invalid payload."), details={"fields": errors})
    return clean


def _new_command(
    device: Device,
    command_type: str,
    payload: dict,
    *,
    user,
    now: datetime,
    expires_in_s: int,
    max_attempts: int,
    retry_backoff_s: int,
    run_when_idle: bool,
    batch=None,
) -> RemoteCommand:
    return RemoteCommand(
        device=device,
        batch=batch,
        type=command_type,
        payload=payload,
        created_by=user,
        created_at=now,
        next_attempt_at=now,
        expires_at=now + timedelta(seconds=expires_in_s),
        max_attempts=max_attempts,
        retry_backoff_s=retry_backoff_s,
        run_when_idle=run_when_idle,
    )


@transaction.atomic
def send_command(
    device: Device,
    command_type: str,
    payload,
    *,
    user=None,
    expires_in_s: int = DEFAULT_EXPIRY_S,
    max_attempts: int = 3,
    retry_backoff_s: int = 30,
    run_when_idle: bool = False,
    now: datetime | None = None,
) -> RemoteCommand:
    """Queue a command for one machine; it rides on the next heartbeat, pull or WebSocket push."""
    now = now or timezone.now()
    clean = _checked_payload(command_type, payload)
    command = _new_command(
        device,
        command_type,
        clean,
        user=user,
        now=now,
        expires_in_s=expires_in_s,
        max_attempts=max_attempts,
        retry_backoff_s=retry_backoff_s,
        run_when_idle=run_when_idle,
    )
    command.save()
    flag_pending([device.pk])
    _nudge_sockets([device.pk])
    broadcast_after_commit(device.merchant_id, "command.updated", command_summary(command))
    audit.record(
        "command.sent",
        command,
        merchant_id=device.merchant_id,
        changes={"type": command_type, "payload": clean},
    )
    return command


def batch_chunk_size() -> int:
    """Commands a batch's job writes per transaction (setting COMMAND_BATCH_CHUNK, 1,000 by default):
    the job reports progress and looks for a cancel request between chunks."""
    return settings.COMMAND_BATCH_CHUNK


@transaction.atomic
def start_batch(
    devices,
    command_type: str,
    payload,
    *,
    user,
    target: dict,
    enqueue,
    expires_in_s: int = DEFAULT_EXPIRY_S,
    max_attempts: int = 3,
    run_when_idle: bool = False,
    now: datetime | None = None,
) -> CommandBatch:
    """One command to many machines: record the batch and queue the job that creates its commands
    (`enqueue(job_id)`, once this transaction commits); `dispatch_batch` is that job.

    The machines are resolved here, as the caller sees them, and kept on the batch: the job creates one
    command for each, whatever changes meanwhile. Expiry counts from now, not from when the job runs.
    The batch belongs to a merchant when all its machines do; a platform-wide batch has none."""
    now = now or timezone.now()
    clean = _checked_payload(command_type, payload)
    machines = list(devices.order_by("pk").values_list("pk", "merchant_id"))
    if not machines:
        raise Invalid(_("No machine matches."), details={"fields": {"devices": [_("no machine matches")]}})
    merchants = {merchant_id for _pk, merchant_id in machines}
    batch = CommandBatch.objects.create(
        merchant_id=next(iter(merchants)) if len(merchants) == 1 else None,
        type=command_type,
        payload=clean,
        target=target,
        created_by=user,
        created_at=now,
        machines=len(machines),
        device_ids=[pk for pk, _merchant_id in machines],
    )
    batch.job = create_job(
        kind=TaskJob.Kind.COMMAND_BATCH,
        user=user,
        params={
            "batch": batch.pk,
            "type": command_type,
            "machines": len(machines),
            "expires_in_s": expires_in_s,
            "max_attempts": max_attempts,
            "run_when_idle": run_when_idle,
        },
        enqueue=enqueue,
    )
    batch.save(update_fields=["job"])
    for merchant_id in merchants:
        broadcast_after_commit(merchant_id, "batch.updated", {"id": batch.pk})
    audit.record(
        "batch.created", batch, changes={"type": command_type, "machines": len(machines), "target": target}
    )
    return batch


def dispatch_batch(job_id: int) -> TaskJob | None:
    """The job `start_batch` queued: create the batch's commands chunk by chunk (bulk inserts), with
    progress, until done or until someone cancels the job (the commands made so far stay).

    Safe to run twice: the database holds at most one command per (batch, machine) and a second run
    (a redelivery after a worker died) only adds the missing ones. None when the job had already
    finished or was canceled before it started."""
    job = claim_job(job_id)
    if job is None:
        return None
    batch = CommandBatch.objects.select_related("created_by").get(job=job)
    options = {name: job.params[name] for name in ("expires_in_s", "max_attempts", "run_when_idle")}
    size, device_ids = batch_chunk_size(), batch.device_ids
    try:
        for done in range(size, len(device_ids) + size, size):
            went_on = _create_batch_commands(batch, job, device_ids[done - size : done], **options)
            progress = min(done, len(device_ids)) * 99 // len(device_ids)
            if not (went_on and report_progress(job, progress)):
                return finish_job(job, TaskJob.Status.CANCELED, rows=batch.commands.count())
    except JobSuperseded:
        return None  # another worker took the job over after this one fell silent; it finishes it
    except Exception as error:
        finish_job(job, TaskJob.Status.FAILED, error=str(error), rows=batch.commands.count())
        raise  # the worker logs it; the job says it failed instead of running for ever
    return finish_job(job, TaskJob.Status.SUCCEEDED, rows=batch.commands.count())


@transaction.atomic
def _create_batch_commands(batch: CommandBatch, job: TaskJob, device_ids, **options) -> bool:
    """One chunk of a batch, in one transaction; False (nothing written) when the job was canceled.

    The job's row is locked first, so a cancel (and `cancel_pending` after it) waits for a chunk in
    flight and then sees all of its commands. Each command is issued at the batch's time: that is when
    staff asked, and what its expiry counts from."""
    if not TaskJob.objects.select_for_update().filter(pk=job.pk, cancel_requested=False).exists():
        return False
    # A machine deleted since the batch was made is skipped.
    devices = list(Device.objects.filter(pk__in=device_ids).only("pk", "merchant_id"))
    RemoteCommand.objects.bulk_create(
        [
            _new_command(
                device,
                batch.type,
                batch.payload,
                user=batch.created_by,
                now=batch.created_at,
                retry_backoff_s=30,
                batch=batch,
                **options,
            )
            for device in devices
        ],
        ignore_conflicts=True,  # a second run of the job skips the machines that already have theirs
    )
    ids = [device.pk for device in devices]
    flag_pending(ids)
    _nudge_sockets(ids)
    for merchant_id in {device.merchant_id for device in devices}:
        broadcast_after_commit(merchant_id, "batch.updated", {"id": batch.pk})
    return True


def batch_counts(batch: CommandBatch) -> dict[str, int]:
    counts = dict.fromkeys(CommandStatus.values, 0)
    counts.update(
        dict(batch.commands.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    )
    counts["total"] = sum(counts[s] for s in CommandStatus.values)
    return counts


@transaction.atomic
def may_act_on_whole_batch(user, batch: CommandBatch) -> bool:
    """Retrying or canceling acts on every machine of a batch: only someone who sees all of them may."""
    ids = merchant_ids_for(user)
    return ids is None or not batch.commands.exclude(device__merchant__in=ids).exists()


def _batch_changed(batch: CommandBatch) -> None:
    for merchant_id in set(batch.commands.values_list("device__merchant_id", flat=True).distinct()):
        broadcast_after_commit(merchant_id, "batch.updated", {"id": batch.pk})


def retry_failed(batch: CommandBatch, now: datetime | None = None) -> int:
    """Send again, as fresh attempts, the batch's commands that failed, timed out or expired."""
    now = now or timezone.now()
    again = batch.commands.filter(
        status__in=[CommandStatus.FAILED, CommandStatus.TIMED_OUT, CommandStatus.EXPIRED]
    )
    device_ids = list(again.values_list("device_id", flat=True))
    count = again.update(
        status=CommandStatus.PENDING,
        attempt=0,
        next_attempt_at=now,
        lease_expires_at=None,
        finished_at=None,
        error="",
        expires_at=now + timedelta(seconds=DEFAULT_EXPIRY_S),
    )
    flag_pending(device_ids)
    _nudge_sockets(device_ids)
    audit.record("batch.failed_retried", batch, changes={"retried": count})
    _batch_changed(batch)
    return count


def cancel_pending(batch: CommandBatch, now: datetime | None = None) -> int:
    """Cancel the batch's commands no machine has collected yet, and stop its job if it still runs:
    the job stops before its next chunk, and a chunk in flight is waited for and canceled too."""
    now = now or timezone.now()
    if batch.job is not None and not batch.job.is_finished:
        cancel_job(batch.job)
    count = batch.commands.filter(status=CommandStatus.PENDING).update(
        status=CommandStatus.CANCELED, finished_at=now
    )
    audit.record("batch.pending_canceled", batch, changes={"canceled": count})
    _batch_changed(batch)
    return count


@transaction.atomic
def cancel_command(command: RemoteCommand, now: datetime | None = None) -> RemoteCommand:
    """Cancel a command the machine has not been handed yet (a sent one is already out of our hands)."""
    command = RemoteCommand.objects.select_for_update().get(pk=command.pk)
    if command.status != CommandStatus.PENDING:
        raise Conflict(
            _("Only a pending command can be canceled (this one is %(status)s).")
            % {"status": command.get_status_display()}
        )
    command.status = CommandStatus.CANCELED
    command.finished_at = now or timezone.now()
    command.save(update_fields=["status", "finished_at"])
    audit.record(
        "command.canceled",
        command,
        merchant_id=_merchant_of(command),
        changes={"type": command.type, "status": [CommandStatus.PENDING, CommandStatus.CANCELED]},
    )
    return command


# --- delivering ----------------------------------------------------------------------------------


def lease_deliverable_commands(
    device_id: int, *, state: str | None, channel: str, limit: int = 10, now: datetime | None = None
) -> list[dict]:
    """Hand out the machine's deliverable commands, leased so they are not handed out again.

    `state` is what the machine just reported (None if unknown): a "run when idle" command waits
    until the machine is idle.
    """
    now = now or timezone.now()
    if not may_have_commands(device_id):
        return []
    due = RemoteCommand.objects.filter(
        device_id=device_id, status=CommandStatus.PENDING, next_attempt_at__lte=now, expires_at__gt=now
    )
    # Look before locking: most heartbeats find nothing, and then one plain SELECT is all they cost.
    if not due.exists():
        forget_flag_unless_pending(device_id)
        return []
    with transaction.atomic():
        deliverable = due.select_for_update(skip_locked=True).order_by("created_at")
        if state is None:
            state = Device.objects.filter(pk=device_id).values_list("state", flat=True).first()
        if state != DeviceState.IDLE:
            deliverable = deliverable.filter(run_when_idle=False)
        leased = list(deliverable[:limit])
        for command in leased:
            command.status = CommandStatus.SENT
            command.attempt += 1
            command.sent_at = now
            command.lease_expires_at = now + timedelta(seconds=command.lease_s)
            command.delivery_channel = channel
        RemoteCommand.objects.bulk_update(
            leased, ["status", "attempt", "sent_at", "lease_expires_at", "delivery_channel"]
        )
        if not leased:
            forget_flag_unless_pending(device_id)
    return [command_for_machine(c) for c in leased]


@transaction.atomic
def record_command_result(
    device_id: int,
    command_id,
    *,
    status: str,
    result: dict | None = None,
    error: str = "",
    now: datetime | None = None,
) -> tuple[RemoteCommand, bool]:
    """Apply a machine's result; returns (command, changed). Reporting the same result twice is harmless.

    Raises NotFound for a command of another machine, Conflict for a different final result after a
    final one. A late result after the server gave up (timed_out) is still recorded: it is the truth.
    """
    now = now or timezone.now()
    command = RemoteCommand.objects.select_for_update().filter(pk=command_id, device_id=device_id).first()
    if command is None:
        raise NotFound(_("No such command for this device."))
    final = FINAL_BY_RESULT.get(status)
    if command.is_finished:
        if status == command.reported_status or status in (CommandResult.ACCEPTED, CommandResult.BUSY):
            return command, False
        if command.status != CommandStatus.TIMED_OUT or final is None:
            raise Conflict(_("The command already finished as %(status)s.") % {"status": command.status})
    command.reported_status = status
    if status == CommandResult.ACCEPTED:
        command.status = CommandStatus.DELIVERED
        command.delivered_at = command.delivered_at or now
        command.lease_expires_at = now + timedelta(seconds=command.lease_s)
    elif status == CommandResult.BUSY:
        command.status = CommandStatus.PENDING
        command.next_attempt_at = now + timedelta(seconds=command.retry_backoff_s)
        command.lease_expires_at = None
        flag_pending([device_id])
    else:
        command.status = final
        command.delivered_at = command.delivered_at or now
        command.finished_at = now
        command.result = result or {}
        command.error = error
    command.save()
    alarms.command_gave_up(command, now=now)
    merchant_id = _merchant_of(command)
    broadcast_after_commit(merchant_id, "command.updated", command_summary(command))
    audit.record(
        "command.result",
        command,
        merchant_id=merchant_id,
        source=audit.Source.MACHINE,
        changes={"reported": status, "status": command.status},
    )
    return command, True


# --- the sweeper ---------------------------------------------------------------------------------


def sweep_commands(now: datetime | None = None) -> dict[str, list[RemoteCommand]]:
    """Expire, retry or time out every unfinished command whose time has come. Safe to run twice."""
    now = now or timezone.now()
    outcome: dict[str, list[RemoteCommand]] = {"expired": [], "retried": [], "timed_out": []}
    with transaction.atomic():
        due = (
            RemoteCommand.objects.select_for_update(skip_locked=True)
            .filter(status__in=UNFINISHED_COMMAND_STATUSES)
            .filter(_due_filter(now))
            .select_related("device")
        )
        for command in due:
            if command.status == CommandStatus.PENDING:
                command.status, command.finished_at = CommandStatus.EXPIRED, now
                outcome["expired"].append(command)
            elif command.attempt < command.max_attempts and command.expires_at > now:
                backoff = command.retry_backoff_s * 2 ** max(0, command.attempt - 1)
                command.status, command.lease_expires_at = CommandStatus.PENDING, None
                command.next_attempt_at = now + timedelta(seconds=backoff)
                outcome["retried"].append(command)
            else:
                command.status, command.finished_at = CommandStatus.TIMED_OUT, now
                command.error = command.error or _("No result after %(n)d attempts.") % {"n": command.attempt}
                outcome["timed_out"].append(command)
            command.save()
            broadcast_after_commit(command.device.merchant_id, "command.updated", command_summary(command))
        flag_pending({c.device_id for c in outcome["retried"]})
    for command in outcome["timed_out"]:
        alarms.command_gave_up(command, now=now)
    return outcome


def _due_filter(now: datetime):
    return Q(status=CommandStatus.PENDING, expires_at__lte=now) | Q(
        status__in=[CommandStatus.SENT, CommandStatus.DELIVERED], lease_expires_at__lte=now
    )
