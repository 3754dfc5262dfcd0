"""The material catalogue as machines meet it: each merchant's own codes, known at once when added."""

import pytest

from inventory.selectors import unknown_material_codes
from inventory.services import create_material, set_enabled
from tests.factories import MaterialFactory

pytestmark = pytest.mark.django_db


def test_a_material_added_a_moment_ago_is_known_at_once(merchant):
    MaterialFactory(merchant=merchant, code="OAT-MILK")
    assert unknown_material_codes(merchant.pk, ["OAT-MILK"]) == set()  # primes the memo
    MaterialFactory(merchant=merchant, code="CHAI")
    assert unknown_material_codes(merchant.pk, ["CHAI", "OAT-MILK", "NOPE"]) == {"NOPE"}


def test_a_disabled_material_is_unknown_to_the_machines_at_once(merchant):
    beans = create_material(merchant=merchant, code="OLD-BEANS", name="Old beans", kind="bean")
    assert unknown_material_codes(merchant.pk, ["OLD-BEANS"]) == set()

    set_enabled(beans, False)

    assert unknown_material_codes(merchant.pk, ["OLD-BEANS"]) == {"OLD-BEANS"}


def test_each_merchant_knows_only_its_own_codes(merchant, other_merchant):
    MaterialFactory(merchant=merchant, code="HOUSE-BLEND")
    MaterialFactory(merchant=other_merchant, code="RIVAL-BLEND")

    assert unknown_material_codes(merchant.pk, ["HOUSE-BLEND", "RIVAL-BLEND"]) == {"RIVAL-BLEND"}
    assert unknown_material_codes(other_merchant.pk, ["HOUSE-BLEND", "RIVAL-BLEND"]) == {"HOUSE-BLEND"}


def test_two_merchants_may_use_the_same_code(merchant, other_merchant):
    create_material(merchant=merchant, code="SUGAR", name="Sugar", kind="powder")
    create_material(merchant=other_merchant, code="SUGAR", name="蔗糖", kind="powder")

    assert unknown_material_codes(other_merchant.pk, ["SUGAR"]) == set()
