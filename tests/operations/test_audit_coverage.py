"""Every kind of change leaves its audit row, made the way people and machines make it: staff through
the API and the admin, machines with their token, operators on the command line. Each row says who (the
user or the machine), from where (source and address), what it touched and what changed.

`test_every_recorded_action_is_covered_here` keeps it that way: a new action in the code fails it until
a test here (or in test_audit.py) names it."""

import ast
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from accounts.models import Role, User
from audit import services as audit
from audit.models import OperationLog
from devices.models import Location
from inventory.models import Material, Refill
from operations.models import (
    Alarm,
    AlarmType,
    CommandBatch,
    CommandStatus,
    RemoteCommand,
    Severity,
    TaskJob,
)
from operations.services import alarms, claim_job, reclaim_stale_jobs
from orders.payments import RefundOutcome, _gateway_for
from tests.factories import DeviceBinFactory, DeviceFactory, LocationFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

STAFF_IP, MACHINE_IP = "10.1.2.3", "10.9.8.7"
ROOT = Path(__file__).resolve().parents[2]


def assert_audited(action, target, *, source, actor=None, device=None, ip=None, changes=None) -> OperationLog:
    """The latest row of `action` on `target`, checked: who, from where, and (a subset of) what changed.
    `target` is the object, or (type, id) once it is deleted."""
    target_type, target_id = (
        target if isinstance(target, tuple) else (target._meta.label_lower, str(target.pk))
    )
    found = OperationLog.objects.filter(action=action, target_type=target_type, target_id=target_id)
    row = found.latest("pk")
    assert (row.source, row.actor, row.device, row.ip_address) == (source, actor, device, ip), row.__dict__
    for key, value in (changes or {}).items():
        assert row.changes[key] == value, row.changes
    return row


def by(client, source="api") -> dict:
    """Who made a staff change, as `audited` checks it."""
    return {"source": source, "actor": client.user, "ip": STAFF_IP}


def by_machine(device) -> dict:
    return {"source": "machine", "device": device, "ip": MACHINE_IP}


def rows(action) -> int:
    return OperationLog.objects.filter(action=action).count()


@pytest.fixture
def as_role(staff_client, merchant):
    """as_role(role, platform=False) -> an APIClient of a fresh user of Brew Co, calling from STAFF_IP."""

    def make(role, platform=False):
        client = staff_client(role, is_platform_staff=True) if platform else staff_client(role, [merchant])
        client.defaults["REMOTE_ADDR"] = STAFF_IP
        return client

    return make


@pytest.fixture
def admin_site(make_user, merchant):
    """admin_site(role, platform=False) -> a logged-in admin client (force_login: axes refuses login())."""

    def make(role, platform=False):
        user = make_user(role, is_platform_staff=True) if platform else make_user(role, [merchant])
        client = Client(REMOTE_ADDR=STAFF_IP)
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def from_machine(machine):
    machine.defaults["REMOTE_ADDR"] = MACHINE_IP
    return machine


def change_url(obj, view="change"):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


SUBMITTED = {"_form_submitted": "True"}


# --- Machines, with their token -----------------------------------------------------------------------


def test_a_machine_registering_and_re_registering_is_recorded_as_that_machine(merchant):
    client = APIClient(REMOTE_ADDR=MACHINE_IP)
    body = {
        "serial": "CM2K-000777",
        "model": "CM-2000",
        "firmware": "1.4.2",
        "provisioning_secret": merchant.provisioning_secret,
    }
    assert client.post("/api/v1/devices/register", body, format="json").status_code == 201
    device = merchant.devices.get(serial="CM2K-000777")
    row = assert_audited(
        "device.registered",
        device,
        **by_machine(device),
        changes={"serial": "CM2K-000777", "firmware": "1.4.2"},
    )
    assert row.merchant_id == merchant.pk and "token" not in str(row.changes)

    client.post("/api/v1/devices/register", {**body, "firmware": "1.5.0"}, format="json")
    assert_audited("device.reregistered", device, **by_machine(device), changes={"firmware": "1.5.0"})


