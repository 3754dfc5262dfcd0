"""The refill pick list: what each machine's bins take on a visit, rounded to packs, and the van's totals,
through the service, the API (JSON and CSV) and the admin page."""

import csv
import io
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from coffeeshop.exceptions import Invalid
from inventory.services import forecast
from inventory.services.picklist import default_visit_date, pick_list
from tests.factories import DeviceBinFactory, DeviceFactory, LocationFactory, MaterialFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PAGE = "/admin/inventory/bin/pick-list/"


@pytest.fixture
def visit(settings, merchant):
    """Tomorrow at 08:00 in the merchant's time zone: the default visit, with its date and time."""
    settings.PICK_LIST_VISIT_TIME = "08:00"
    settings.PICK_LIST_MIN_SHARE_PCT = 10
    zone = zoneinfo.ZoneInfo(merchant.time_zone)
    day = default_visit_date(zone=zone)
    return day, datetime.combine(day, datetime.min.time().replace(hour=8), tzinfo=zone)


@pytest.fixture
def use_at_pace(monkeypatch):
    """The pick list's arithmetic apart from the forecast's: each bin gives out its drain_per_day, day by
    day, whatever the forecast becomes (it has tests of its own). Returns what the list asked it."""
    asked = []

    def expected_use(bin_, start, end):
        asked.append((bin_.pk, start, end))
        return (bin_.drain_per_day or 0) * max(0.0, (end - start) / timedelta(days=1))

    monkeypatch.setattr("inventory.services.picklist.expected_use", expected_use)
    return asked


@pytest.fixture
def trip(merchant, other_merchant, visit, use_at_pace):
    """Brew Co's Lobby (machine A, and C whose bins are full) and Station (machine B), every bin read
    exactly one day before the visit, so that its expected use is its pace; and another merchant's
    machine at its own location."""
    _, visit_at = visit
    read_at = visit_at - timedelta(days=1)
    for code, unit, pack in (
        ("BEAN-ARABICA", "g", 1000),
        ("MILK-POWDER", "g", 500),
        ("CUP-12OZ", "pcs", 50),
        ("SUGAR", "g", None),
    ):
        MaterialFactory(merchant=merchant, code=code, name=code.title(), unit=unit, pack_size=pack)
    lobby = LocationFactory(merchant=merchant, name="Lobby")
    station = LocationFactory(merchant=merchant, name="Station")
    elsewhere = LocationFactory(merchant=merchant, name="Airport")
    a = DeviceFactory(merchant=merchant, location=lobby, serial="CM-A", alias="Lobby left")
    b = DeviceFactory(merchant=merchant, location=station, serial="CM-B")
    c = DeviceFactory(merchant=merchant, location=lobby, serial="CM-C")
    far = DeviceFactory(merchant=merchant, location=elsewhere, serial="CM-FAR")

    def bin_(device, index, code, capacity, remaining, pace, unit="g"):
        return DeviceBinFactory(
            device=device,
            index=index,
            material_code=code,
            unit=unit,
            capacity=capacity,
            remaining=remaining,
            level_pct=100 * remaining / capacity,
            drain_per_day=pace,
            reported_at=read_at,
        )

    bin_(a, 1, "BEAN-ARABICA", 2000, 900, 300)  # expects 600: fills 1400 = 2 packs, 600 left in the 2nd
    bin_(a, 2, "MILK-POWDER", 1000, 500, None)  # no pace: expects 500, fills 500 = exactly 1 pack
    bin_(a, 3, "CUP-12OZ", 200, 190, 5, unit="pcs")  # expects 185: 15 < 10 % of 200, needs nothing
    bin_(b, 1, "BEAN-ARABICA", 1000, 700, 200)  # expects 500: fills 500 = 1 pack, 500 left
    bin_(b, 2, "SUGAR", 500, 250, 50)  # expects 200: fills 300, no pack size
    bin_(b, 3, "CUP-12OZ", 200, 40, 60, unit="pcs")  # would run dry (40 - 60): expects 0, fills 200
    bin_(c, 1, "BEAN-ARABICA", 1000, 1000, None)  # full
    bin_(far, 1, "BEAN-ARABICA", 1000, 0, 100)  # empty, but not on this trip
    theirs_at = LocationFactory(merchant=other_merchant, name="Their mall")
    theirs = DeviceFactory(merchant=other_merchant, location=theirs_at, serial="THEIR-1")
    MaterialFactory(merchant=other_merchant, code="BEAN-ARABICA", pack_size=250)
    bin_(theirs, 1, "BEAN-ARABICA", 1000, 0, 100)
    return {"lobby": lobby, "station": station, "theirs_at": theirs_at, "a": a, "b": b}


