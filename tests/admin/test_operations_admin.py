"""Operations in the back office: jobs, commands and batches, alarms, notification channels, maintenance
windows and the audit trail, as each role sees them. Everything stays within the user's merchants, and
every action goes through the services the staff API uses."""

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import OperationLog
from devices.models import Device
from operations.models import (
    Alarm,
    AlarmType,
    CommandBatch,
    CommandStatus,
    MaintenanceWindow,
    NotificationChannel,
    RemoteCommand,
    Severity,
    TaskJob,
)
from operations.services import alarms, commands
from tests.factories import DeviceFactory
from tests.operations.batches import sent_batch, worker_at_commit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

B_SECRETS = [
    "Other Beans",
    "CM2K-B00001",
    "Rival Corner",
    "Secret alarm",
    "rival-hook.example",
    "Secret window",
]
ROLES = [Role.ADMIN, Role.OPS, Role.VIEWER]


@pytest.fixture
def world(merchant, other_merchant, make_user):
    """Brew Co (A) and Other Beans (B), each with machines, alarms, commands, a batch, a maintenance window
    and a notification channel."""
    someone_a = make_user(Role.OPS, merchants=[merchant])
    someone_b = make_user(Role.OPS, merchants=[other_merchant])
    lobby = DeviceFactory(merchant=merchant, serial="CM2K-A00001", alias="Lobby A")
    station = DeviceFactory(merchant=merchant, serial="CM2K-A00002")
    rival = DeviceFactory(merchant=other_merchant, serial="CM2K-B00001", alias="Rival Corner")
    offline, _ = alarms.open_or_bump_alarm(lobby, AlarmType.OFFLINE, Severity.CRITICAL, message="Gone quiet")
    low, _ = alarms.open_or_bump_alarm(
        station, AlarmType.MATERIAL_LOW, Severity.WARNING, bin_index=2, message="MILK-POWDER at 5%"
    )
    secret, _ = alarms.open_or_bump_alarm(rival, AlarmType.OFFLINE, Severity.CRITICAL, message="Secret alarm")
    return SimpleNamespace(
        a=merchant,
        b=other_merchant,
        lobby=lobby,
        station=station,
        rival=rival,
        offline=offline,
        low=low,
        b_alarm=secret,
        command=commands.send_command(lobby, "open_door", {"duration_s": 5}, user=someone_a),
        b_command=commands.send_command(rival, "restart", {"reason": "Rival Corner"}, user=someone_b),
        batch=sent_batch(
            Device.objects.filter(merchant=merchant),
            "sync",
            {"what": ["status"]},
            user=someone_a,
            target={"device_ids": [lobby.pk, station.pk]},
        ),
        b_batch=sent_batch(
            Device.objects.filter(pk=rival.pk),
            "clean",
            {"program": "rinse"},
            user=someone_b,
            target={"device_ids": [rival.pk]},
        ),
        window=MaintenanceWindow.objects.create(
            device=lobby,
            starts_at=timezone.now(),
            ends_at=timezone.now() + timedelta(hours=2),
            reason="Descaling",
        ),
        b_window=MaintenanceWindow.objects.create(
            device=rival,
            starts_at=timezone.now(),
            ends_at=timezone.now() + timedelta(hours=2),
            reason="Secret window",
        ),
        channel=NotificationChannel.objects.create(
            merchant=merchant, kind="email", target="ops@brewco.example"
        ),
        b_channel=NotificationChannel.objects.create(
            merchant=other_merchant,
            kind="webhook",
            target="https://rival-hook.example/alarms",
            secret="s3cret",
        ),
        b_job=TaskJob.objects.create(kind=TaskJob.Kind.ORDERS_EXPORT, created_by=someone_b),
        b_log=OperationLog.objects.filter(merchant=other_merchant).first(),
    )


@pytest.fixture
def login(make_user, merchant):
    """login(role, platform=False) -> a client signed in as a fresh user of Brew Co (or platform staff)."""

    def make(role, platform=False):
        user = make_user(role, is_platform_staff=True) if platform else make_user(role, merchants=[merchant])
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


def url(obj, view="change"):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