def test_a_materials_report_writes_its_refills_but_no_log_line(from_machine):
    """Bin levels are the machine's history, and its refills their own records: the operation log keeps
    what people and machines change, not every report."""
    device = from_machine.device
    reply = from_machine.post(
        f"/api/v1/devices/{device.pk}/materials/report",
        {
            "sent_at": "2026-11-24T08:15:00Z",
            "bins": [
                {"index": 1, "material": "BEAN-ARABICA", "remaining": 900, "capacity": 1000, "unit": "g"},
                {
                    "index": 2,
                    "material": "MILK-POWDER",
                    "remaining": 500,
                    "capacity": 500,
                    "unit": "g",
                    "refilled": True,
                },
            ],
        },
        format="json",
    )
    assert reply.status_code == 200, reply.content
    assert list(Refill.objects.filter(device=device).values_list("bin_index", "source")) == [(2, "machine")]
    assert not OperationLog.objects.filter(device=device).exclude(action__startswith="device.registered")


def test_command_results_are_recorded_as_the_machine_and_sales_are_not(from_machine, as_role, order_body):
    """Orders are their own record: a log line per sale would bury people's changes under thousands of
    machine events."""
    device = from_machine.device
    from_machine.post(
        f"/api/v1/devices/{device.pk}/orders/create", {"orders": [order_body("AU-7")]}, format="json"
    )
    from_machine.post(f"/api/v1/devices/{device.pk}/orders/create", order_body("AU-8"), format="json")
    assert device.orders.count() == 2
    assert not OperationLog.objects.filter(action__startswith="orders.")

    sent = as_role(Role.OPS).post(
        f"/api/v1/devices/{device.pk}/commands", {"type": "unlock", "payload": {}}, format="json"
    )
    command = RemoteCommand.objects.get(pk=sent.json()["data"]["command_id"])
    from_machine.post(
        f"/api/v1/devices/{device.pk}/commands/{command.pk}/result", {"status": "failed"}, format="json"
    )
    assert_audited(
        "command.result", command, **by_machine(device), changes={"reported": "failed", "status": "failed"}
    )


# --- Staff through the API ------------------------------------------------------------------------------


def test_machine_tokens_rotated_and_revoked_through_the_api_are_recorded(registered, as_role):
    ops = as_role(Role.OPS)
    device = registered.device
    token = ops.post(f"/api/v1/devices/{device.pk}/rotate-token").json()["data"]["token"]
    assert_audited("device.token_rotated", device, **by(ops), changes={"token_prefix": "***"})
    assert token not in str(OperationLog.objects.values_list("changes", flat=True))

    ops.post(f"/api/v1/devices/{device.pk}/revoke-token")
    assert_audited("device.token_revoked", device, **by(ops), changes={"revoked": 1})


def test_a_merchant_edited_through_the_api_is_recorded_with_before_and_after(merchant, as_role):
    admin = as_role(Role.ADMIN)
    merchant.contact_name = "Li Wei"
    merchant.save()
    reply = admin.patch(f"/api/v1/merchants/{merchant.pk}", {"contact_name": "Wang Fang"}, format="json")
    assert reply.status_code == 200, reply.content
    row = assert_audited(
        "merchant.updated", merchant, **by(admin), changes={"contact_name": ["Li Wei", "Wang Fang"]}
    )
    assert row.merchant_id == merchant.pk and set(row.changes) == {"contact_name"}


def test_locations_added_edited_and_deleted_through_the_api_are_recorded(merchant, as_role):
    admin = as_role(Role.ADMIN)
    created = admin.post(
        "/api/v1/locations",
        {"merchant_id": merchant.pk, "name": "Harbour Hall", "city": "Shanghai"},
        format="json",
    )
    assert created.status_code == 201, created.content
    location = Location.objects.get(pk=created.json()["data"]["id"])
    assert_audited(
        "location.created", location, **by(admin), changes={"name": "Harbour Hall", "city": "Shanghai"}
    )

    admin.patch(f"/api/v1/locations/{location.pk}", {"name": "Harbour Hall 2F"}, format="json")
    assert_audited(
        "location.updated", location, **by(admin), changes={"name": ["Harbour Hall", "Harbour Hall 2F"]}
    )

    target = ("devices.location", str(location.pk))
    assert admin.delete(f"/api/v1/locations/{location.pk}").status_code == 204
    row = assert_audited("location.deleted", target, **by(admin), changes={"city": "Shanghai"})
    assert (row.merchant_id, row.target_repr) == (merchant.pk, "Harbour Hall 2F")


