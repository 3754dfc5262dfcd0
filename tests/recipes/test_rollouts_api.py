"""The rollouts' staff API: start one on chosen or filtered machines, follow its stages, act on it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from recipes.models import Rollout
from tests.factories import DeviceFactory, LocationFactory
from tests.recipes.test_rollouts import package

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture
def ops(staff_client, merchant):
    return staff_client(Role.OPS, merchants=[merchant])


@pytest.fixture
def built(merchant):
    return package(merchant, "2026.12.1")


@pytest.fixture
def lobby_fleet(merchant):
    lobby = LocationFactory(merchant=merchant, name="Lobby")
    return lobby, [DeviceFactory(merchant=merchant, location=lobby) for _ in range(5)]


def test_ops_start_a_rollout_on_filtered_machines_and_follow_its_stages(ops, built, lobby_fleet):
    lobby, devices = lobby_fleet
    DeviceFactory(merchant=built.merchant)  # elsewhere: not chosen

    reply = ops.post(
        "/api/v1/rollouts",
        {
            "package_id": built.pk,
            "filter": {"location": lobby.pk},
            "canary": {"count": 1},
            "wave": {"percent": 50},
        },
        format="json",
    )

    assert reply.status_code == 201, reply.content
    body = reply.json()["data"]
    assert (body["status"], body["package_version"], body["created_by"]) == (
        "running",
        "2026.12.1",
        ops.user.email,
    )
    assert [(s["index"], s["status"], s["total"], s["offered"]) for s in body["stages"]] == [
        (0, "active", 1, 1),
        (1, "waiting", 3, 0),
        (2, "waiting", 1, 0),
    ]
    machines = ops.get(f"/api/v1/rollouts/{body['id']}/machines").json()["data"]["results"]
    assert sorted(m["device_id"] for m in machines) == sorted(d.pk for d in devices)


def test_a_rollout_acts_only_in_the_state_that_allows_it(ops, built, lobby_fleet, expect_api_error):
    _lobby, devices = lobby_fleet
    created = ops.post(
        "/api/v1/rollouts",
        {"package_id": built.pk, "device_ids": [devices[0].pk], "canary": {"count": 1}},
        format="json",
    ).json()["data"]
    url = f"/api/v1/rollouts/{created['id']}"

    expect_api_error(ops.post(f"{url}/approve"), 409, "CONFLICT")
    assert ops.post(f"{url}/pause").json()["data"]["status"] == "paused"
    assert ops.post(f"{url}/resume").json()["data"]["status"] == "running"
    assert ops.post(f"{url}/abort").json()["data"]["status"] == "aborted"
    expect_api_error(ops.post(f"{url}/abort"), 409, "CONFLICT")
    expect_api_error(ops.post(f"{url}/rollback"), 409, "CONFLICT")  # nothing to roll back to


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"canary": {"count": 1}}, "device_ids"),
        ({"device_ids": [1], "canary": {"count": 1, "percent": 5}}, "canary"),
        ({"device_ids": [1], "canary": {"percent": 0}}, "canary"),
        ({"device_ids": [1], "canary": {"count": 1}, "failure_threshold_pct": 0}, "failure_threshold_pct"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(ops, built, expect_api_error, body, field):
    error = expect_api_error(
        ops.post("/api/v1/rollouts", {"package_id": built.pk, **body}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert any(name.startswith(field) for name in error["details"]["fields"]), error
    assert not Rollout.objects.exists()


def test_nobody_rolls_out_another_merchants_package_or_to_its_machines(
    staff_client, ops, merchant, other_merchant, built, lobby_fleet, expect_api_error
):
    theirs = package(other_merchant, "9.9")
    their_device = DeviceFactory(merchant=other_merchant)
    _lobby, devices = lobby_fleet

    expect_api_error(
        ops.post(
            "/api/v1/rollouts",
            {"package_id": theirs.pk, "device_ids": [devices[0].pk], "canary": {"count": 1}},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    expect_api_error(
        ops.post(
            "/api/v1/rollouts",
            {"package_id": built.pk, "device_ids": [their_device.pk], "canary": {"count": 1}},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    expect_api_error(
        viewer.post(
            "/api/v1/rollouts",
            {"package_id": built.pk, "device_ids": [devices[0].pk], "canary": {"count": 1}},
            format="json",
        ),
        403,
        "FORBIDDEN",
    )
    assert not Rollout.objects.exists()


def test_the_list_runs_the_same_number_of_queries_for_1_or_6_rollouts(
    staff_client, ops, merchant, lobby_fleet
):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    _lobby, devices = lobby_fleet

    def start(n):
        for i in range(n):
            built = package(merchant, f"2027.{len(Rollout.objects.all())}.{i}")
            assert (
                ops.post(
                    "/api/v1/rollouts",
                    {"package_id": built.pk, "device_ids": [d.pk for d in devices], "canary": {"count": 2}},
                    format="json",
                ).status_code
                == 201
            )

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert viewer.get("/api/v1/rollouts").status_code == 200
        return len(captured)

    start(1)
    queries()
    few = queries()
    start(5)
    assert queries() == few
    assert len(viewer.get("/api/v1/rollouts").json()["data"]["results"]) == 6
