"""Importing a spreadsheet of materials, through the API and the admin: a preview that marks every row,
all or nothing, every error naming its row and column, Excel's CSV (BOM) and Chinese names, XLSX, and
one merchant's file never touching another merchant's catalogue."""

import io
import re

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Role
from inventory.models import Material
from operations.models import TaskJob
from tests.factories import MaterialFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords", "media_root")]

HEADER = "code,name,kind,unit,density,low_threshold_pct,cost_per_unit,supplier,enabled"
# A manager's file as Excel saves it (BOM, CRLF), Chinese names: a changed row, an unchanged one, a new one.
GOOD = (
    "\ufeff" + HEADER + "\r\n"
    "BEAN-ARABICA,阿拉比卡咖啡豆,bean,g,,20,0.12,云南咖啡,1\r\n"
    "WATER,Water,water,ml,1.000,15,,,1\r\n"
    "OAT-MILK,燕麦奶,Milk,ML,1.03,25,0.02,OATLY,\r\n"
).encode()
ONE_BAD = (
    "\ufeff" + HEADER + "\r\nOAT-MILK,燕麦奶,milk,ml,1.03,25,0.02,OATLY,1\r\nCHAI,Chai,tea,g,,150,abc,,1\r\n"
).encode()


def seed_catalogue(merchant, other_merchant):
    """Brew Co's arabica and water, and Other Beans' OAT-MILK (returned): a code Brew Co's files name."""
    MaterialFactory(
        merchant=merchant,
        code="BEAN-ARABICA",
        name="Arabica",
        kind="bean",
        low_threshold_pct=15,
        pack_size=1000,
    )
    MaterialFactory(merchant=merchant, code="WATER", name="Water", kind="water", unit="ml", density="1.000")
    return MaterialFactory(
        merchant=other_merchant, code="OAT-MILK", name="Rival oat milk", kind="milk", unit="ml"
    )


@pytest.fixture
def catalogue(merchant, other_merchant):
    return seed_catalogue(merchant, other_merchant)


def upload(client, content, name="materials.csv", **fields):
    return client.post(
        "/api/v1/materials/import", {"file": SimpleUploadedFile(name, content), **fields}, format="multipart"
    )


def mine(merchant):
    return {m.code: m for m in Material.objects.filter(merchant=merchant)}


# --- Through the API ----------------------------------------------------------------------------


def test_a_dry_run_marks_each_row_and_writes_nothing(staff_client, merchant, catalogue):
    reply = upload(staff_client(Role.OPS, [merchant]), GOOD, dry_run="true")

    assert reply.status_code == 200, reply.content
    assert reply.json()["data"] == [
        {"row": 1, "status": "updated", "errors": {}},
        {"row": 2, "status": "unchanged", "errors": {}},
        {"row": 3, "status": "new", "errors": {}},
    ]
    assert mine(merchant)["BEAN-ARABICA"].name == "Arabica" and "OAT-MILK" not in mine(merchant)


def test_the_import_writes_the_rows_with_their_chinese_names(staff_client, merchant, catalogue):
    reply = upload(staff_client(Role.OPS, [merchant]), GOOD)

    assert [row["status"] for row in reply.json()["data"]] == ["updated", "unchanged", "new"]
    materials = mine(merchant)
    assert (materials["BEAN-ARABICA"].name, materials["BEAN-ARABICA"].supplier) == (
        "阿拉比卡咖啡豆",
        "云南咖啡",
    )
    assert materials["BEAN-ARABICA"].low_threshold_pct == 20
    assert materials["BEAN-ARABICA"].pack_size == 1000  # a file without the column leaves pack sizes alone
    oat = materials["OAT-MILK"]
    assert (oat.kind, oat.unit, str(oat.density), oat.is_enabled) == ("milk", "ml", "1.030", True)
    assert oat.pack_size is None