def test_materials_created_edited_disabled_and_imported_through_the_api_are_recorded(merchant, as_role):
    ops = as_role(Role.OPS)
    body = {"code": "OAT-MILK", "name": "Oat milk", "kind": "milk", "unit": "ml"}
    created = ops.post("/api/v1/materials", body, format="json").json()["data"]
    material = Material.objects.get(pk=created["id"])
    row = assert_audited("material.created", material, **by(ops), changes={"code": "OAT-MILK", "unit": "ml"})
    assert row.merchant_id == merchant.pk

    ops.patch(f"/api/v1/materials/{material.pk}", {"low_threshold_pct": 30}, format="json")
    assert_audited("material.updated", material, **by(ops), changes={"low_threshold_pct": ["15", "30"]})
    ops.post(f"/api/v1/materials/{material.pk}/disable")
    assert_audited("material.disabled", material, **by(ops))
    ops.post(f"/api/v1/materials/{material.pk}/enable")
    assert_audited("material.enabled", material, **by(ops))

    sheet = b"code,name,kind,unit\nOAT-MILK,Oat drink,milk,ml\nSOY-MILK,Soy milk,milk,ml\n"
    ops.post(
        "/api/v1/materials/import",
        {"file": SimpleUploadedFile("materials.csv", sheet)},
        format="multipart",
    )
    assert_audited("material.imported", material, **by(ops), changes={"row": 1, "status": "updated"})
    soy = Material.objects.get(merchant=merchant, code="SOY-MILK")
    assert_audited("material.imported", soy, **by(ops), changes={"row": 2, "status": "new"})


def test_a_command_sent_and_canceled_through_the_api_is_recorded(registered, as_role):
    ops = as_role(Role.OPS)
    device = registered.device
    sent = ops.post(
        f"/api/v1/devices/{device.pk}/commands", {"type": "unlock", "payload": {}}, format="json"
    ).json()["data"]
    command = RemoteCommand.objects.get(pk=sent["command_id"])
    assert_audited("command.sent", command, **by(ops), changes={"type": "unlock"})

    ops.post(f"/api/v1/commands/{command.pk}/cancel")
    row = assert_audited(
        "command.canceled", command, **by(ops), changes={"type": "unlock", "status": ["pending", "canceled"]}
    )
    assert row.merchant_id == device.merchant_id


def test_a_batch_created_retried_and_canceled_through_the_api_is_recorded(merchant, as_role):
    ops = as_role(Role.OPS)
    failing, waiting = DeviceFactory(merchant=merchant), DeviceFactory(merchant=merchant)
    reply = ops.post(
        "/api/v1/commands/batches",
        {"type": "unlock", "payload": {}, "device_ids": [failing.pk, waiting.pk]},
        format="json",
    )
    assert reply.json()["ok"], reply.content
    batch = CommandBatch.objects.get(pk=reply.json()["data"]["id"])
    assert_audited("batch.created", batch, **by(ops), changes={"type": "unlock", "machines": 2})

    # The batch's commands as they stand once one machine failed and the other has not called yet.
    now = timezone.now()
    for device, status in ((failing, CommandStatus.FAILED), (waiting, CommandStatus.PENDING)):
        RemoteCommand.objects.update_or_create(
            batch=batch,
            device=device,
            defaults={
                "type": "unlock",
                "payload": {},
                "status": status,
                "next_attempt_at": now,
                "expires_at": now + timedelta(hours=1),
            },
        )
    ops.post(f"/api/v1/commands/batches/{batch.pk}/retry_failed")
    assert_audited("batch.failed_retried", batch, **by(ops), changes={"retried": 1})

    ops.post(f"/api/v1/commands/batches/{batch.pk}/cancel_pending")
    assert_audited("batch.pending_canceled", batch, **by(ops), changes={"canceled": 2})


def test_alarms_acknowledged_and_cleared_through_the_api_are_recorded(registered, as_role):
    ops = as_role(Role.OPS)
    alarm, _ = alarms.open_or_bump_alarm(registered.device, AlarmType.OFFLINE, Severity.CRITICAL)
    ops.post(f"/api/v1/alarms/{alarm.pk}/acknowledge")
    assert_audited(
        "alarm.acknowledged", alarm, **by(ops), changes={"type": "offline", "severity": "critical"}
    )

    ops.post(f"/api/v1/alarms/{alarm.pk}/clear", {"reason": "power restored"}, format="json")
    assert_audited("alarm.cleared", alarm, **by(ops), changes={"reason": "power restored"})
    assert not Alarm.objects.get(pk=alarm.pk).is_active