def changelist(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


SUBMITTED = {"_form_submitted": "True"}


# --- Pages and roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_operations_page_opens_for_each_role_or_is_refused(login, world, role):
    client = login(role)
    own_job = TaskJob.objects.create(kind=TaskJob.Kind.ORDERS_EXPORT, created_by=client.user)
    log = OperationLog.objects.filter(merchant=world.a).first()
    admin, operates = role == Role.ADMIN, role in (Role.ADMIN, Role.OPS)
    expected = {
        changelist(TaskJob): True,
        url(own_job): True,
        changelist(RemoteCommand): True,
        url(world.command): True,
        changelist(CommandBatch): True,
        url(world.batch): True,
        changelist(Alarm): True,
        url(world.offline): True,
        reverse("admin:operations_alarm_counts"): True,
        changelist(MaintenanceWindow): True,
        url(world.window): True,
        reverse("admin:operations_maintenancewindow_add"): operates,
        changelist(NotificationChannel): admin,
        url(world.channel): admin,
        reverse("admin:operations_notificationchannel_add"): admin,
        changelist(OperationLog): admin,
        url(log): admin,
        reverse("admin:audit_operationlog_add"): False,
        url(world.lobby, "send_command"): operates,
        url(world.offline, "clear"): operates,
    }

    statuses = {page: client.get(page).status_code for page in expected}

    assert statuses == {page: 200 if allowed else 403 for page, allowed in expected.items()}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
def test_every_list_shows_only_the_users_merchant(login, world, role):
    client = login(role)
    TaskJob.objects.create(kind=TaskJob.Kind.ORDERS_EXPORT, created_by=client.user)
    expected_counts = {
        TaskJob: 1,
        RemoteCommand: 3,  # the single command and the batch's two
        CommandBatch: 1,
        Alarm: 2,
        MaintenanceWindow: 1,
    }
    if role == Role.ADMIN:
        expected_counts[NotificationChannel] = 1

    for model, count in expected_counts.items():
        response = client.get(changelist(model))
        content = response.content.decode()
        assert response.context["cl"].result_count == count, model
        assert not [secret for secret in B_SECRETS if secret in content], model


def test_the_audit_trail_lists_only_the_merchants_entries(login, world):
    response = login(Role.ADMIN).get(changelist(OperationLog) + "?by=all")

    entries = response.context["cl"].queryset
    assert entries.exists() and set(entries.values_list("merchant", flat=True)) == {world.a.pk}
    assert not [secret for secret in B_SECRETS if secret in response.content.decode()]


def test_the_audit_trail_opens_on_what_people_did_with_machines_a_click_away(login, world):
    def line(action, source):
        return OperationLog.objects.create(merchant=world.a, action=action, source=source)

    person = line("device.updated", OperationLog.Source.ADMIN)
    script = line("material.updated", OperationLog.Source.API)
    machine = line("command.result", OperationLog.Source.MACHINE)
    client = login(Role.ADMIN)

    opened = set(client.get(changelist(OperationLog)).context["cl"].queryset)
    machines = set(client.get(changelist(OperationLog) + "?by=machines").context["cl"].queryset)

    assert {person, script} <= opened and machine not in opened
    assert {line.source for line in opened} <= {"admin", "api"}
    assert machine in machines and not {person, script} & machines


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("what", ["b_alarm", "b_command", "b_batch", "b_window", "b_job"])
def test_another_merchants_object_by_id_answers_like_a_missing_one(login, world, role, what):
    client = login(role)
    obj = getattr(world, what)
    missing_id = "00000000-0000-0000-0000-000000000000" if what == "b_command" else "987654"

    foreign = client.get(url(obj), follow=True)
    missing = client.get(url(obj).replace(f"/{obj.pk}/", f"/{missing_id}/"), follow=True)

    assert (foreign.status_code, foreign.redirect_chain) == (missing.status_code, missing.redirect_chain)
    assert foreign.redirect_chain == [(reverse("admin:index"), 302)]
    assert not [secret for secret in B_SECRETS if secret in foreign.content.decode()]


def test_platform_staff_see_every_merchants_alarms(login, world):
    response = login(Role.VIEWER, platform=True).get(changelist(Alarm))

    assert response.context["cl"].result_count == 3


# --- The audit trail ------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", [False, True])
def test_the_audit_trail_is_read_only_even_for_admins(login, world, platform):
    client = login(Role.ADMIN, platform=platform)
    log = OperationLog.objects.filter(merchant=world.a).first()

    page = client.get(url(log)).content.decode()
    listing = client.get(changelist(OperationLog))
    add = client.post(reverse("admin:audit_operationlog_add"), {"action": "forged"})
    change = client.post(url(log), {"action": "forged"})
    delete = client.post(url(log, "delete"), {"post": "yes"})

    assert 'name="_save"' not in page
    assert listing.context["action_form"] is None
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert OperationLog.objects.get(pk=log.pk).action == log.action
    assert not OperationLog.objects.filter(action="forged").exists()


@pytest.mark.parametrize("role", [Role.OPS, Role.VIEWER])
def test_the_audit_trail_is_hidden_from_ops_and_viewers(login, world, role):
    client = login(role)

    index = client.get(reverse("admin:index")).content.decode()

    assert changelist(OperationLog) not in index
    assert changelist(NotificationChannel) not in index
    assert client.get(changelist(OperationLog)).status_code == 403


# --- Sending commands -------------------------------------------------------------------------------------


def command_form(**fields):
    return {
        **SUBMITTED,
        "type": "open_door",
        "payload": '{"duration_s": 30}',
        "expires_in_min": "10",
        "max_attempts": "2",
        **fields,
    }


def test_ops_send_a_command_from_the_device_page(login, world):
    client = login(Role.OPS)
    before = timezone.now()

    response = client.post(
        url(world.station, "send_command"), command_form(run_when_idle="on"), headers={"HX-Request": "true"}
    )
    page = client.get(response["HX-Redirect"])

    command = RemoteCommand.objects.get(device=world.station, batch=None)
    assert response["HX-Redirect"] == url(world.station)
    assert (command.type, command.payload, command.status) == ("open_door", {"duration_s": 30}, "pending")
    assert (command.max_attempts, command.run_when_idle, command.created_by) == (2, True, client.user)
    assert before + timedelta(minutes=9) < command.expires_at <= timezone.now() + timedelta(minutes=10)
    assert "is queued for CM2K-A00002" in messages_of(page)[0]
    assert OperationLog.objects.filter(action="command.sent", target_id=str(command.pk)).exists()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"payload": '{"duration_s": 0}'}, "duration_s: Ensure this value is greater than or equal to 1."),
        ({"payload": "{not json"}, "Enter a valid JSON."),
        ({"type": "clean", "payload": "{}"}, "program: This field is required."),
        ({"type": "self_destruct"}, "Select a valid choice."),
    ],
)
def test_an_invalid_command_shows_its_errors_and_sends_nothing(login, world, fields, error):
    response = login(Role.OPS).post(url(world.station, "send_command"), command_form(**fields))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not RemoteCommand.objects.filter(device=world.station, batch=None).exists()