def lines_of(picks):
    return {
        (machine.serial, line.index): (
            line.expected_at_visit,
            line.to_fill,
            line.packs,
            line.to_bring,
            line.left_in_pack,
        )
        for machine in picks.machines
        for line in machine.lines
    }


def test_the_pick_list_fills_each_bin_to_the_top_in_whole_packs(
    make_user, merchant, trip, visit, use_at_pace
):
    user = make_user(Role.VIEWER, merchants=[merchant])

    picks = pick_list(user, location_ids=[trip["lobby"].pk, trip["station"].pk])

    # The forecast is asked for each bin of the trip, from its reading to the visit.
    assert len(use_at_pace) == 7
    assert {(start, end) for _, start, end in use_at_pace} == {(visit[1] - timedelta(days=1), visit[1])}
    assert picks.visit_date == visit[0] and picks.visit_at == visit[1]
    # Grouped by machine, locations by name (Lobby before Station); C, whose bins are full, is left out.
    assert [(m.serial, m.name, m.location_name) for m in picks.machines] == [
        ("CM-A", "Lobby left", "Lobby"),
        ("CM-B", "CM-B", "Station"),
    ]
    # (expected at the visit, to fill, packs, to bring, left in the last pack)
    assert lines_of(picks) == {
        ("CM-A", 1): (600, 1400, 2, 2000, 600),
        ("CM-A", 2): (500, 500, 1, 500, 0),
        ("CM-B", 1): (500, 500, 1, 1000, 500),
        ("CM-B", 2): (200, 300, None, 300, 0),
        ("CM-B", 3): (0, 200, 4, 200, 0),
    }
    # The van: beans 1400 + 500 = 1900 g are 2 packs (the rest of A's second pack goes into B), not 3.
    assert [
        (t.material_code, t.bins, t.to_fill, t.packs, t.to_bring, t.left_in_pack) for t in picks.totals
    ] == [
        ("BEAN-ARABICA", 2, 1900, 2, 2000, 100),
        ("CUP-12OZ", 1, 200, 4, 200, 0),
        ("MILK-POWDER", 1, 500, 1, 500, 0),
        ("SUGAR", 1, 300, None, 300, 0),
    ]


def test_a_lower_minimum_share_lists_the_bin_that_needed_little(settings, make_user, merchant, trip):
    settings.PICK_LIST_MIN_SHARE_PCT = 5
    user = make_user(Role.VIEWER, merchants=[merchant])

    picks = pick_list(user, location_ids=[trip["lobby"].pk])

    assert lines_of(picks)[("CM-A", 3)] == (185, 15, 1, 50, 35)


def test_a_later_visit_expects_more_use(make_user, merchant, trip, visit):
    user = make_user(Role.VIEWER, merchants=[merchant])

    picks = pick_list(user, location_ids=[trip["station"].pk], visit_date=visit[0] + timedelta(days=1))

    # Two days of 50 g from 250 g of sugar.
    assert lines_of(picks)[("CM-B", 2)] == (150, 350, None, 350, 0)