class RefusingGateway:
    def refund(self, *, order, amount, reason):
        return RefundOutcome(succeeded=False, failure_reason="NOTENOUGH")


@pytest.fixture
def refusing_gateway(settings):
    settings.PAYMENT_GATEWAY = f"{__name__}.RefusingGateway"
    _gateway_for.cache_clear()
    yield
    _gateway_for.cache_clear()


@pytest.fixture
def paid_order(merchant):
    return OrderFactory(
        device=DeviceFactory(merchant=merchant), total=Decimal("36.00"), payment_status="paid"
    )


def test_refunds_and_exceptions_through_the_api_are_recorded(paid_order, as_role):
    ops = as_role(Role.OPS)
    url = f"/api/v1/orders/{paid_order.pk}"
    ops.post(f"{url}/manual_refund", {"reason": "cold", "amount": "6.00"}, format="json")
    assert_audited(
        "order.refunded",
        paid_order,
        **by(ops),
        changes={"amount": "6.00", "reason": "cold", "payment_status": "partially_refunded"},
    )
    ops.post(f"{url}/mark_exception", {"reason": "no cup"}, format="json")
    assert_audited("order.exception_marked", paid_order, **by(ops), changes={"reason": "no cup"})
    ops.post(f"{url}/resolve_exception", {"resolution": "refunded by hand"}, format="json")
    assert_audited(
        "order.exception_resolved", paid_order, **by(ops), changes={"resolution": "refunded by hand"}
    )


def test_a_refund_the_provider_refuses_is_recorded_as_failed(paid_order, as_role, refusing_gateway):
    ops = as_role(Role.OPS)
    ops.post(f"/api/v1/orders/{paid_order.pk}/manual_refund", {"reason": "cold"}, format="json")
    assert_audited(
        "order.refund_failed",
        paid_order,
        **by(ops),
        changes={"amount": "36.00", "payment_status": "refund_failed"},
    )
    assert rows("order.refunded") == 0


def test_an_export_started_and_canceled_through_the_api_is_recorded(as_role, merchant):
    viewer = as_role(Role.VIEWER)
    reply = viewer.post("/api/v1/orders/export?payment_method=wechat")
    assert reply.status_code == 202, reply.content
    job = TaskJob.objects.get(pk=reply.json()["data"]["id"])
    assert_audited(
        "job.created", job, **by(viewer), changes={"kind": job.kind, "params": {"payment_method": "wechat"}}
    )
    viewer.post(f"/api/v1/jobs/{job.pk}/cancel")
    canceled = assert_audited("job.canceled", job, **by(viewer), changes={"status": "canceled"})
    # The creator belongs to one merchant: its Admins see the job in their audit trail.
    assert (
        {row.merchant_id for row in OperationLog.objects.filter(target_id=str(job.pk))}
        == {canceled.merchant_id}
        == {merchant.pk}
    )


