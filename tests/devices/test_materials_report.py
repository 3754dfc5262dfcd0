"""POST /api/v1/devices/{device_id}/materials/report: bin levels and refills as the machine reports them."""

import pytest
from django.utils import timezone

from devices.models import DeviceBin
from devices.services import flush_heartbeats
from inventory.services import set_enabled
from tests.factories import MaterialFactory

pytestmark = pytest.mark.django_db


def bin_(index, material="BEAN-ARABICA", remaining=820, capacity=1000, **extra):
    return {
        "index": index,
        "material": material,
        "remaining": remaining,
        "capacity": capacity,
        "unit": "g",
        **extra,
    }


def report(client, *bins, device_id=None):
    return client.post(
        f"/api/v1/devices/{device_id or client.device.pk}/materials/report",
        {"sent_at": "2026-11-24T08:15:00Z", "bins": list(bins)},
        format="json",
    )


def bins_of(device):
    return {b.index: b for b in DeviceBin.objects.filter(device=device)}


def test_a_report_records_the_level_of_every_bin(machine):
    before = timezone.now()

    reply = report(machine, bin_(1, remaining=820), bin_(2, "MILK-POWDER", remaining=125, capacity=500))

    assert reply.status_code == 200, reply.content
    bins = bins_of(machine.device)
    assert sorted(bins) == [1, 2]
    assert (bins[1].material_code, bins[1].remaining, bins[1].capacity, bins[1].level_pct) == (
        "BEAN-ARABICA",
        820,
        1000,
        82.0,
    )
    assert (bins[2].material_code, bins[2].remaining, bins[2].capacity, bins[2].level_pct) == (
        "MILK-POWDER",
        125,
        500,
        25.0,
    )
    assert all(before <= b.reported_at <= timezone.now() for b in bins.values())
    assert all(b.last_refilled_at is None for b in bins.values())


def test_the_reply_lists_the_bins_with_their_level(machine):
    data = report(machine, bin_(1, remaining=820)).json()["data"]

    assert data["server_time"].endswith("Z")
    assert data["bins"] == [
        {
            "index": 1,
            "material": "BEAN-ARABICA",
            "remaining": 820.0,
            "capacity": 1000.0,
            "unit": "g",
            "level_pct": 82.0,
        }
    ]


def test_a_second_report_updates_the_bins_instead_of_adding_rows(machine):
    report(machine, bin_(1, remaining=820))

    report(machine, bin_(1, remaining=400))

    assert list(DeviceBin.objects.filter(device=machine.device).values_list("index", "remaining")) == [
        (1, 400)
    ]


def test_refilled_true_records_the_refill_time_of_that_bin_only(machine):
    report(machine, bin_(1, remaining=100), bin_(2, "SUGAR", remaining=50))
    before = timezone.now()

    assert (
        report(machine, bin_(1, remaining=1000, refilled=True), bin_(2, "SUGAR", remaining=50)).status_code
        == 200
    )

    bins = bins_of(machine.device)
    assert before <= bins[1].last_refilled_at <= timezone.now()
    assert bins[1].remaining == 1000
    assert bins[2].last_refilled_at is None


def test_a_later_report_without_refill_keeps_the_last_refill_time(machine):
    report(machine, bin_(1, remaining=1000, refilled=True))
    refilled_at = bins_of(machine.device)[1].last_refilled_at

    report(machine, bin_(1, remaining=900))

    assert bins_of(machine.device)[1].last_refilled_at == refilled_at


def test_an_unknown_material_is_400_naming_the_bin_and_nothing_is_written(machine, expect_api_error):
    reply = report(machine, bin_(1), bin_(2, "SUGAR"), bin_(3, "UNOBTAINIUM"))

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["bins.2.material"]
    assert "UNOBTAINIUM" in error["message"]
    assert not DeviceBin.objects.filter(device=machine.device).exists()


def test_a_disabled_material_is_refused_like_an_unknown_one(machine, materials, expect_api_error):
    report(machine, bin_(1, "SUGAR"))  # the catalogue is now memoised
    set_enabled(next(m for m in materials if m.code == "SUGAR"), False)

    error = expect_api_error(report(machine, bin_(1, "SUGAR")), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["bins.0.material"]


def test_a_material_of_another_merchant_is_unknown_to_this_merchants_machines(
    machine, other_merchant, expect_api_error
):
    MaterialFactory(merchant=other_merchant, code="OAT-MILK")

    error = expect_api_error(report(machine, bin_(1, "OAT-MILK")), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["bins.0.material"]


def test_a_material_added_to_the_catalogue_is_accepted_at_once(machine):
    report(machine, bin_(1))  # the catalogue is now memoised
    MaterialFactory(merchant=machine.device.merchant, code="OAT-MILK")

    assert report(machine, bin_(2, "OAT-MILK")).status_code == 200


def test_a_duplicate_index_in_one_report_is_400_and_nothing_is_written(machine, expect_api_error):
    error = expect_api_error(
        report(machine, bin_(1, remaining=800), bin_(1, remaining=10)), 400, "VALIDATION_ERROR"
    )

    assert list(error["details"]["fields"]) == ["bins"]
    assert not DeviceBin.objects.filter(device=machine.device).exists()


def test_a_report_with_no_bins_is_400_naming_bins(machine, expect_api_error):
    error = expect_api_error(report(machine), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["bins"]


def test_remaining_over_capacity_is_400_naming_the_bin_field(machine, expect_api_error):
    error = expect_api_error(report(machine, bin_(1, remaining=1200)), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["bins.0.remaining"]
    assert not DeviceBin.objects.filter(device=machine.device).exists()


def test_a_report_for_another_device_is_403_and_writes_nothing(machine, merchant, expect_api_error):
    from tests.factories import DeviceFactory

    other = DeviceFactory(merchant=merchant)

    expect_api_error(report(machine, bin_(1), device_id=other.pk), 403, "FORBIDDEN")

    assert not DeviceBin.objects.exists()


def test_a_heartbeat_after_a_report_records_its_level_even_if_it_equals_the_level_before_the_report(
    machine, django_capture_on_commit_callbacks
):
    heartbeat = {"state": "idle", "bins": [bin_(1, remaining=800)]}
    machine.post(f"/api/v1/devices/{machine.device.pk}/status", heartbeat, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        report(machine, bin_(1, remaining=300))

    machine.post(f"/api/v1/devices/{machine.device.pk}/status", heartbeat, format="json")
    flush_heartbeats()  # with Redis, moved levels are written behind until the flush

    assert bins_of(machine.device)[1].remaining == 800