def test_a_viewer_cannot_send_a_command(login, world):
    client = login(Role.VIEWER)

    page = client.get(url(world.station)).content.decode()
    response = client.post(url(world.station, "send_command"), command_form())

    assert url(world.station, "send_command") not in page
    assert response.status_code == 403
    assert not RemoteCommand.objects.filter(device=world.station, batch=None).exists()


def test_ops_cannot_send_a_command_to_another_merchants_machine(login, world):
    response = login(Role.OPS).post(url(world.rival, "send_command"), command_form())

    assert response.status_code == 404
    assert RemoteCommand.objects.filter(device=world.rival).count() == 2


def test_ops_send_a_command_to_the_selected_machines_as_a_batch_made_by_a_job(login, world):
    client = login(Role.OPS)
    chosen = {"action": "send_command_to_selected", "_selected_action": [world.lobby.pk, world.rival.pk]}

    form_page = client.post(changelist(Device), {**chosen, "index": "0"})
    with worker_at_commit() as queued:
        response = client.post(
            changelist(Device), {**chosen, **command_form(type="restart", payload='{"reason": "x"}')}
        )
        batch = CommandBatch.objects.exclude(pk__in=[world.batch.pk, world.b_batch.pk]).get()
        made_in_the_request = batch.commands.count()

    assert form_page.status_code == 200
    content = form_page.content.decode()
    assert "Lobby A" in content and 'name="payload"' in content
    assert "Rival Corner" not in content
    assert response.status_code == 302 and response["Location"] == url(batch)
    assert (batch.type, batch.payload, batch.target) == (
        "restart",
        {"reason": "x"},
        {"device_ids": [world.lobby.pk]},
    )
    assert (batch.merchant, batch.created_by) == (world.a, client.user)
    assert queued and made_in_the_request == 0
    job = TaskJob.objects.get(command_batch=batch)
    assert (job.kind, job.status, job.progress, job.created_by) == (
        "command_batch",
        "succeeded",
        100,
        client.user,
    )
    assert list(batch.commands.values_list("device", flat=True)) == [world.lobby.pk]
    page = client.get(url(batch), follow=True)
    assert page.status_code == 200
    [message] = messages_of(page)
    assert "creating the command for 1 machine" in message
    assert f'href="{url(batch)}"' in message and f'href="{url(job)}"' in message
    assert f'data-live="job" data-job-id="{job.pk}"' in page.content.decode()
    assert client.get(reverse("admin:operations_commandbatch_job", args=[batch.pk])).json()["progress"] == 100


