"""Recipe packages through the staff API and the machine protocol: created as a build job (202),
listed and read within the caller's merchants, downloaded byte for byte by staff and by the merchant's
machines, and refused, naming the field, when they could not be built."""

import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from operations.models import TaskJob
from recipes.models import RecipePackage
from tests.factories import DeviceFactory
from tests.operations.batches import worker_at_commit
from tests.recipes.packages_fixtures import recipe_version, stored_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def ops(staff_client, merchant):
    return staff_client(Role.OPS, [merchant])


@pytest.fixture
def menu(merchant):
    return {
        "latte": recipe_version(merchant, "latte", number=3),
        "mocha": recipe_version(merchant, "mocha"),
    }


def body(*versions, **fields) -> dict:
    return {
        "version": "2026.11.4",
        "machine_models": ["CM-2000"],
        "min_firmware": "1.4.2",
        "recipe_versions": [v.pk for v in versions],
        **fields,
    }


def create(client, payload: dict, *, build=True):
    """POST the package; with `build`, its job runs at commit as the worker would run it."""
    if not build:
        return client.post("/api/v1/packages", payload, format="json")
    with worker_at_commit():
        return client.post("/api/v1/packages", payload, format="json")


@pytest.fixture
def package(ops, menu) -> RecipePackage:
    reply = create(ops, body(menu["mocha"], menu["latte"]))
    assert reply.status_code == 202, reply.content
    return RecipePackage.objects.get(pk=reply.json()["data"]["id"])


def test_creating_a_package_answers_202_with_its_build_job(ops, menu):
    reply = create(ops, body(menu["latte"]), build=False)

    assert reply.status_code == 202, reply.content
    data = reply.json()["data"]
    assert data["status"] == "building" and data["sha256"] == "" and data["download_url"] is None
    job = TaskJob.objects.get(pk=data["job"]["id"])
    assert job.kind == TaskJob.Kind.PACKAGE_BUILD and job.created_by == ops.user
    assert data["job"] == {
        "id": job.pk,
        "status": "pending",
        "progress": 0,
        "cancel_requested": False,
        "error": "",
    }
    assert [v["product_id"] for v in data["recipe_versions"]] == ["latte"]


def test_a_built_package_shows_its_versions_checksum_size_and_finished_job(ops, package, menu):
    data = ops.get(f"/api/v1/packages/{package.pk}").json()["data"]

    content = stored_bytes(package)
    assert data["status"] == "ready" and data["recipes"] == 2
    assert data["sha256"] == hashlib.sha256(content).hexdigest() and data["size"] == len(content)
    assert data["job"]["status"] == "succeeded" and data["job"]["progress"] == 100
    assert data["machine_models"] == ["CM-2000"] and data["min_firmware"] == "1.4.2"
    assert data["recipe_versions"] == [
        {"id": menu["latte"].pk, "recipe_id": menu["latte"].recipe_id, "product_id": "latte", "name": "Latte",
         "number": 3},
        {"id": menu["mocha"].pk, "recipe_id": menu["mocha"].recipe_id, "product_id": "mocha", "name": "Mocha",
         "number": 1},
    ]  # fmt: skip
    assert data["download_url"] == f"/api/v1/packages/{package.pk}/download"


def test_staff_download_the_exact_bytes_of_a_ready_package(ops, package):
    reply = ops.get(f"/api/v1/packages/{package.pk}/download")

    assert reply.status_code == 200
    assert reply.content == stored_bytes(package)
    assert reply["Content-Type"] == "application/json"
    assert reply["Content-Length"] == str(package.size)
    assert reply["X-Content-SHA256"] == package.sha256 and reply["ETag"] == f'"{package.sha256}"'
    assert reply["Content-Disposition"] == 'attachment; filename="package-2026.11.4.json"'


def test_a_machine_downloads_its_merchants_package_and_its_sha256_is_the_packages(machine, package):
    reply = machine.get(f"/api/v1/devices/{machine.device.pk}/packages/{package.pk}")

    assert reply.status_code == 200, reply.content
    assert hashlib.sha256(reply.content).hexdigest() == package.sha256
    assert reply["Content-Type"] == "application/json"
    assert int(reply["Content-Length"]) == len(reply.content) == package.size
    assert reply["X-Content-SHA256"] == package.sha256
    assert reply.json()["package_id"] == str(package.pk)  # the package itself, not in the envelope


