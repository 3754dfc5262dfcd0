"""Rollouts in the admin: started from the machine list's selection, shown stage by stage, acted on."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from recipes.models import Rollout, RolloutMachine
from recipes.services import rollouts
from tests.factories import DeviceFactory
from tests.recipes.test_rollouts import package

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture
def login(make_user, merchant):
    def make(role):
        client = Client()
        client.force_login(make_user(role, merchants=[merchant]))
        return client

    return make


def start_from_the_machine_list(client, devices, **form):
    return client.post(
        reverse("admin:devices_device_changelist"),
        {
            "action": "roll_out_to_selected",
            "_selected_action": [d.pk for d in devices],
            "_form_submitted": "True",
            "canary": 1,
            "canary_kind": "count",
            "wave": "",
            "wave_kind": "percent",
            "success_threshold_pct": 90,
            "failure_threshold_pct": 20,
            "auto_advance": "on",
            **form,
        },
    )


def test_ops_roll_a_package_out_to_selected_machines_and_see_its_stages(login, merchant):
    built = package(merchant, "2026.12.5")
    devices = [DeviceFactory(merchant=merchant) for _ in range(3)]
    DeviceFactory(merchant=merchant, model="CM-9000")  # selected too, but the package is not for it
    client = login(Role.OPS)
    selected = [*devices, *merchant.devices.filter(model="CM-9000")]

    form_page = client.post(
        reverse("admin:devices_device_changelist"),
        {"action": "roll_out_to_selected", "_selected_action": [d.pk for d in selected]},
    )
    assert form_page.status_code == 200 and "2026.12.5" in form_page.content.decode()

    done = start_from_the_machine_list(client, selected, package=built.pk)

    rollout = Rollout.objects.get()
    assert done.status_code == 302 and done["Location"] == reverse(
        "admin:recipes_rollout_change", args=[rollout.pk]
    )
    assert rollout.machines.count() == 3
    page = client.get(done["Location"]).content.decode()
    assert 'data-live="rollout"' in page and "canary" in page and "wave 1" in page
    assert "Pause" in page and "Approve the next stage" not in page


def test_ops_pause_resume_and_abort_a_rollout_from_its_page(login, merchant):
    built = package(merchant, "2026.12.6")
    rollout = rollouts.start_rollout(
        package=built, devices=merchant.devices.all() | _machines(merchant, 2), canary={"count": 1}
    )
    client = login(Role.OPS)
    url = lambda name: reverse(f"admin:recipes_rollout_{name}", args=[rollout.pk])  # noqa: E731

    client.get(url("pause"))
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.PAUSED
    client.get(url("resume"))
    client.get(url("abort"))
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.ABORTED
    assert set(rollout.machines.values_list("status", flat=True)) == {RolloutMachine.Status.WITHDRAWN}
    refused = client.get(url("pause"), follow=True)
    assert "cannot be paused" in refused.content.decode()


def test_a_viewer_sees_rollouts_but_cannot_start_or_stop_one(login, merchant):
    built = package(merchant, "2026.12.7")
    rollout = rollouts.start_rollout(package=built, devices=_machines(merchant, 2), canary={"count": 1})
    client = login(Role.VIEWER)

    assert client.get(reverse("admin:recipes_rollout_change", args=[rollout.pk])).status_code == 200
    client.get(reverse("admin:recipes_rollout_abort", args=[rollout.pk]))
    start_from_the_machine_list(client, merchant.devices.all(), package=built.pk)

    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING and Rollout.objects.count() == 1


def test_another_merchants_rollout_is_not_found(login, merchant, other_merchant):
    theirs = package(other_merchant, "1.0")
    rollout = rollouts.start_rollout(
        package=theirs, devices=_machines(other_merchant, 1), canary={"count": 1}
    )

    client = login(Role.OPS)

    assert client.get(reverse("admin:recipes_rollout_change", args=[rollout.pk])).status_code in (302, 404)
    client.get(reverse("admin:recipes_rollout_abort", args=[rollout.pk]))
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING


def _machines(merchant, count):
    ids = [DeviceFactory(merchant=merchant).pk for _ in range(count)]
    return merchant.devices.filter(pk__in=ids)


def test_the_rollout_list_reads_progress_in_a_constant_number_of_queries(login, merchant):
    client = login(Role.OPS)
    url = reverse("admin:recipes_rollout_changelist")

    def started(count):
        for _ in range(count):
            built = package(merchant, f"2026.12.{20 + Rollout.objects.count()}")
            rollouts.start_rollout(package=built, devices=_machines(merchant, 2), canary={"count": 1})

    started(1)
    client.get(url)  # the first page of a session caches what later ones reuse
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    started(4)
    with CaptureQueriesContext(connection) as five:
        page = client.get(url).content.decode()

    assert page.count('class="cs-rollout-progress"') == 5
    assert len(five) == len(one), [q["sql"] for q in five.captured_queries]
