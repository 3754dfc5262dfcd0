"""Every step of a command's life, and every step it may not take, under a controllable clock."""

from datetime import timedelta

import pytest
from django.utils import timezone

from coffeeshop.exceptions import Conflict, NotFound
from operations.models import CommandStatus, RemoteCommand
from operations.services import commands
from tests.factories import DeviceFactory

# Transactions commit, so the "has commands" flag (set on commit, with Redis) is there as in production.
pytestmark = pytest.mark.django_db(transaction=True)
T0 = timezone.now()


def send(device, **options):
    return commands.send_command(device, "restart", {"reason": "test"}, now=T0, **options)


def lease(device, seconds=0, state="idle"):
    return commands.lease_deliverable_commands(
        device.pk, state=state, channel="pull", now=T0 + timedelta(seconds=seconds)
    )


def report(command, status, seconds=0, **extra):
    return commands.record_command_result(
        command.device_id, command.pk, status=status, now=T0 + timedelta(seconds=seconds), **extra
    )


def status_of(command) -> str:
    return RemoteCommand.objects.get(pk=command.pk).status


def test_pending_sent_delivered_succeeded_each_with_its_time(merchant):
    device = DeviceFactory(merchant=merchant)
    command = send(device)
    assert status_of(command) == CommandStatus.PENDING
    lease(device, 1)
    report(command, "accepted", 2)
    report(command, "succeeded", 3, result={"uptime_s": 0})
    command.refresh_from_db()
    assert command.status == CommandStatus.SUCCEEDED
    assert (command.sent_at, command.delivered_at, command.finished_at) == (
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2),
        T0 + timedelta(seconds=3),
    )


def test_a_failed_or_rejected_result_fails_the_command(merchant):
    device = DeviceFactory(merchant=merchant)
    failed, rejected = send(device), send(device)
    lease(device)
    report(failed, "failed", error="boiler")
    report(rejected, "rejected", error="unsupported")
    assert (status_of(failed), status_of(rejected)) == (CommandStatus.FAILED, CommandStatus.FAILED)
    assert RemoteCommand.objects.get(pk=rejected.pk).reported_status == "rejected"


def test_busy_puts_the_command_back_for_after_its_backoff(merchant):
    device = DeviceFactory(merchant=merchant)
    command = send(device, retry_backoff_s=20)
    lease(device)
    report(command, "busy", 1)
    assert status_of(command) == CommandStatus.PENDING
    assert lease(device, 10) == []
    assert [c["command_id"] for c in lease(device, 22)] == [str(command.pk)]


def test_a_command_never_delivered_before_its_expiry_expires_and_is_never_handed_out(merchant):
    device = DeviceFactory(merchant=merchant)
    command = send(device, expires_in_s=60)
    assert lease(device, 61) == []
    swept = commands.sweep_commands(now=T0 + timedelta(seconds=61))
    assert [c.pk for c in swept["expired"]] == [command.pk]
    assert status_of(command) == CommandStatus.EXPIRED


def test_run_when_idle_waits_for_an_idle_machine(merchant):
    device = DeviceFactory(merchant=merchant, state="brewing")
    command = send(device, run_when_idle=True)
    assert lease(device, 1, state="brewing") == []
    assert [c["command_id"] for c in lease(device, 2, state="idle")] == [str(command.pk)]


def test_only_a_pending_command_can_be_canceled(merchant):
    device = DeviceFactory(merchant=merchant)
    pending, sent = send(device), send(device)
    commands.cancel_command(pending)
    assert status_of(pending) == CommandStatus.CANCELED
    lease(device)
    with pytest.raises(Conflict):
        commands.cancel_command(sent)
    assert status_of(sent) == CommandStatus.SENT


def test_a_different_final_result_after_a_final_one_is_refused_and_the_same_one_is_harmless(merchant):
    device = DeviceFactory(merchant=merchant)
    command = send(device)
    lease(device)
    report(command, "succeeded")
    _, changed = report(command, "succeeded")
    assert changed is False
    with pytest.raises(Conflict):
        report(command, "failed")
    assert status_of(command) == CommandStatus.SUCCEEDED


def test_a_late_result_after_the_server_gave_up_is_still_recorded(merchant):
    device = DeviceFactory(merchant=merchant)
    command = send(device, max_attempts=1)
    lease(device)
    commands.sweep_commands(now=T0 + timedelta(seconds=120))
    assert status_of(command) == CommandStatus.TIMED_OUT
    report(command, "succeeded", 130)
    assert status_of(command) == CommandStatus.SUCCEEDED


def test_results_for_a_canceled_or_expired_command_are_refused(merchant):
    device = DeviceFactory(merchant=merchant)
    canceled = send(device)
    commands.cancel_command(canceled)
    with pytest.raises(Conflict):
        report(canceled, "succeeded")


def test_another_machines_command_is_not_found(merchant):
    mine, theirs = DeviceFactory(merchant=merchant), DeviceFactory(merchant=merchant)
    command = send(theirs)
    with pytest.raises(NotFound):
        commands.record_command_result(mine.pk, command.pk, status="succeeded")


def test_a_lease_is_not_handed_out_twice_until_it_runs_out(merchant):
    device = DeviceFactory(merchant=merchant)
    command = send(device, retry_backoff_s=5)
    assert len(lease(device, 1)) == 1
    assert lease(device, 30) == []  # leased for 60 s
    commands.sweep_commands(now=T0 + timedelta(seconds=62))
    again = lease(device, 68)
    assert [(c["command_id"], c["attempt"]) for c in again] == [(str(command.pk), 2)]
