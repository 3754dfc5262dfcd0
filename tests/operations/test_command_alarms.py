"""A command that gives up raises an alarm on its machine, whether the machine said it failed or the
sweeper timed it out; one rule (`alarms.command_gave_up`) decides both."""

from datetime import timedelta

import pytest
from django.utils import timezone

from operations.models import Alarm, AlarmType, CommandStatus, CommandType
from operations.services import commands
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db(transaction=True)
T0 = timezone.now()
UPGRADE = {
    "package_id": "17",
    "version": "2026.12.1",
    "url": "https://example.com/p.json",
    "sha256": "a" * 64,
}


def sent(device, command_type=CommandType.RESTART, payload=None, **options):
    command = commands.send_command(device, command_type, payload or {"reason": "test"}, now=T0, **options)
    commands.lease_deliverable_commands(device.pk, state="idle", channel="pull", now=T0)
    return command


def alarm_types(device) -> list[str]:
    return sorted(Alarm.objects.filter(device=device, is_active=True).values_list("type", flat=True))


@pytest.mark.parametrize("result", ["failed", "rejected"])
def test_a_command_the_machine_reports_failed_or_rejected_opens_command_failed(merchant, result):
    device = DeviceFactory(merchant=merchant)
    command = sent(device)
    commands.record_command_result(device.pk, command.pk, status=result, error="door jammed", now=T0)
    assert alarm_types(device) == [AlarmType.COMMAND_FAILED]
    assert "door jammed" in Alarm.objects.get(device=device).message


def test_a_failed_upgrade_opens_upgrade_failed_not_command_failed(merchant):
    device = DeviceFactory(merchant=merchant)
    command = sent(device, CommandType.UPGRADE, UPGRADE)
    commands.record_command_result(device.pk, command.pk, status="failed", error="checksum", now=T0)
    assert alarm_types(device) == [AlarmType.UPGRADE_FAILED]


@pytest.mark.parametrize("result", ["accepted", "busy", "succeeded"])
def test_a_command_that_has_not_given_up_opens_no_alarm(merchant, result):
    device = DeviceFactory(merchant=merchant)
    command = sent(device)
    commands.record_command_result(device.pk, command.pk, status=result, now=T0)
    assert alarm_types(device) == []


def test_a_command_the_sweeper_times_out_opens_command_failed_through_the_service_alone(merchant):
    device = DeviceFactory(merchant=merchant)
    command = sent(device, max_attempts=1)
    outcome = commands.sweep_commands(now=T0 + timedelta(seconds=command.lease_s + 1))
    assert [c.pk for c in outcome["timed_out"]] == [command.pk]
    assert command.__class__.objects.get(pk=command.pk).status == CommandStatus.TIMED_OUT
    assert alarm_types(device) == [AlarmType.COMMAND_FAILED]


def test_an_expired_command_that_never_reached_the_machine_opens_no_alarm(merchant):
    device = DeviceFactory(merchant=merchant)
    commands.send_command(device, CommandType.RESTART, {"reason": "test"}, now=T0, expires_in_s=60)
    outcome = commands.sweep_commands(now=T0 + timedelta(seconds=61))
    assert len(outcome["expired"]) == 1
    assert alarm_types(device) == []