def test_another_merchants_location_is_unknown_and_shows_none_of_its_machines(
    staff_client, merchant, trip, expect_api_error
):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])

    theirs = viewer.get("/api/v1/pick-list", {"location": f"{trip['lobby'].pk},{trip['theirs_at'].pk}"})

    error = expect_api_error(theirs, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["location"]
    assert "THEIR-1" not in theirs.content.decode()
    missing = viewer.get("/api/v1/pick-list", {"location": "999999"})
    assert expect_api_error(missing, 400, "VALIDATION_ERROR")["message"] == error["message"].replace(
        str(trip["theirs_at"].pk), "999999"
    )


def test_platform_staff_plan_a_trip_through_several_merchants(make_user, trip):
    staff = make_user(Role.ADMIN, is_platform_staff=True)

    picks = pick_list(staff, location_ids=[trip["station"].pk, trip["theirs_at"].pk])

    assert [m.serial for m in picks.machines] == ["CM-B", "THEIR-1"]
    beans = [
        (t.merchant_id, t.to_fill, t.pack_size, t.packs)
        for t in picks.totals
        if t.material_code == "BEAN-ARABICA"
    ]
    assert beans == [(trip["b"].merchant_id, 500, 1000, 1), (trip["theirs_at"].merchant_id, 1000, 250, 4)]


def test_a_merchant_id_narrows_the_trip_and_refuses_one_not_the_users(
    make_user, merchant, other_merchant, trip
):
    staff = make_user(Role.ADMIN, is_platform_staff=True)
    viewer = make_user(Role.VIEWER, merchants=[merchant])

    with pytest.raises(Invalid) as refused:
        pick_list(staff, location_ids=[trip["theirs_at"].pk], merchant_id=merchant.pk)
    assert list(refused.value.details["fields"]) == ["location"]
    with pytest.raises(Invalid) as not_theirs:
        pick_list(viewer, location_ids=[trip["lobby"].pk], merchant_id=other_merchant.pk)
    assert list(not_theirs.value.details["fields"]) == ["merchant_id"]


def test_the_api_answers_the_pick_list_in_the_envelope(staff_client, merchant, trip, visit):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])

    reply = viewer.get(
        "/api/v1/pick-list",
        {"location": [trip["station"].pk, trip["lobby"].pk], "date": visit[0].isoformat()},
    )

    assert reply.status_code == 200, reply.content
    data = reply.json()["data"]
    # 08:00 where the machines are, with the merchant's offset.
    assert (data["date"], data["visit_at"]) == (visit[0].isoformat(), visit[1].isoformat())
    assert [loc["name"] for loc in data["locations"]] == ["Lobby", "Station"]
    machine_a = data["machines"][0]
    assert (machine_a["serial"], machine_a["location_name"], len(machine_a["bins"])) == ("CM-A", "Lobby", 2)
    read_at = (visit[1] - timedelta(days=1)).astimezone(UTC)  # stored times are answered in UTC
    assert machine_a["bins"][0]["reported_at"] == read_at.isoformat().replace("+00:00", "Z")
    assert machine_a["bins"][0] | {"bin_id": None, "reported_at": None} == {
        "bin_id": None,
        "reported_at": None,
        "index": 1,
        "material_code": "BEAN-ARABICA",
        "material_name": "Bean-Arabica",
        "unit": "g",
        "capacity": 2000.0,
        "remaining": 900.0,
        "expected_at_visit": 600.0,
        "to_fill": 1400.0,
        "pack_size": 1000.0,
        "packs": 2,
        "to_bring": 2000.0,
        "left_in_pack": 600.0,
    }
    assert [(t["material_code"], t["packs"]) for t in data["totals"]] == [
        ("BEAN-ARABICA", 2),
        ("CUP-12OZ", 4),
        ("MILK-POWDER", 1),
        ("SUGAR", None),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "location"),
        ({"location": "lobby"}, "location"),
        ({"location": "{lobby}", "date": "08/12/2026"}, "date"),
        ({"location": "{lobby}", "date": "2020-01-01"}, "date"),
        ({"location": "{lobby}", "merchant_id": "x"}, "merchant_id"),
        ({"location": "{lobby}", "colour": "blue"}, "colour"),
        ({"location": "{lobby}", "date": "2020-01-01", "format": "csv"}, "date"),
    ],
)
def test_a_bad_location_or_date_is_a_400_in_the_envelope(
    staff_client, merchant, trip, expect_api_error, params, field
):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    params = {name: value.format(lobby=trip["lobby"].pk) for name, value in params.items()}

    error = expect_api_error(viewer.get("/api/v1/pick-list", params), 400, "VALIDATION_ERROR")

    assert field in error["details"]["fields"], error