def test_a_job_that_kept_losing_its_worker_is_recorded_as_failed_by_the_system(as_role, merchant, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    viewer = as_role(Role.VIEWER)
    job = TaskJob.objects.get(pk=viewer.post("/api/v1/orders/export").json()["data"]["id"])
    claim_job(job.pk)
    TaskJob.objects.filter(pk=job.pk).update(beat_at=timezone.now() - timedelta(hours=1))
    reclaim_stale_jobs(enqueue=lambda stalled: None)
    job.refresh_from_db()
    failed = assert_audited("job.failed", job, source="system", changes={"error": job.error})
    assert failed.merchant_id == merchant.pk


def test_a_platform_users_export_is_recorded_as_the_platforms(as_role):
    platform = as_role(Role.ADMIN, platform=True)
    job = TaskJob.objects.get(pk=platform.post("/api/v1/orders/export").json()["data"]["id"])

    assert assert_audited("job.created", job, **by(platform)).merchant_id is None


# --- Staff in the admin -------------------------------------------------------------------------------


def test_machine_tokens_rotated_and_revoked_in_the_admin_are_recorded(registered, admin_site):
    client = admin_site(Role.OPS)
    device = registered.device
    assert client.post(change_url(device, "rotate_token"), SUBMITTED).status_code == 302
    assert_audited("device.token_rotated", device, **by(client, "admin"))
    assert client.post(change_url(device, "revoke_token"), SUBMITTED).status_code == 302
    assert_audited("device.token_revoked", device, **by(client, "admin"), changes={"revoked": 1})


def test_a_machines_settings_changed_in_the_admin_are_recorded(merchant, admin_site):
    client = admin_site(Role.ADMIN)
    device = DeviceFactory(merchant=merchant, alias="Lobby A")
    form = {
        "alias": "Hall B",
        "location": "",
        "offline_timeout_s": "",
        "bins-TOTAL_FORMS": 0,
        "bins-INITIAL_FORMS": 0,
        "bins-MIN_NUM_FORMS": 0,
        "bins-MAX_NUM_FORMS": 1000,
    }
    response = client.post(change_url(device), form)
    assert response.status_code == 302, response.content[:2000]
    assert_audited("device.updated", device, **by(client, "admin"), changes={"alias": ["Lobby A", "Hall B"]})
    assert_audited("admin.changed", device, **by(client, "admin"))


def test_a_bins_threshold_changed_in_the_admin_and_a_refill_through_the_api_are_recorded(
    merchant, admin_site, as_role
):
    client = admin_site(Role.OPS)
    bin_ = DeviceBinFactory(device=DeviceFactory(merchant=merchant), index=1, remaining=100, level_pct=10)
    url = reverse("admin:inventory_bin_change_threshold", args=[bin_.pk])
    response = client.post(url, {**SUBMITTED, "low_threshold_pct": 35})
    assert response.status_code in (200, 302), response.content[:2000]
    row = assert_audited(
        "bin.threshold_changed", bin_, **by(client, "admin"), changes={"low_threshold_pct": ["15.0", "35.0"]}
    )
    assert row.merchant_id == merchant.pk

    ops = as_role(Role.OPS)
    ops.post(f"/api/v1/bins/{bin_.pk}/refill", {"amount": 500}, format="json")
    assert_audited(
        "bin.refilled", bin_, **by(ops), changes={"amount": "500.0", "remaining": ["100.0", "600.0"]}
    )


def test_a_merchants_secret_rotated_in_the_admin_and_on_the_command_line_is_recorded(merchant, admin_site):
    client = admin_site(Role.ADMIN)
    client.post(change_url(merchant, "rotate_provisioning_secret"), SUBMITTED)
    row = assert_audited("merchant.secret_rotated", merchant, **by(client, "admin"))
    assert row.merchant_id == merchant.pk

    call_command("provisioning-secret", merchant.name, "--rotate", stdout=io.StringIO())
    assert_audited("merchant.secret_rotated", merchant, source="system")
    assert rows("merchant.secret_rotated") == 2


def test_users_added_given_merchants_and_new_passwords_in_the_admin_are_recorded(
    merchant, other_merchant, admin_site
):
    client = admin_site(Role.ADMIN, platform=True)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "new.ops@brewco.example",
            "name": "New Ops",
            "password1": "Xq7!long-password",
            "password2": "Xq7!long-password",
            "usable_password": "true",
            "role": Role.OPS,
            "merchants": [merchant.pk],
        },
    )
    assert response.status_code == 302, response.content[:3000]
    user = User.objects.get(email="new.ops@brewco.example")
    assert_audited("admin.added", user, **by(client, "admin"))
    granted = assert_audited(
        "user.merchant_granted", user, **by(client, "admin"), changes={"merchant": "Brew Co"}
    )
    assert granted.merchant_id == merchant.pk

    change = dict(
        email=user.email, name=user.name, role=Role.OPS, merchants=[other_merchant.pk], is_active="on"
    )
    assert client.post(change_url(user), change).status_code == 302
    revoked = assert_audited(
        "user.merchant_revoked", user, **by(client, "admin"), changes={"merchant": "Brew Co"}
    )
    assert revoked.merchant_id == merchant.pk

    password = reverse("admin:auth_user_password_change", args=[user.pk])
    new_password = {
        "password1": "Yz8!other-password",
        "password2": "Yz8!other-password",
        "usable_password": "true",
    }
    assert client.post(password, new_password).status_code == 302
    row = assert_audited("admin.changed", user, **by(client, "admin"))
    assert "password" in row.changes["message"].lower()
    assert "Yz8" not in str(row.changes)