def test_a_batch_with_an_invalid_payload_shows_the_error_and_creates_nothing(login, world):
    chosen = {"action": "send_command_to_selected", "_selected_action": [world.lobby.pk]}

    response = login(Role.OPS).post(
        changelist(Device), {**chosen, **command_form(payload='{"duration_s": -1}')}
    )

    assert response.status_code == 200
    assert "duration_s: Ensure this value is greater than or equal to 1." in response.content.decode()
    assert CommandBatch.objects.count() == 2


def test_a_viewer_has_no_batch_action(login, world):
    client = login(Role.VIEWER)
    chosen = {"action": "send_command_to_selected", "_selected_action": [world.lobby.pk], "index": "0"}

    listing = client.get(changelist(Device))
    client.post(changelist(Device), {**chosen, **command_form()})

    assert listing.context["action_form"] is None
    assert CommandBatch.objects.count() == 2


# --- Commands and batches ---------------------------------------------------------------------------------


def test_ops_cancel_a_pending_command(login, world):
    client = login(Role.OPS)

    response = client.post(url(world.command, "cancel"), SUBMITTED, follow=True)
    again = client.post(url(world.command, "cancel"), SUBMITTED, follow=True)

    assert messages_of(response) == ["The command is canceled."]
    assert RemoteCommand.objects.get(pk=world.command.pk).status == CommandStatus.CANCELED
    assert "Only a pending command can be canceled" in messages_of(again)[0]


def test_ops_cancel_the_selected_pending_commands(login, world):
    RemoteCommand.objects.filter(batch=world.batch, device=world.station).update(status=CommandStatus.SENT)
    selected = [str(pk) for pk in RemoteCommand.objects.values_list("pk", flat=True)]

    response = login(Role.OPS).post(
        changelist(RemoteCommand),
        {"action": "cancel_selected", "_selected_action": selected, "index": "0"},
        follow=True,
    )

    assert messages_of(response) == [
        "Canceled 2 commands.",
        "1 command was no longer pending and was left as it is.",
    ]
    statuses = dict(RemoteCommand.objects.values_list("device__serial", "status").filter(batch=None))
    assert statuses == {"CM2K-A00001": "canceled", "CM2K-B00001": "pending"}


def test_the_command_list_filters_by_batch(login, world):
    response = login(Role.VIEWER).get(changelist(RemoteCommand), {"batch": world.batch.pk})

    assert {c.device_id for c in response.context["cl"].result_list} == {world.lobby.pk, world.station.pk}


def test_a_batch_counts_its_commands_per_state_live(login, world):
    RemoteCommand.objects.filter(batch=world.batch, device=world.station).update(status=CommandStatus.FAILED)
    client = login(Role.VIEWER)

    page = client.get(url(world.batch)).content.decode()
    counts = client.get(reverse("admin:operations_commandbatch_counts", args=[world.batch.pk])).json()

    assert f'data-live="batch" data-batch-id="{world.batch.pk}"' in page
    assert counts["total"] == 2 and counts["counts"]["pending"] == 1 and counts["counts"]["failed"] == 1


