"""/api/v1/materials: each merchant's catalogue, read by every role, kept by Ops and Admins."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from inventory.models import Material
from tests.factories import MaterialFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

OAT_MILK = {
    "code": "OAT-MILK",
    "name": "燕麦奶 Oat milk",
    "kind": "milk",
    "unit": "ml",
    "density": "1.030",
    "pack_size": "1000",
}


def data(reply, status=200):
    assert reply.status_code == status, reply.content
    return reply.json()["data"]


def codes(reply):
    return [m["code"] for m in data(reply)["results"]]


@pytest.fixture
def catalogue(merchant, other_merchant):
    MaterialFactory(
        merchant=merchant, code="BEAN-ARABICA", name="Arabica", kind="bean", supplier="Yunnan Farms"
    )
    MaterialFactory(merchant=merchant, code="MILK-POWDER", name="Milk powder", kind="milk")
    MaterialFactory(merchant=merchant, code="WATER", name="Water", kind="water", unit="ml")
    MaterialFactory(
        merchant=merchant, code="OLD-SYRUP", name="Old syrup", kind="syrup", unit="ml", is_enabled=False
    )
    MaterialFactory(merchant=other_merchant, code="RIVAL-BEAN", name="Rival beans", kind="bean")


# --- Reading ---------------------------------------------------------------------------------------


def test_a_viewer_lists_their_merchants_materials_and_never_another_merchants(
    staff_client, merchant, catalogue
):
    reply = staff_client(Role.VIEWER, [merchant]).get("/api/v1/materials")

    assert codes(reply) == ["BEAN-ARABICA", "MILK-POWDER", "OLD-SYRUP", "WATER"]
    first = data(reply)["results"][0]
    assert first["merchant_id"] == merchant.pk and first["enabled"] is True
    assert first["low_threshold_pct"] == 15 and first["kind"] == "bean" and first["unit"] == "g"


def test_platform_staff_see_every_merchant_and_filter_by_one(staff_client, other_merchant, catalogue):
    client = staff_client(Role.VIEWER, is_platform_staff=True)

    assert len(codes(client.get("/api/v1/materials"))) == 5
    assert codes(client.get("/api/v1/materials", {"merchant_id": other_merchant.pk})) == ["RIVAL-BEAN"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "bean"}, ["BEAN-ARABICA"]),
        ({"unit": "ml"}, ["OLD-SYRUP", "WATER"]),
        ({"enabled": "false"}, ["OLD-SYRUP"]),
        ({"enabled": "true", "unit": "ml"}, ["WATER"]),
        ({"query": "yunnan"}, ["BEAN-ARABICA"]),
        ({"query": "powder"}, ["MILK-POWDER"]),
        ({"ordering": "-name"}, ["WATER", "OLD-SYRUP", "MILK-POWDER", "BEAN-ARABICA"]),
    ],
)
def test_the_list_filters_searches_and_sorts(staff_client, merchant, catalogue, params, expected):
    assert codes(staff_client(Role.VIEWER, [merchant]).get("/api/v1/materials", params)) == expected


@pytest.mark.parametrize(
    "params",
    [{"kind": "coffee"}, {"unit": "kg"}, {"merchant_id": "x"}, {"colour": "red"}],
)
def test_a_filter_that_means_nothing_is_a_400_naming_it(
    staff_client, merchant, catalogue, params, expect_api_error
):
    reply = staff_client(Role.VIEWER, [merchant]).get("/api/v1/materials", params)

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == list(params)


def test_another_merchants_material_is_not_found(staff_client, merchant, catalogue, expect_api_error):
    rival = Material.objects.get(code="RIVAL-BEAN")
    ops = staff_client(Role.OPS, [merchant])

    expect_api_error(ops.get(f"/api/v1/materials/{rival.pk}"), 404, "NOT_FOUND")
    expect_api_error(
        ops.patch(f"/api/v1/materials/{rival.pk}", {"name": "Mine"}, format="json"), 404, "NOT_FOUND"
    )
    expect_api_error(ops.post(f"/api/v1/materials/{rival.pk}/disable"), 404, "NOT_FOUND")
    rival.refresh_from_db()
    assert rival.name == "Rival beans" and rival.is_enabled


def test_the_list_runs_the_same_number_of_queries_for_3_or_40_materials(staff_client, merchant):
    def queries_to_list():
        client = staff_client(Role.VIEWER, [merchant])
        with CaptureQueriesContext(connection) as queries:
            reply = client.get("/api/v1/materials", {"page_size": 100})
        return len(queries), data(reply)["count"]

    MaterialFactory.create_batch(3, merchant=merchant)
    few = queries_to_list()
    MaterialFactory.create_batch(37, merchant=merchant)
    many = queries_to_list()

    assert (few[1], many[1]) == (3, 40)
    assert few[0] == many[0]


# --- Writing --------------------------------------------------------------------------------------


def test_ops_create_a_material_for_their_merchant_without_naming_it(staff_client, merchant):
    created = data(staff_client(Role.OPS, [merchant]).post("/api/v1/materials", OAT_MILK, format="json"), 201)

    assert created["merchant_id"] == merchant.pk and created["name"] == "燕麦奶 Oat milk"
    assert created["density"] == "1.030" and created["enabled"] is True and created["low_threshold_pct"] == 15
    assert created["pack_size"] == "1000.000"
    assert Material.objects.get(merchant=merchant, code="OAT-MILK").unit == "ml"


def test_platform_staff_must_say_which_merchant(staff_client, merchant, expect_api_error):
    admin = staff_client(Role.ADMIN, is_platform_staff=True)

    error = expect_api_error(
        admin.post("/api/v1/materials", OAT_MILK, format="json"), 400, "VALIDATION_ERROR"
    )
    assert list(error["details"]["fields"]) == ["merchant_id"]
    created = data(
        admin.post("/api/v1/materials", {**OAT_MILK, "merchant_id": merchant.pk}, format="json"), 201
    )
    assert created["merchant_id"] == merchant.pk


def test_a_user_of_several_merchants_must_say_which(staff_client, merchant, other_merchant, expect_api_error):
    ops = staff_client(Role.OPS, [merchant, other_merchant])

    expect_api_error(ops.post("/api/v1/materials", OAT_MILK, format="json"), 400, "VALIDATION_ERROR")
    data(ops.post("/api/v1/materials", {**OAT_MILK, "merchant_id": other_merchant.pk}, format="json"), 201)
    assert Material.objects.get(code="OAT-MILK").merchant == other_merchant


def test_nobody_creates_a_material_for_a_merchant_not_theirs(
    staff_client, merchant, other_merchant, expect_api_error
):
    reply = staff_client(Role.OPS, [merchant]).post(
        "/api/v1/materials", {**OAT_MILK, "merchant_id": other_merchant.pk}, format="json"
    )

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["merchant_id"]
    assert not Material.objects.exists()


def test_a_code_the_merchant_has_already_is_a_409_and_another_merchant_may_have_it(
    staff_client, merchant, other_merchant, catalogue, expect_api_error
):
    reply = staff_client(Role.OPS, [merchant]).post(
        "/api/v1/materials", {**OAT_MILK, "code": "WATER"}, format="json"
    )
    error = expect_api_error(reply, 409, "CONFLICT")
    assert list(error["details"]["fields"]) == ["code"]

    rival = staff_client(Role.OPS, [other_merchant])
    data(rival.post("/api/v1/materials", {**OAT_MILK, "code": "WATER"}, format="json"), 201)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "coffee"}, "kind"),
        ({"unit": "kg"}, "unit"),
        ({"low_threshold_pct": 101}, "low_threshold_pct"),
        ({"low_threshold_pct": -1}, "low_threshold_pct"),
        ({"density": "0"}, "density"),
        ({"density": "abc"}, "density"),
        ({"cost_per_unit": "-0.01"}, "cost_per_unit"),
        ({"pack_size": "0"}, "pack_size"),
        ({"pack_size": "abc"}, "pack_size"),
        ({"code": ""}, "code"),
        ({"name": "x" * 121}, "name"),
        ({"merchant_id": 2**70}, "merchant_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(staff_client, merchant, body, field, expect_api_error):
    reply = staff_client(Role.OPS, [merchant]).post("/api/v1/materials", {**OAT_MILK, **body}, format="json")

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == [field]
    assert not Material.objects.exists()


def test_ops_update_a_material_but_never_its_code(staff_client, merchant, catalogue, expect_api_error):
    water = Material.objects.get(merchant=merchant, code="WATER")
    ops = staff_client(Role.OPS, [merchant])

    updated = data(
        ops.patch(
            f"/api/v1/materials/{water.pk}",
            {"low_threshold_pct": 25, "supplier": "城市水务", "pack_size": "18900"},
            format="json",
        )
    )
    assert (updated["low_threshold_pct"], updated["supplier"], updated["code"]) == (25, "城市水务", "WATER")
    assert updated["pack_size"] == "18900.000"
    cleared = data(ops.patch(f"/api/v1/materials/{water.pk}", {"pack_size": None}, format="json"))
    assert cleared["pack_size"] is None

    error = expect_api_error(
        ops.patch(f"/api/v1/materials/{water.pk}", {"code": "H2O"}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert list(error["details"]["fields"]) == ["code"]
    expect_api_error(
        ops.patch(f"/api/v1/materials/{water.pk}", {"low_threshold_pct": 500}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    water.refresh_from_db()
    assert (water.code, water.low_threshold_pct) == ("WATER", 25)


def test_a_material_is_disabled_and_enabled_again_never_deleted(staff_client, merchant, catalogue):
    water = Material.objects.get(merchant=merchant, code="WATER")
    ops = staff_client(Role.OPS, [merchant])

    assert data(ops.post(f"/api/v1/materials/{water.pk}/disable"))["enabled"] is False
    assert not Material.objects.get(pk=water.pk).is_enabled
    assert data(ops.post(f"/api/v1/materials/{water.pk}/enable"))["enabled"] is True
    assert ops.delete(f"/api/v1/materials/{water.pk}").status_code == 405
    assert Material.objects.filter(pk=water.pk).exists()


def test_a_viewer_reads_but_changes_nothing(staff_client, merchant, catalogue, expect_api_error):
    water = Material.objects.get(merchant=merchant, code="WATER")
    viewer = staff_client(Role.VIEWER, [merchant])

    assert data(viewer.get(f"/api/v1/materials/{water.pk}"))["code"] == "WATER"
    expect_api_error(viewer.post("/api/v1/materials", OAT_MILK, format="json"), 403, "FORBIDDEN")
    expect_api_error(
        viewer.patch(f"/api/v1/materials/{water.pk}", {"name": "W"}, format="json"), 403, "FORBIDDEN"
    )
    expect_api_error(viewer.post(f"/api/v1/materials/{water.pk}/disable"), 403, "FORBIDDEN")
    water.refresh_from_db()
    assert water.name == "Water" and water.is_enabled
    assert not Material.objects.filter(code="OAT-MILK").exists()


def test_anonymous_callers_are_refused(api, catalogue, expect_api_error):
    expect_api_error(api.get("/api/v1/materials"), 401, "UNAUTHORIZED")


# --- Export ---------------------------------------------------------------------------------------


def test_the_filtered_list_exports_as_csv_that_reads_back(staff_client, merchant, catalogue):
    reply = staff_client(Role.VIEWER, [merchant]).get(
        "/api/v1/materials/export", {"format": "csv", "kind": "bean"}
    )

    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/csv")
    lines = reply.content.decode().splitlines()
    assert lines[0] == (
        "code,name,kind,unit,density,low_threshold_pct,cost_per_unit,supplier,pack_size,enabled,merchant"
    )
    assert len(lines) == 2 and lines[1].startswith("BEAN-ARABICA,Arabica,bean,g,")
    assert "RIVAL" not in reply.content.decode()


def test_the_list_exports_as_xlsx(staff_client, merchant, catalogue):
    import io

    import openpyxl

    reply = staff_client(Role.VIEWER, [merchant]).get("/api/v1/materials/export", {"format": "xlsx"})

    assert reply.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(reply.content)).active
    assert [row[0] for row in sheet.iter_rows(values_only=True)] == [
        "code",
        "BEAN-ARABICA",
        "MILK-POWDER",
        "OLD-SYRUP",
        "WATER",
    ]


@pytest.mark.parametrize("params", [{"format": "pdf"}, {}, {"format": "csv", "kind": "coffee"}])
def test_an_export_asked_wrongly_is_a_4xx_envelope(staff_client, merchant, params):
    reply = staff_client(Role.VIEWER, [merchant]).get("/api/v1/materials/export", params)

    assert reply.status_code in (400, 404), reply.content
    assert reply.json()["ok"] is False
