"""The fleet bin page, API and admin: every bin of the user's merchants, most urgent first, filtered."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from devices.models import DeviceBin
from inventory.models import Refill
from operations.models import Alarm
from tests.factories import DeviceBinFactory, DeviceFactory, LocationFactory, MaterialFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def results(reply):
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]["results"]


@pytest.fixture
def fleet(merchant, other_merchant):
    """Brew Co's bins at two locations, in every state, and one bin of another merchant."""
    now = timezone.now()
    lobby, station = (
        LocationFactory(merchant=merchant, name="Lobby"),
        LocationFactory(merchant=merchant, name="Station"),
    )
    a = DeviceFactory(merchant=merchant, location=lobby, serial="CM2K-A")
    b = DeviceFactory(merchant=merchant, location=station, serial="CM2K-B")

    def bin_(device, index, code, remaining, empty_in_days=None):
        return DeviceBinFactory(
            device=device,
            index=index,
            material_code=code,
            remaining=remaining,
            level_pct=remaining / 10,
            empty_at=None if empty_in_days is None else now + timedelta(days=empty_in_days),
        )

    bins = {
        "ok_soon": bin_(a, 1, "BEAN-ARABICA", 500, empty_in_days=2),
        "ok_later": bin_(a, 2, "MILK-POWDER", 900, empty_in_days=9),
        "ok_unknown": bin_(b, 1, "BEAN-ARABICA", 300),
        "low_later": bin_(b, 2, "MILK-POWDER", 120, empty_in_days=3),
        "low_soon": bin_(a, 3, "SUGAR", 100, empty_in_days=1),
        "empty": bin_(b, 3, "SUGAR", 0),
        "theirs": bin_(DeviceFactory(merchant=other_merchant), 1, "BEAN-ARABICA", 0),
    }
    return {"bins": bins, "lobby": lobby, "station": station, "a": a, "b": b}


def names(fleet, rows):
    by_id = {b.pk: name for name, b in fleet["bins"].items()}
    return [by_id[row["id"]] for row in rows]


def test_the_bin_page_lists_the_users_bins_most_urgent_first(staff_client, merchant, fleet):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])

    rows = results(viewer.get("/api/v1/bins"))

    assert names(fleet, rows) == ["empty", "low_soon", "low_later", "ok_soon", "ok_later", "ok_unknown"]
    first = rows[0]
    assert (first["state"], first["device_serial"], first["location_name"], first["material"]) == (
        "empty",
        "CM2K-B",
        "Station",
        "SUGAR",
    )
    assert first["days_to_empty"] == 0
    assert rows[1]["days_to_empty"] == pytest.approx(1, abs=0.1)
    assert rows[-1]["days_to_empty"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("state=low", ["low_soon", "low_later"]),
        ("state=ok&material=BEAN-ARABICA", ["ok_soon", "ok_unknown"]),
        ("location_id={lobby}", ["low_soon", "ok_soon", "ok_later"]),
        ("device_id={b}&state=empty", ["empty"]),
        ("merchant_id={merchant}&material=SUGAR", ["empty", "low_soon"]),
        ("ordering=-level_pct&state=ok", ["ok_later", "ok_soon", "ok_unknown"]),
    ],
)
def test_the_bin_page_filters(staff_client, merchant, fleet, params, expected):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    query = params.format(lobby=fleet["lobby"].pk, b=fleet["b"].pk, merchant=merchant.pk)

    assert names(fleet, results(viewer.get(f"/api/v1/bins?{query}"))) == expected


def test_platform_staff_see_every_merchants_bins(staff_client, other_merchant, fleet):
    platform = staff_client(Role.VIEWER, is_platform_staff=True)

    assert len(results(platform.get("/api/v1/bins"))) == 7
    assert names(fleet, results(platform.get(f"/api/v1/bins?merchant_id={other_merchant.pk}"))) == ["theirs"]


@pytest.mark.parametrize(
    "params", ["state=full", "colour=red", "location_id=abc", "device_id=99999999999999999999"]
)
def test_a_filter_that_means_nothing_is_a_400(staff_client, merchant, fleet, expect_api_error, params):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    expect_api_error(viewer.get(f"/api/v1/bins?{params}"), 400, "VALIDATION_ERROR")


def test_the_bin_page_runs_the_same_number_of_queries_for_3_or_40_bins(staff_client, merchant):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    location = LocationFactory(merchant=merchant)

    def queries_to_list():
        with CaptureQueriesContext(connection) as queries:
            assert results(viewer.get("/api/v1/bins?page_size=100"))
        return len(queries)

    for index in range(3):
        DeviceBinFactory(device=DeviceFactory(merchant=merchant, location=location), index=index + 1)
    queries_to_list()  # the first request also learns the user's merchants (then kept on the user)
    few = queries_to_list()
    for index in range(37):
        DeviceBinFactory(
            device=DeviceFactory(merchant=merchant, location=location if index % 2 else None), index=1
        )
    assert queries_to_list() == few


# --- The admin's bin page -----------------------------------------------------------------------------