def test_a_pack_size_column_sets_clears_and_checks_pack_sizes(
    staff_client, merchant, catalogue, expect_api_error
):
    ops = staff_client(Role.OPS, [merchant])
    sheet = "code,name,kind,unit,pack_size\nBEAN-ARABICA,Arabica,bean,g,\nCUP-12OZ,Cup,cup,pcs,50\n"

    reply = upload(ops, sheet.encode())

    assert [row["status"] for row in reply.json()["data"]] == ["updated", "new"], reply.content
    assert (mine(merchant)["BEAN-ARABICA"].pack_size, mine(merchant)["CUP-12OZ"].pack_size) == (None, 50)
    bad = "code,pack_size\nCUP-12OZ,0\nBEAN-ARABICA,a bag\n"
    error = expect_api_error(upload(ops, bad.encode()), 400, "VALIDATION_ERROR")
    assert [(row["row"], list(row["errors"])) for row in error["details"]["rows"]] == [
        (1, ["pack_size"]),
        (2, ["pack_size"]),
    ]
    assert mine(merchant)["CUP-12OZ"].pack_size == 50


def test_a_file_with_one_bad_row_imports_nothing_and_names_each_row_and_column(
    staff_client, merchant, catalogue, expect_api_error
):
    error = expect_api_error(upload(staff_client(Role.OPS, [merchant]), ONE_BAD), 400, "VALIDATION_ERROR")

    (bad,) = error["details"]["rows"]
    assert bad["row"] == 2 and bad["status"] == "error"
    assert set(bad["errors"]) == {"kind", "low_threshold_pct", "cost_per_unit"}
    assert [row["status"] for row in error["details"]["all_rows"]] == ["new", "error"]
    assert "OAT-MILK" not in mine(merchant) and "CHAI" not in mine(merchant)


def test_the_same_file_fixed_then_imports(staff_client, merchant, catalogue):
    ops = staff_client(Role.OPS, [merchant])
    assert upload(ops, ONE_BAD).status_code == 400

    fixed = ONE_BAD.replace(b"CHAI,Chai,tea,g,,150,abc,,1", b"CHAI,Chai,powder,g,,15,0.5,,1")
    reply = upload(ops, fixed)

    assert reply.status_code == 200, reply.content
    assert {"OAT-MILK", "CHAI"} <= set(mine(merchant))


def test_a_code_twice_in_the_file_names_the_first_row(staff_client, merchant, expect_api_error):
    content = f"{HEADER}\nSUGAR,Sugar,powder,g,,15,,,1\nSUGAR,Brown sugar,powder,g,,15,,,1\n".encode()

    error = expect_api_error(upload(staff_client(Role.OPS, [merchant]), content), 400, "VALIDATION_ERROR")

    assert error["details"]["rows"] == [
        {"row": 2, "status": "error", "errors": {"code": ["SUGAR is already in row 1."]}}
    ]


def test_an_xlsx_file_imports_like_its_csv(staff_client, merchant, catalogue):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER.split(","))
    sheet.append(["OAT-MILK", "燕麦奶", "milk", "ml", 1.03, 25, 0.02, "OATLY", 1])
    sheet.append(["CUP-12OZ", "纸杯 12 oz", "cup", "pcs", None, None, None, None, None])
    sheet.append([None] * 9)  # Excel keeps rows someone once touched
    content = io.BytesIO()
    book.save(content)

    reply = upload(staff_client(Role.OPS, [merchant]), content.getvalue(), name="materials.xlsx")

    assert [row["status"] for row in reply.json()["data"]] == ["new", "new"], reply.content
    assert (
        mine(merchant)["CUP-12OZ"].name == "纸杯 12 oz" and mine(merchant)["OAT-MILK"].low_threshold_pct == 25
    )