def test_a_machine_gets_the_package_whatever_its_http_client_accepts(machine, package, expect_api_error):
    url = f"/api/v1/devices/{machine.device.pk}/packages/{package.pk}"
    for accept in ("application/octet-stream", "*/*", "text/plain"):
        reply = machine.get(url, HTTP_ACCEPT=accept)
        assert reply.status_code == 200 and reply.content == stored_bytes(package), accept
    missing = f"/api/v1/devices/{machine.device.pk}/packages/{package.pk + 1}"
    expect_api_error(machine.get(missing, HTTP_ACCEPT="application/octet-stream"), 404, "NOT_FOUND")


def test_a_package_that_is_not_ready_is_not_downloadable(ops, menu, machine, expect_api_error):
    reply = create(ops, body(menu["latte"]), build=False)
    package_id = reply.json()["data"]["id"]

    expect_api_error(ops.get(f"/api/v1/packages/{package_id}/download"), 404, "NOT_FOUND")
    expect_api_error(
        machine.get(f"/api/v1/devices/{machine.device.pk}/packages/{package_id}"), 404, "NOT_FOUND"
    )


def test_another_merchants_package_is_404_for_their_staff_and_their_machines(
    package, other_merchant, staff_client, machine_client, expect_api_error
):
    stranger = staff_client(Role.ADMIN, [other_merchant])
    their_machine = machine_client(DeviceFactory(merchant=other_merchant))

    expect_api_error(stranger.get(f"/api/v1/packages/{package.pk}"), 404, "NOT_FOUND")
    expect_api_error(stranger.get(f"/api/v1/packages/{package.pk}/download"), 404, "NOT_FOUND")
    assert stranger.get("/api/v1/packages").json()["data"]["count"] == 0
    expect_api_error(
        their_machine.get(f"/api/v1/devices/{their_machine.device.pk}/packages/{package.pk}"),
        404,
        "NOT_FOUND",
    )


def test_a_machine_asks_only_for_itself_and_never_for_a_package_that_is_not_a_number(
    machine, package, expect_api_error
):
    other = DeviceFactory(merchant=machine.device.merchant)
    expect_api_error(machine.get(f"/api/v1/devices/{other.pk}/packages/{package.pk}"), 403, "FORBIDDEN")
    for package_id in ("latest", str(2**63), "-1"):
        expect_api_error(
            machine.get(f"/api/v1/devices/{machine.device.pk}/packages/{package_id}"), 404, "NOT_FOUND"
        )
    anonymous = machine.__class__()
    reply = anonymous.get(f"/api/v1/devices/{machine.device.pk}/packages/{package.pk}")
    expect_api_error(reply, 401, "UNAUTHORIZED")


def versions_of(merchant, menu, refusal: str) -> list[int]:
    """The recipe versions of each way a choice is refused."""
    if refusal == "draft":
        return [recipe_version(merchant, "chai", published=False).pk]
    if refusal == "two of one product":
        return [menu["latte"].pk, recipe_version(merchant, "latte", number=4).pk]
    if refusal == "retired":
        return [recipe_version(merchant, "chai", retired=True).pk]
    return []