def test_ops_retry_a_batchs_failed_commands_and_cancel_its_pending_ones(login, world):
    RemoteCommand.objects.filter(batch=world.batch, device=world.station).update(status=CommandStatus.FAILED)
    client = login(Role.OPS)

    retried = client.post(url(world.batch, "retry_failed_commands"), SUBMITTED, follow=True)
    canceled = client.post(url(world.batch, "cancel_pending_commands"), SUBMITTED, follow=True)

    assert messages_of(retried) == ["Sending 1 command again."]
    assert messages_of(canceled) == ["Canceled 2 pending commands."]
    assert set(world.batch.commands.values_list("status", flat=True)) == {CommandStatus.CANCELED}


def test_a_batch_reaching_another_merchants_machines_is_not_theirs_to_retry(login, world):
    RemoteCommand.objects.filter(batch=world.b_batch).update(batch=world.batch, status=CommandStatus.FAILED)

    response = login(Role.OPS).post(url(world.batch, "retry_failed_commands"), SUBMITTED)

    assert response.status_code == 403
    assert RemoteCommand.objects.get(device=world.rival, batch=world.batch).status == CommandStatus.FAILED


@pytest.mark.parametrize("action", ["retry_failed_commands", "cancel_pending_commands"])
def test_a_viewer_cannot_act_on_a_batch(login, world, action):
    response = login(Role.VIEWER).post(url(world.batch, action), SUBMITTED)

    assert response.status_code == 403
    assert set(world.batch.commands.values_list("status", flat=True)) == {CommandStatus.PENDING}


# --- Alarms -----------------------------------------------------------------------------------------------


def test_ops_acknowledge_an_alarm(login, world):
    client = login(Role.OPS)

    response = client.post(url(world.offline, "acknowledge"), SUBMITTED, follow=True)

    alarm = Alarm.objects.get(pk=world.offline.pk)
    assert messages_of(response) == ["Alarm acknowledged."]
    assert alarm.acknowledged_by == client.user and alarm.acknowledged_at is not None and alarm.is_active


def test_ops_acknowledge_the_selected_alarms_of_their_merchant_only(login, world):
    client = login(Role.OPS)
    selected = [world.offline.pk, world.low.pk, world.b_alarm.pk]

    response = client.post(
        changelist(Alarm),
        {"action": "acknowledge_selected", "_selected_action": selected, "index": "0"},
        follow=True,
    )

    assert messages_of(response) == ["Acknowledged 2 alarms."]
    acknowledged = set(Alarm.objects.filter(acknowledged_by=client.user).values_list("pk", flat=True))
    assert acknowledged == {world.offline.pk, world.low.pk}
    assert Alarm.objects.get(pk=world.b_alarm.pk).acknowledged_at is None


def test_ops_clear_an_alarm_by_hand_with_a_reason(login, world):
    client = login(Role.OPS)

    response = client.post(url(world.low, "clear"), {**SUBMITTED, "reason": "Refilled by hand"}, follow=True)
    again = client.post(url(world.low, "clear"), {**SUBMITTED, "reason": "twice"})

    alarm = Alarm.objects.get(pk=world.low.pk)
    assert messages_of(response) == ["Alarm cleared."]
    assert (alarm.is_active, alarm.cleared_by, alarm.clear_reason) == (False, client.user, "Refilled by hand")
    assert "The alarm is already cleared." in again.content.decode()


def test_a_viewer_cannot_acknowledge_or_clear_alarms(login, world):
    client = login(Role.VIEWER)

    page = client.get(url(world.offline)).content.decode()
    listing = client.get(changelist(Alarm))
    acknowledge = client.post(url(world.offline, "acknowledge"), SUBMITTED)
    clear = client.post(url(world.offline, "clear"), {**SUBMITTED, "reason": "x"})

    assert url(world.offline, "acknowledge") not in page and url(world.offline, "clear") not in page
    assert listing.context["action_form"] is None
    assert (acknowledge.status_code, clear.status_code) == (403, 403)
    alarm = Alarm.objects.get(pk=world.offline.pk)
    assert alarm.acknowledged_at is None and alarm.is_active