@pytest.mark.parametrize(
    "content",
    [b"", b"\xff\xfe\x00garbage", b"name,kind\nSugar,powder\n", b"PK\x03\x04not really a zip"],
)
def test_a_file_that_is_not_a_material_sheet_is_a_400_naming_the_file(
    staff_client, merchant, content, expect_api_error
):
    error = expect_api_error(upload(staff_client(Role.OPS, [merchant]), content), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["file"]


def test_no_file_is_a_400_naming_it(staff_client, merchant, expect_api_error):
    reply = staff_client(Role.OPS, [merchant]).post("/api/v1/materials/import", {}, format="multipart")

    assert list(expect_api_error(reply, 400, "VALIDATION_ERROR")["details"]["fields"]) == ["file"]


def test_a_viewer_cannot_import(staff_client, merchant, catalogue, expect_api_error):
    expect_api_error(upload(staff_client(Role.VIEWER, [merchant]), GOOD), 403, "FORBIDDEN")

    assert "OAT-MILK" not in mine(merchant)


def test_a_file_never_reads_or_overwrites_another_merchants_materials(
    staff_client, merchant, other_merchant, catalogue, expect_api_error
):
    """Brew Co's file names OAT-MILK, a code Other Beans has: Brew Co gets its own; Other Beans' stays."""
    ops = staff_client(Role.OPS, [merchant])
    assert [row["status"] for row in upload(ops, GOOD).json()["data"]] == ["updated", "unchanged", "new"]
    catalogue.refresh_from_db()
    assert catalogue.name == "Rival oat milk" and catalogue.merchant == other_merchant

    other = f"{HEADER},merchant\nOAT-MILK,Hijacked,milk,ml,,15,,,1,{other_merchant.name}\n".encode()
    error = expect_api_error(upload(ops, other), 400, "VALIDATION_ERROR")
    assert list(error["details"]["rows"][0]["errors"]) == ["merchant"]
    expect_api_error(upload(ops, GOOD, merchant_id=other_merchant.pk), 400, "VALIDATION_ERROR")
    catalogue.refresh_from_db()
    assert catalogue.name == "Rival oat milk"


def test_platform_staff_import_into_the_merchant_they_name(
    staff_client, merchant, other_merchant, expect_api_error
):
    admin = staff_client(Role.ADMIN, is_platform_staff=True)

    expect_api_error(upload(admin, GOOD), 400, "VALIDATION_ERROR")
    assert upload(admin, GOOD, merchant_id=other_merchant.pk).status_code == 200

    assert set(mine(other_merchant)) == {"BEAN-ARABICA", "WATER", "OAT-MILK"} and not mine(merchant)


def test_an_export_imports_back_unchanged(staff_client, merchant, catalogue):
    ops = staff_client(Role.OPS, [merchant])
    exported = ops.get("/api/v1/materials/export", {"format": "csv"}).content

    reply = upload(ops, exported, dry_run="true")

    assert [row["status"] for row in reply.json()["data"]] == ["unchanged", "unchanged"], reply.content


# --- Through the admin --------------------------------------------------------------------------
# A sheet of up to MATERIAL_IMPORT_SYNC_MAX_ROWS rows is previewed and imported within the request, by
# the job code a worker runs for a larger one (tests/inventory/test_import_admin_jobs.py).


def admin_preview(client, content, name="materials.csv", file_format="0", **fields):
    """The upload; for a sheet, the redirect to its preview page."""
    upload = SimpleUploadedFile(name, content)
    return client.post(
        reverse("admin:inventory_material_import"), {"format": file_format, "import_file": upload, **fields}
    )


def preview_page(client, content, **options):
    uploaded = admin_preview(client, content, **options)
    assert uploaded.status_code == 302, uploaded.content[-2000:]
    return client.get(uploaded["Location"])


def admin_confirm(client, page):
    return client.post(
        reverse("admin:inventory_material_confirm_import_job", args=[page.context["job"].pk]), follow=True
    )


def test_the_admin_previews_new_updated_and_unchanged_rows_and_writes_on_confirm(
    admin_as, merchant, catalogue
):
    client = admin_as(Role.OPS)

    page = preview_page(client, GOOD)

    assert page.status_code == 200
    html = page.content.decode()
    assert "阿拉比卡咖啡豆" in html and "燕麦奶" in html and "Confirm import" in html
    assert [row["status"] for row in page.context["rows"]] == ["updated", "unchanged", "new"]
    assert page.context["counts"] == {"new": 1, "updated": 1, "unchanged": 1, "error": 0}
    assert "OAT-MILK" not in mine(merchant), "nothing is written before the confirmation"

    done = admin_confirm(client, page)

    assert done.status_code == 200 and done.redirect_chain[-1][0] == reverse(
        "admin:inventory_material_changelist"
    )
    assert "Import finished: 1 new, 1 updated, 1 unchanged." in done.content.decode()
    assert (
        mine(merchant)["OAT-MILK"].name == "燕麦奶" and mine(merchant)["BEAN-ARABICA"].low_threshold_pct == 20
    )
    catalogue.refresh_from_db()
    assert catalogue.name == "Rival oat milk"


def test_the_admin_shows_each_error_with_its_row_and_column_and_offers_no_confirmation(admin_as, merchant):
    client = admin_as(Role.OPS)

    page = preview_page(client, ONE_BAD)

    assert page.status_code == 200 and page.context["can_confirm"] is False
    errors = page.context["errors"]
    assert {e["row"] for e in errors} == {2}
    assert {e["column"] for e in errors} == {"kind", "low_threshold_pct", "cost_per_unit"}
    assert {e["value"] for e in errors} == {"tea", "150", "abc"}
    html = page.content.decode()
    assert re.search(r"Row\s+2\b", html), "the page names the row"
    assert "not a valid choice" in html and "Confirm import" not in html
    forced = admin_confirm(client, page)
    assert "fix them" in forced.content.decode()
    assert not mine(merchant)


def test_the_admin_imports_an_xlsx_file(admin_as, merchant):
    book = openpyxl.Workbook()
    book.active.append(["code", "name", "kind", "unit"])
    book.active.append(["CUP-12OZ", "纸杯", "cup", "pcs"])
    content = io.BytesIO()
    book.save(content)
    client = admin_as(Role.OPS)

    page = preview_page(client, content.getvalue(), name="materials.xlsx", file_format="1")
    admin_confirm(client, page)

    assert mine(merchant)["CUP-12OZ"].name == "纸杯"


def test_a_file_that_is_no_sheet_is_refused_on_the_form(admin_as, merchant):
    refused = admin_preview(admin_as(Role.OPS), b"name,kind\nSugar,powder\n")

    assert refused.status_code == 200 and refused.context["form"].errors["import_file"]
    assert not TaskJob.objects.exists()


def test_platform_staff_choose_the_merchant_in_the_admin_import(admin_as, merchant, other_merchant):
    client = admin_as(Role.ADMIN, is_platform_staff=True)

    assert admin_preview(client, GOOD).context["form"].errors["merchant"]
    page = preview_page(client, GOOD, merchant=other_merchant.pk)
    admin_confirm(client, page)

    assert set(mine(other_merchant)) == {"BEAN-ARABICA", "WATER", "OAT-MILK"} and not mine(merchant)


def test_a_merchant_user_cannot_aim_the_admin_import_at_another_merchant(
    admin_as, merchant, other_merchant, catalogue
):
    client = admin_as(Role.OPS)
    rivals = admin_as(Role.OPS, merchants=[other_merchant])
    their_page = preview_page(rivals, GOOD)

    aimed = admin_preview(client, GOOD, merchant=other_merchant.pk)
    forged = client.post(
        reverse("admin:inventory_material_confirm_import_job", args=[their_page.context["job"].pk])
    )
    peeked = client.get(reverse("admin:inventory_material_import_job", args=[their_page.context["job"].pk]))
    old_confirmation = client.post(reverse("admin:inventory_material_process_import"), {"merchant": 1})

    assert aimed.status_code == 200 and aimed.context["form"].errors["merchant"]
    assert (forged.status_code, peeked.status_code, old_confirmation.status_code) == (404, 404, 404)
    assert not Material.objects.filter(merchant=other_merchant).exclude(pk=catalogue.pk).exists()


def test_a_merchant_user_sees_only_their_merchants_materials_in_the_admin(admin_as, merchant, catalogue):
    changelist = admin_as(Role.VIEWER).get(reverse("admin:inventory_material_changelist")).content.decode()

    assert "BEAN-ARABICA" in changelist and "Rival oat milk" not in changelist
    assert reverse("admin:inventory_material_import") not in changelist