@pytest.mark.parametrize("refusal", ["draft", "two of one product", "retired", "none"])
def test_recipe_versions_that_cannot_go_together_are_a_400_naming_them(
    ops, merchant, menu, refusal, expect_api_error
):
    chosen = {"recipe_versions": versions_of(merchant, menu, refusal)}
    error = expect_api_error(create(ops, body(menu["latte"], **chosen)), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["recipe_versions"], error
    assert not RecipePackage.objects.exists() and not TaskJob.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("machine_models", []),
        ("machine_models", "CM-2000"),
        ("min_firmware", "1.4-beta"),
        ("version", ""),
    ],
)
def test_a_package_field_out_of_shape_is_a_400_naming_it(ops, menu, field, value, expect_api_error):
    error = expect_api_error(create(ops, body(menu["latte"], **{field: value})), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == [field], error
    assert not RecipePackage.objects.exists() and not TaskJob.objects.exists()


def test_another_merchants_recipe_version_is_unknown(ops, menu, other_merchant, expect_api_error):
    theirs = recipe_version(other_merchant, "espresso")
    error = expect_api_error(create(ops, body(menu["latte"], theirs)), 400, "VALIDATION_ERROR")

    assert error["details"]["fields"] == {
        "recipe_versions": [f"No recipe version {theirs.pk} of this merchant."]
    }
    assert not RecipePackage.objects.exists()


def test_platform_staff_name_the_merchant_and_only_one_they_may_see(
    merchant, menu, staff_client, other_merchant, expect_api_error
):
    platform = staff_client(Role.ADMIN, is_platform_staff=True)
    error = expect_api_error(create(platform, body(menu["latte"])), 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["merchant_id"]
    assert create(platform, body(menu["latte"], merchant_id=merchant.pk)).status_code == 202

    outsider = staff_client(Role.ADMIN, [other_merchant])
    error = expect_api_error(
        create(outsider, body(menu["latte"], merchant_id=merchant.pk, version="9")), 400, "VALIDATION_ERROR"
    )
    assert list(error["details"]["fields"]) == ["merchant_id"]


def test_a_duplicate_version_is_a_409_and_no_second_package(ops, package, menu, expect_api_error):
    error = expect_api_error(create(ops, body(menu["latte"])), 409, "CONFLICT")

    assert list(error["details"]["fields"]) == ["version"]
    assert RecipePackage.objects.count() == 1
    assert TaskJob.objects.filter(kind=TaskJob.Kind.PACKAGE_BUILD).count() == 1


def test_a_viewer_may_read_and_download_but_not_build(
    staff_client, merchant, package, menu, expect_api_error
):
    viewer = staff_client(Role.VIEWER, [merchant])

    expect_api_error(create(viewer, body(menu["latte"], version="2")), 403, "FORBIDDEN")
    expect_api_error(viewer.post(f"/api/v1/packages/{package.pk}/rebuild"), 403, "FORBIDDEN")
    assert viewer.get("/api/v1/packages").json()["data"]["count"] == 1
    assert viewer.get(f"/api/v1/packages/{package.pk}/download").status_code == 200
    assert RecipePackage.objects.count() == 1


def test_a_ready_package_cannot_be_changed_rebuilt_or_deleted(ops, package, expect_api_error):
    url = f"/api/v1/packages/{package.pk}"
    for method in (ops.patch, ops.put, ops.delete):
        assert method(url, {"version": "2"}, format="json").status_code == 405
    expect_api_error(ops.post(f"{url}/rebuild"), 409, "CONFLICT")

    package_before = package.sha256
    package.refresh_from_db()
    assert package.version == "2026.11.4" and package.sha256 == package_before


def test_a_canceled_build_is_started_over_with_rebuild(ops, menu):
    package_id = create(ops, body(menu["latte"]), build=False).json()["data"]["id"]
    job_id = RecipePackage.objects.get(pk=package_id).job_id
    assert ops.post(f"/api/v1/jobs/{job_id}/cancel").json()["data"]["status"] == "canceled"

    with worker_at_commit():
        reply = ops.post(f"/api/v1/packages/{package_id}/rebuild")
    assert reply.status_code == 202, reply.content
    data = ops.get(f"/api/v1/packages/{package_id}").json()["data"]
    assert data["status"] == "ready" and data["job"]["id"] != job_id


def test_the_list_filters_by_merchant_and_status(staff_client, merchant, other_merchant, package, menu):
    platform = staff_client(Role.ADMIN, is_platform_staff=True)
    theirs = recipe_version(other_merchant, "latte")
    create(platform, body(theirs, merchant_id=other_merchant.pk), build=False)

    def versions(**query):
        return [
            (p["merchant_id"], p["status"])
            for p in platform.get("/api/v1/packages", query).json()["data"]["results"]
        ]

    assert versions() == [(other_merchant.pk, "building"), (merchant.pk, "ready")]
    assert versions(merchant_id=merchant.pk) == [(merchant.pk, "ready")]
    assert versions(status="building") == [(other_merchant.pk, "building")]
    assert platform.get("/api/v1/packages", {"status": "done"}).status_code == 400


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_list_costs_the_same_queries_for_one_package_as_for_many(ops, merchant, package):
    queries_for(ops, "/api/v1/packages")  # warm: the user's merchants are cached after the first
    few = queries_for(ops, "/api/v1/packages")
    for n in range(5):
        create(ops, body(recipe_version(merchant, f"drink-{n}"), version=f"2026.12.{n}"))
    assert ops.get("/api/v1/packages").json()["data"]["count"] == 6
    assert queries_for(ops, "/api/v1/packages") == few