def test_alarms_filter_by_acknowledgement_and_severity(login, world):
    alarms.acknowledge_alarm(world.low, user=None)
    client = login(Role.VIEWER)

    open_ones = client.get(changelist(Alarm), {"acknowledged": "no"}).context["cl"].result_list
    warnings = client.get(changelist(Alarm), {"severity__exact": "warning"}).context["cl"].result_list

    assert [a.pk for a in open_ones] == [world.offline.pk]
    assert [a.pk for a in warnings] == [world.low.pk]


def test_the_alarm_list_opens_on_what_is_wrong_now(login, world):
    """Active alarms only, unacknowledged first, the most severe first; cleared ones a filter away."""
    station = world.low.device
    info, _ = alarms.open_or_bump_alarm(
        station, AlarmType.TEMPERATURE_OUT_OF_RANGE, Severity.INFO, message="Cooling"
    )
    seen, _ = alarms.open_or_bump_alarm(station, AlarmType.OFFLINE, Severity.CRITICAL, message="Seen to")
    alarms.acknowledge_alarm(seen, user=None)
    gone, _ = alarms.open_or_bump_alarm(
        station, AlarmType.COMMAND_FAILED, Severity.CRITICAL, message="Was a fault"
    )
    alarms.clear_alarm_by_hand(gone, user=None, reason="Fixed")
    client = login(Role.VIEWER)

    def listed(**query):
        return [a.pk for a in client.get(changelist(Alarm), query).context["cl"].result_list]

    assert listed() == [world.offline.pk, world.low.pk, info.pk, seen.pk]
    assert listed(state="cleared") == [gone.pk]
    assert sorted(listed(state="all")) == sorted([world.offline.pk, world.low.pk, info.pk, seen.pk, gone.pk])


def test_the_sidebar_badge_counts_the_merchants_active_alarms(login, world):
    client = login(Role.VIEWER)

    counts = client.get(reverse("admin:operations_alarm_counts")).json()
    index = client.get(reverse("admin:index")).content.decode()

    assert counts == {"total": 2, "critical": 1, "warning": 1, "info": 0, "unacknowledged": 2}
    assert 'data-live="alarms"' in index
    assert 'data-severity="critical" data-count="1"' in index
    assert 'data-severity="warning" data-count="1"' in index
    assert 'data-acknowledge-url=""' in index  # a viewer's notice of a critical alarm offers no Acknowledge
    assert (
        'data-acknowledge-url="/api/v1/alarms/0/acknowledge"'
        in login(Role.OPS).get(reverse("admin:index")).content.decode()
    )


# --- Jobs -------------------------------------------------------------------------------------------------


def test_a_user_cancels_their_waiting_job(login, world):
    client = login(Role.VIEWER)
    job = TaskJob.objects.create(kind=TaskJob.Kind.ORDERS_EXPORT, created_by=client.user)

    page = client.get(url(job)).content.decode()
    response = client.post(url(job, "cancel"), SUBMITTED, follow=True)
    after = client.get(url(job)).content.decode()

    assert f'data-live="job" data-job-id="{job.pk}"' in page and url(job, "cancel") in page
    assert messages_of(response) == [f"Orders export #{job.pk} will stop."]
    assert TaskJob.objects.get(pk=job.pk).status == TaskJob.Status.CANCELED
    assert url(job, "cancel") not in after


def test_nobody_cancels_someone_elses_job(login, world):
    response = login(Role.ADMIN).post(url(world.b_job, "cancel"), SUBMITTED)

    assert response.status_code == 404
    assert TaskJob.objects.get(pk=world.b_job.pk).status == TaskJob.Status.PENDING


def test_a_job_has_no_file_before_it_succeeds(login, world):
    client = login(Role.VIEWER)
    job = TaskJob.objects.create(kind=TaskJob.Kind.ORDERS_EXPORT, created_by=client.user, progress=40)

    status = client.get(reverse("admin:operations_taskjob_status", args=[job.pk])).json()
    download = client.get(reverse("admin:operations_taskjob_download", args=[job.pk]))

    assert (status["status"], status["progress"], status["download_url"]) == ("pending", 40, None)
    assert download.status_code == 404


