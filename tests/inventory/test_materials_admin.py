"""The materials admin page: each merchant's own catalogue, kept through the same services as the API."""

import pytest
from django.urls import reverse

from accounts.models import Role
from audit.models import OperationLog
from inventory.models import Material
from tests.factories import MaterialFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

CHANGELIST = "admin:inventory_material_changelist"


@pytest.fixture
def catalogue(merchant, other_merchant):
    return {
        "sugar": MaterialFactory(
            merchant=merchant, code="SUGAR", name="Sugar", kind="powder", low_threshold_pct=12
        ),
        "rival": MaterialFactory(merchant=other_merchant, code="RIVAL-BEAN", name="Rival beans", kind="bean"),
    }


def test_the_list_shows_kind_unit_threshold_and_enabled_and_the_merchant_only_to_platform_staff(
    admin_as, merchant, catalogue
):
    mine = admin_as(Role.VIEWER).get(reverse(CHANGELIST))
    everyone = admin_as(Role.VIEWER, is_platform_staff=True).get(reverse(CHANGELIST))

    assert mine.status_code == everyone.status_code == 200
    assert [c for c in mine.context["cl"].list_display if c != "action_checkbox"] == [
        "code",
        "name",
        "kind",
        "unit",
        "low_threshold_pct",
        "supplier",
        "is_enabled",
    ]
    assert "merchant" in everyone.context["cl"].list_display
    assert "RIVAL-BEAN" not in mine.content.decode() and "RIVAL-BEAN" in everyone.content.decode()
    assert [m.code for m in mine.context["cl"].queryset] == ["SUGAR"]


def test_the_list_filters_by_kind_and_searches_the_supplier(admin_as, merchant, catalogue):
    MaterialFactory(merchant=merchant, code="MILK", name="Milk", kind="milk", supplier="光明乳业")
    client = admin_as(Role.VIEWER)

    by_kind = client.get(reverse(CHANGELIST), {"kind__exact": "milk"}).context["cl"].queryset
    by_supplier = client.get(reverse(CHANGELIST), {"q": "光明"}).context["cl"].queryset

    assert [m.code for m in by_kind] == [m.code for m in by_supplier] == ["MILK"]


def test_another_merchants_material_is_missing_from_the_admin(admin_as, catalogue):
    url = reverse("admin:inventory_material_change", args=[catalogue["rival"].pk])

    assert admin_as(Role.OPS).get(url).status_code in (302, 404)


def test_ops_add_a_material_for_their_merchant_through_the_service(admin_as, merchant):
    client = admin_as(Role.OPS)
    form = client.get(reverse("admin:inventory_material_add")).context["adminform"].form
    assert form.initial["merchant"] == merchant.pk

    response = client.post(
        reverse("admin:inventory_material_add"),
        {
            "merchant": merchant.pk,
            "code": "OAT-MILK",
            "name": "燕麦奶",
            "kind": "milk",
            "unit": "ml",
            "low_threshold_pct": 20,
            "supplier": "",
            "pack_size": "1000",
            "is_enabled": "on",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    oat = Material.objects.get(merchant=merchant, code="OAT-MILK")
    assert (oat.name, oat.low_threshold_pct, oat.pack_size) == ("燕麦奶", 20, 1000)
    assert OperationLog.objects.filter(action="material.created", target_id=str(oat.pk)).exists()


def test_a_merchant_user_cannot_add_a_material_to_another_merchant(admin_as, other_merchant):
    response = admin_as(Role.OPS).post(
        reverse("admin:inventory_material_add"),
        {
            "merchant": other_merchant.pk,
            "code": "X",
            "name": "X",
            "kind": "milk",
            "unit": "ml",
            "low_threshold_pct": 15,
        },
    )

    assert response.status_code == 200 and response.context["adminform"].form.errors["merchant"]
    assert not Material.objects.filter(merchant=other_merchant, code="X").exists()


def test_ops_edit_a_material_but_not_its_code_and_disable_it_from_the_list(admin_as, catalogue):
    sugar = catalogue["sugar"]
    client = admin_as(Role.OPS)

    response = client.post(
        reverse("admin:inventory_material_change", args=[sugar.pk]),
        {"code": "HACKED", "name": "Cane sugar", "kind": "powder", "unit": "g", "low_threshold_pct": 30},
    )
    assert response.status_code == 302, response.content[:2000]
    sugar.refresh_from_db()
    assert (sugar.code, sugar.name, sugar.low_threshold_pct, sugar.is_enabled) == (
        "SUGAR",
        "Cane sugar",
        30,
        False,
    )

    client.post(reverse(CHANGELIST), {"action": "enable_materials", "_selected_action": [sugar.pk]})
    assert Material.objects.get(pk=sugar.pk).is_enabled
    client.post(reverse(CHANGELIST), {"action": "disable_materials", "_selected_action": [sugar.pk]})
    assert not Material.objects.get(pk=sugar.pk).is_enabled
    assert OperationLog.objects.filter(action="material.disabled", target_id=str(sugar.pk)).count() == 2


def test_nobody_deletes_a_material(admin_as, catalogue):
    url = reverse("admin:inventory_material_delete", args=[catalogue["sugar"].pk])

    assert admin_as(Role.ADMIN).post(url, {"post": "yes"}).status_code == 403
    assert Material.objects.filter(pk=catalogue["sugar"].pk).exists()


def test_the_admin_exports_only_the_users_merchants_materials(admin_as, catalogue):
    response = admin_as(Role.VIEWER).post(reverse("admin:inventory_material_export"), {"format": "0"})

    assert response.status_code == 200, response.content[:2000]
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("code,name,kind,unit,") and lines[0].endswith(",enabled,merchant")
    assert [line.split(",")[0] for line in lines[1:]] == ["SUGAR"]
