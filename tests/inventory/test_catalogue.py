"""The material catalogue: what machines may name in their bin reports, and its spreadsheet round trip."""

import pytest
import tablib

from inventory.models import Material
from inventory.resources import MaterialResource
from inventory.selectors import unknown_material_codes

pytestmark = pytest.mark.django_db


def test_a_material_added_a_moment_ago_is_known_at_once():
    Material.objects.create(code="OAT-MILK", name="Oat milk")
    assert unknown_material_codes(["OAT-MILK"]) == set()  # primes the memo
    Material.objects.create(code="CHAI", name="Chai powder")
    assert unknown_material_codes(["CHAI", "OAT-MILK", "NOPE"]) == {"NOPE"}


def test_an_inactive_material_is_unknown_to_the_machines():
    Material.objects.create(code="RETIRED", name="Old beans", is_active=False)
    assert unknown_material_codes(["RETIRED"]) == {"RETIRED"}


def sheet(*rows):
    data = tablib.Dataset(headers=["code", "name", "unit", "category", "is_active"])
    for row in rows:
        data.append(row)
    return data


def test_the_spreadsheet_updates_by_code_and_adds_new_codes():
    Material.objects.create(code="SUGAR", name="Sugar")
    result = MaterialResource().import_data(
        sheet(["SUGAR", "Cane sugar", "g", "sweetener", "1"], ["COCOA", "Cocoa", "g", "powder", "1"]),
        dry_run=False,
    )
    assert not result.has_errors() and not result.has_validation_errors()
    assert Material.objects.get(code="SUGAR").name == "Cane sugar"
    assert Material.objects.filter(code="COCOA").exists()


def test_a_bad_row_refuses_the_whole_sheet_as_the_admin_imports_it():
    """The admin's import runs in a transaction and rolls back on any invalid row (import-export's
    admin passes rollback_on_validation_errors); a half-imported catalogue never happens."""
    result = MaterialResource().import_data(
        sheet(["MATCHA", "Matcha", "g", "powder", "1"], ["EMPTY-NAME", "", "g", "", "1"]),
        dry_run=False,
        use_transactions=True,
        rollback_on_validation_errors=True,
    )
    assert result.has_validation_errors() or result.has_errors()
    assert not Material.objects.filter(code="MATCHA").exists()