# --- Maintenance windows and notification channels ---------------------------------------------------------


def window_form(device, starts, ends):
    return {
        "device": device.pk,
        "starts_at_0": starts.strftime("%Y-%m-%d"),
        "starts_at_1": starts.strftime("%H:%M:%S"),
        "ends_at_0": ends.strftime("%Y-%m-%d"),
        "ends_at_1": ends.strftime("%H:%M:%S"),
        "reason": "Grinder swap",
    }


def test_ops_plan_a_maintenance_window_that_ends_after_it_starts(login, world):
    client = login(Role.OPS)
    start = timezone.now() + timedelta(days=1)

    backwards = client.post(
        reverse("admin:operations_maintenancewindow_add"),
        window_form(world.station, start, start - timedelta(hours=1)),
    )
    planned = client.post(
        reverse("admin:operations_maintenancewindow_add"),
        window_form(world.station, start, start + timedelta(hours=1)),
    )

    assert backwards.status_code == 200
    assert "The window must end after it starts." in backwards.content.decode()
    assert planned.status_code == 302
    assert MaintenanceWindow.objects.filter(device=world.station, reason="Grinder swap").count() == 1


def test_a_maintenance_window_cannot_be_planned_on_another_merchants_machine(login, world):
    start = timezone.now() + timedelta(days=1)

    response = login(Role.OPS).post(
        reverse("admin:operations_maintenancewindow_add"),
        window_form(world.rival, start, start + timedelta(hours=1)),
    )

    assert response.status_code == 200 and response.context["adminform"].form.errors["device"]
    assert not MaintenanceWindow.objects.filter(reason="Grinder swap").exists()


def test_the_maintenance_window_machine_picker_offers_only_the_merchants_machines(login, world):
    response = login(Role.OPS).get(
        reverse("admin:autocomplete"),
        {"app_label": "operations", "model_name": "maintenancewindow", "field_name": "device"},
    )

    assert {r["text"] for r in response.json()["results"]} == {"Lobby A", "CM2K-A00002"}


def test_an_admin_adds_a_notification_channel_for_their_merchant(login, world):
    client = login(Role.ADMIN)
    data = {
        "merchant": world.a.pk,
        "kind": "email",
        "min_severity": "critical",
        "is_active": "on",
        "language": "zh-hans",
    }

    form_page = client.get(reverse("admin:operations_notificationchannel_add")).content.decode()
    invalid = client.post(
        reverse("admin:operations_notificationchannel_add"), {**data, "target": "not-an-address"}
    )
    foreign = client.post(
        reverse("admin:operations_notificationchannel_add"),
        {**data, "merchant": world.b.pk, "target": "spy@brewco.example"},
    )
    added = client.post(
        reverse("admin:operations_notificationchannel_add"), {**data, "target": "boss@brewco.example"}
    )

    assert "Brew Co" in form_page and "Other Beans" not in form_page
    assert "Enter a valid e-mail address." in invalid.content.decode()
    assert foreign.status_code == 200 and foreign.context["adminform"].form.errors["merchant"]
    assert added.status_code == 302
    assert list(
        NotificationChannel.objects.filter(merchant=world.a)
        .values_list("target", flat=True)
        .order_by("target")
    ) == [
        "boss@brewco.example",
        "ops@brewco.example",
    ]


def test_a_webhook_secret_cannot_be_guessed_through_list_lookups(login, world):
    response = login(Role.ADMIN, platform=True).get(
        changelist(NotificationChannel), {"secret__startswith": "s"}
    )

    assert response.status_code == 400


def test_labels_for_live_updates_are_in_the_page(login, world):
    client = login(Role.VIEWER)

    content = client.get(url(world.command)).content.decode()

    labels = json.dumps({"pending": "Pending"})[1:-1]
    assert f'data-live="command" data-command-id="{world.command.pk}"' in content
    assert labels.replace('"', "&quot;") in content