def test_the_admin_bin_page_shows_the_users_bins_most_urgent_first_and_filters(admin_as, fleet):
    client = admin_as(Role.VIEWER)

    page = client.get(reverse("admin:inventory_bin_changelist"))

    assert page.status_code == 200
    shown = [b.pk for b in page.context["cl"].result_list]
    assert [fleet["bins"][name].pk for name in ["empty", "low_soon", "low_later"]] == shown[:3]
    assert fleet["bins"]["theirs"].pk not in shown
    low = client.get(reverse("admin:inventory_bin_changelist") + "?state=low&material=SUGAR")
    assert [b.pk for b in low.context["cl"].result_list] == [fleet["bins"]["low_soon"].pk]
    located = client.get(
        reverse("admin:inventory_bin_changelist") + f"?device__location__id__exact={fleet['lobby'].pk}"
    )
    assert {b.device_id for b in located.context["cl"].result_list} == {fleet["a"].pk}


def test_ops_record_a_refill_in_the_admin_and_its_alarm_clears(admin_as, machine):
    machine.post(
        f"/api/v1/devices/{machine.device.pk}/materials/report",
        {"bins": [{"index": 1, "material": "BEAN-ARABICA", "remaining": 50, "capacity": 1000, "unit": "g"}]},
        format="json",
    )
    bin_ = DeviceBin.objects.get(device=machine.device)
    assert Alarm.objects.filter(device=machine.device, is_active=True).count() == 1
    client = admin_as(Role.OPS)
    url = reverse("admin:inventory_bin_refill", args=[bin_.pk])

    dialog = client.get(url)
    assert dialog.status_code == 200
    assert 'value="950' in dialog.content.decode()  # what fills it to the top
    too_much = client.post(url, {"_form_submitted": "True", "amount": 2000})
    assert "at most 950" in too_much.content.decode()
    assert not Refill.objects.exists()

    done = client.post(url, {"_form_submitted": "True", "amount": 600})

    assert done.status_code in (200, 302)
    refill = Refill.objects.get()
    assert (refill.amount, refill.source, refill.user.role) == (600, "staff", Role.OPS)
    assert Alarm.objects.filter(device=machine.device, is_active=True).count() == 0


def test_fill_to_the_top_records_a_refill_for_each_bin_that_had_room(admin_as, fleet):
    client = admin_as(Role.OPS)
    chosen = [fleet["bins"][name].pk for name in ("empty", "low_soon")]

    client.post(
        reverse("admin:inventory_bin_changelist"),
        {"action": "fill_to_the_top", "_selected_action": chosen},
    )

    assert sorted(Refill.objects.values_list("bin_id", "remaining_after")) == sorted(
        (pk, 1000) for pk in chosen
    )


def test_a_viewer_sees_the_bin_page_but_records_nothing(admin_as, fleet):
    client = admin_as(Role.VIEWER)
    bin_ = fleet["bins"]["empty"]

    page = client.get(reverse("admin:inventory_bin_change", args=[bin_.pk]))
    refused = client.post(
        reverse("admin:inventory_bin_refill", args=[bin_.pk]), {"_form_submitted": "True", "amount": 5}
    )
    client.post(
        reverse("admin:inventory_bin_changelist"),
        {"action": "fill_to_the_top", "_selected_action": [bin_.pk]},
    )

    assert page.status_code == 200
    assert "inventory_bin_refill" not in page.content.decode()
    assert refused.status_code == 403
    assert not Refill.objects.exists()


def test_another_merchants_bin_is_not_found_in_the_admin(admin_as, fleet):
    client = admin_as(Role.OPS)
    theirs = fleet["bins"]["theirs"]

    assert client.get(reverse("admin:inventory_bin_refill", args=[theirs.pk])).status_code == 404
    assert (
        client.post(
            reverse("admin:inventory_bin_refill", args=[theirs.pk]), {"_form_submitted": "True", "amount": 5}
        ).status_code
        == 404
    )
    assert not Refill.objects.exists()


def test_the_material_filter_offers_only_the_users_codes(admin_as, merchant, other_merchant, fleet):
    MaterialFactory(merchant=other_merchant, code="SECRET-BLEND")
    MaterialFactory(merchant=merchant, code="SUGAR")

    page = admin_as(Role.VIEWER).get(reverse("admin:inventory_bin_changelist"))

    content = page.content.decode()
    assert "SUGAR" in content and "SECRET-BLEND" not in content


def test_the_refills_list_is_newest_first_filtered_and_runs_the_same_number_of_queries(
    staff_client, merchant, other_merchant, make_user
):
    from inventory.services import refill_bin

    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    ops = make_user(Role.OPS, merchants=[merchant])
    theirs = DeviceBinFactory(device=DeviceFactory(merchant=other_merchant), remaining=0, level_pct=0)
    refill_bin(theirs, amount=10)

    def refill_some(count):
        for _ in range(count):
            refill_bin(
                DeviceBinFactory(device=DeviceFactory(merchant=merchant), remaining=0, level_pct=0),
                amount=5,
                user=ops,
            )

    def queries_to_list():
        with CaptureQueriesContext(connection) as queries:
            rows = results(viewer.get("/api/v1/refills?page_size=100"))
        return len(queries), rows

    refill_some(2)
    queries_to_list()
    few, _rows = queries_to_list()
    refill_some(20)
    many, rows = queries_to_list()

    assert many == few
    assert len(rows) == 22 and all(row["user"] == ops.email and row["source"] == "staff" for row in rows)
    assert [row["refilled_at"] for row in rows] == sorted((row["refilled_at"] for row in rows), reverse=True)
    assert results(viewer.get(f"/api/v1/refills?bin_id={theirs.pk}")) == []