def test_the_csv_lists_each_bin_then_the_vans_totals(staff_client, merchant, trip, visit):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])

    reply = viewer.get("/api/v1/pick-list", {"location": trip["station"].pk, "format": "csv"})

    assert reply.status_code == 200, reply.content
    assert reply["Content-Type"].startswith("text/csv")
    assert reply["Content-Disposition"] == f'attachment; filename="pick-list-{visit[0].isoformat()}.csv"'
    text = reply.content.decode("utf-8")
    assert text.startswith("\ufeff")
    assert list(csv.reader(io.StringIO(text.lstrip("\ufeff")))) == [
        [
            "row",
            "location",
            "machine_serial",
            "machine",
            "bin",
            "material_code",
            "material",
            "unit",
            "capacity",
            "remaining",
            "expected_at_visit",
            "to_fill",
            "pack_size",
            "packs",
            "to_bring",
            "left_in_pack",
        ],
        [
            "bin",
            "Station",
            "CM-B",
            "CM-B",
            "1",
            "BEAN-ARABICA",
            "Bean-Arabica",
            "g",
            "1000",
            "700",
            "500",
            "500",
            "1000",
            "1",
            "1000",
            "500",
        ],
        [
            "bin",
            "Station",
            "CM-B",
            "CM-B",
            "2",
            "SUGAR",
            "Sugar",
            "g",
            "500",
            "250",
            "200",
            "300",
            "",
            "",
            "300",
            "0",
        ],
        [
            "bin",
            "Station",
            "CM-B",
            "CM-B",
            "3",
            "CUP-12OZ",
            "Cup-12Oz",
            "pcs",
            "200",
            "40",
            "0",
            "200",
            "50",
            "4",
            "200",
            "0",
        ],
        [
            "total",
            "",
            "",
            "",
            "",
            "BEAN-ARABICA",
            "Bean-Arabica",
            "g",
            "",
            "",
            "",
            "500",
            "1000",
            "1",
            "1000",
            "500",
        ],
        ["total", "", "", "", "", "CUP-12OZ", "Cup-12Oz", "pcs", "", "", "", "200", "50", "4", "200", "0"],
        ["total", "", "", "", "", "SUGAR", "Sugar", "g", "", "", "", "300", "", "", "300", "0"],
    ]


def test_the_pick_list_runs_the_same_number_of_queries_for_2_or_30_machines(
    staff_client, merchant, trip, monkeypatch
):
    # With the forecast's own expected_use: one that read a field left unloaded would cost a query a bin.
    monkeypatch.setattr("inventory.services.picklist.expected_use", forecast.expected_use)
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    params = {"location": f"{trip['lobby'].pk},{trip['station'].pk}"}

    def queries_to_list():
        with CaptureQueriesContext(connection) as queries:
            reply = viewer.get("/api/v1/pick-list", params)
        assert reply.status_code == 200, reply.content
        return len(queries), len(reply.json()["data"]["machines"])

    queries_to_list()  # the first request also learns the user's merchants (then kept on the user)
    few, machines = queries_to_list()
    for n in range(28):
        device = DeviceFactory(merchant=merchant, location=trip["station"], serial=f"MORE-{n}")
        for index, code in enumerate(("BEAN-ARABICA", "SUGAR", "CUP-12OZ"), 1):
            DeviceBinFactory(device=device, index=index, material_code=code, remaining=0, level_pct=0)
    many, more_machines = queries_to_list()

    assert (machines, more_machines) == (2, 30)
    assert many == few