def test_several_objects_deleted_at_once_in_the_admin_each_leave_a_row(merchant, admin_site):
    client = admin_site(Role.ADMIN)
    first = LocationFactory(merchant=merchant, name="Pier 1")
    second = LocationFactory(merchant=merchant, name="Pier 2")
    response = client.post(
        reverse("admin:devices_location_changelist"),
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Location.objects.filter(pk__in=[first.pk, second.pk]).exists()
    deleted = OperationLog.objects.filter(action="admin.deleted").order_by("target_repr")
    assert [(r.target_repr, r.merchant_id, r.actor, r.source, r.ip_address) for r in deleted] == [
        ("Pier 1", merchant.pk, client.user, "admin", STAFF_IP),
        ("Pier 2", merchant.pk, client.user, "admin", STAFF_IP),
    ]


def test_every_material_of_a_csv_import_leaves_a_row(materials, admin_site):
    client = admin_site(Role.OPS)
    csv = b"code,name,kind,unit,enabled\nOAT-MILK,Oat milk,milk,ml,1\nSOY-MILK,Soy milk,milk,ml,1\n"
    uploaded = client.post(
        reverse("admin:inventory_material_import"),
        {"format": "0", "import_file": SimpleUploadedFile("materials.csv", csv, content_type="text/csv")},
    )
    job = client.get(uploaded["Location"]).context["job"]
    done = client.post(reverse("admin:inventory_material_confirm_import_job", args=[job.pk]))
    assert done.status_code == 302
    for row, code in enumerate(("OAT-MILK", "SOY-MILK"), 1):
        material, imported = Material.objects.get(code=code), {"row": row, "status": "new"}
        assert_audited("material.imported", material, **by(client, "admin"), changes=imported)


def test_periodic_tasks_switched_on_and_off_from_the_list_are_recorded(admin_site):
    client = admin_site(Role.ADMIN, platform=True)
    task = PeriodicTask.objects.filter(enabled=True).first()
    changelist = reverse("admin:django_celery_beat_periodictask_changelist")
    client.post(changelist, {"action": "disable_tasks", "_selected_action": [task.pk]})
    assert not PeriodicTask.objects.get(pk=task.pk).enabled
    row = assert_audited("admin.changed", task, **by(client, "admin"))
    assert row.changes == {"message": "Disabled."}

    client.post(changelist, {"action": "toggle_tasks", "_selected_action": [task.pk]})
    assert PeriodicTask.objects.get(pk=task.pk).enabled
    assert assert_audited("admin.changed", task, **by(client, "admin")).changes == {"message": "Enabled."}


# --- Operators on the command line ----------------------------------------------------------------------


def test_users_created_and_updated_on_the_command_line_are_recorded(merchant):
    out = io.StringIO()
    arguments = ["--email", "cli@brewco.example", "--password", "Cli12345!", "--merchant", merchant.name]
    call_command("create-user", *arguments, "--role", "ops", stdout=out)
    user = User.objects.get(email="cli@brewco.example")
    row = assert_audited(
        "user.created", user, source="system", changes={"role": "ops", "merchants": [merchant.pk]}
    )
    assert "password" not in row.changes

    call_command("create-user", *arguments, "--role", "viewer", stdout=out)
    assert_audited("user.updated", user, source="system", changes={"role": "viewer"})


# --- Nothing recorded goes untested ---------------------------------------------------------------------


def literal_strings(node) -> set[str]:
    """The action names an `audit.record(...)` first argument can take (a literal or a choice of two)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return literal_strings(node.body) | literal_strings(node.orelse)
    return set()


def recorded_actions() -> set[str]:
    actions = set(audit.ADMIN_ACTIONS.values())
    for path in ROOT.glob("*/**/*.py"):
        if path.parts[len(ROOT.parts)] in {".venv", "tests", "bench", "node_modules"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "record"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "audit"
                and node.args
            ):
                names = literal_strings(node.args[0])
                assert names, f"{path}:{node.lineno}: name the audit action with a string literal"
                actions |= names
    return actions


def test_every_recorded_action_is_covered_here():
    """Static, on purpose: an action counts as covered when an audit test names it as a string."""
    named = set()
    for path in Path(__file__).parent.glob("test_audit*.py"):
        named |= {
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    actions = recorded_actions()
    assert {"device.registered", "order.refunded", "admin.deleted"} <= actions  # the scan finds them
    assert sorted(actions - named) == []