def test_the_admin_page_shows_the_trip_by_machine_and_downloads_it(admin_as, trip, visit):
    viewer = admin_as(Role.VIEWER)

    empty = viewer.get(PAGE)
    page = viewer.get(
        PAGE, {"locations": [trip["lobby"].pk, trip["station"].pk], "date": visit[0].isoformat()}
    )
    download = viewer.get(
        PAGE, {"locations": [trip["station"].pk], "date": visit[0].isoformat(), "download": "csv"}
    )

    assert empty.status_code == 200 and b"CM-A" not in empty.content
    assert "Lobby" in empty.content.decode() and "Their mall" not in empty.content.decode()
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("Lobby left") < html.index("CM-A") < html.index("CM-B") < html.index("Totals")
    assert "CM-C" not in html and "CM-FAR" not in html and "THEIR-1" not in html
    assert "1,900" in html or "1900" in html
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert "CM-B" in download.content.decode() and "CM-A" not in download.content.decode()


def test_the_admin_page_refuses_another_merchants_location(admin_as, trip):
    viewer = admin_as(Role.VIEWER)

    page = viewer.get(PAGE, {"locations": [trip["theirs_at"].pk]})

    assert page.status_code == 200
    assert "THEIR-1" not in page.content.decode()
    assert f"{trip['theirs_at'].pk} is not one of the available choices" in page.content.decode()


def test_the_admin_page_says_a_past_date_is_in_the_past_and_lists_nothing(admin_as, trip, visit):
    page = admin_as(Role.OPS).get(
        PAGE, {"locations": [trip["lobby"].pk], "date": (visit[0] - timedelta(days=3)).isoformat()}
    )

    assert page.status_code == 200
    assert "The visit date is in the past." in page.content.decode()
    assert "CM-A" not in page.content.decode()


def test_platform_staff_tell_two_merchants_locations_apart_in_the_admin(admin_as, trip):
    page = admin_as(Role.ADMIN, is_platform_staff=True).get(PAGE)

    assert "Lobby · Brew Co" in page.content.decode()
    assert "Their mall · Other Beans" in page.content.decode()


def test_a_bin_reporting_in_another_unit_than_its_packs_is_not_rounded(make_user, merchant, trip):
    trip["b"].bins.filter(index=1).update(unit="ml")  # beans come in 1,000 g bags

    picks = pick_list(make_user(Role.VIEWER, merchants=[merchant]), location_ids=[trip["station"].pk])

    assert lines_of(picks)[("CM-B", 1)] == (500, 500, None, 500, 0)
    assert (picks.totals[0].material_code, picks.totals[0].unit, picks.totals[0].packs) == (
        "BEAN-ARABICA",
        "ml",
        None,
    )


def test_the_visit_is_tomorrow_morning_in_the_visited_merchants_time_zone(staff_client, merchant, settings):
    from inventory.services.picklist import pick_list

    settings.PICK_LIST_VISIT_TIME = "08:00"
    merchant.time_zone = "Europe/London"
    merchant.save()
    lobby = LocationFactory(merchant=merchant, name="Lobby")
    viewer = staff_client(Role.VIEWER, [merchant]).user
    late_evening = datetime(2026, 12, 7, 23, 30, tzinfo=zoneinfo.ZoneInfo("Europe/London"))

    picks = pick_list(viewer, location_ids=[lobby.pk], now=late_evening)

    assert picks.visit_at == datetime(2026, 12, 8, 8, 0, tzinfo=zoneinfo.ZoneInfo("Europe/London"))
