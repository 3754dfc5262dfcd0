"""The bodies a machine builds for its protocol calls: exactly the protocol's fields and types."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from simulator import DEFAULT_BINS, MACHINE_STATES
from tests.simulator.fakes import ISO_WITH_OFFSET, SECRET, make_machine

# --- Protocol bodies ---------------------------------------------------------------------------------


def test_registration_body_has_exactly_the_protocol_fields():
    body = make_machine().registration_body(SECRET)

    assert body == {
        "serial": "SIM-000001",
        "model": "CM-2000",
        "firmware": "1.4.2",
        "provisioning_secret": SECRET,
        "alias": "Lobby 1",
    }


def test_heartbeat_body_has_exactly_the_protocol_fields_and_types():
    machine = make_machine()
    machine.step()

    body = machine.heartbeat_body()

    assert set(body) == {
        "state",
        "temperature_c",
        "ip",
        "wifi",
        "firmware",
        "uptime_s",
        "package_version",
        "sent_at",
        "bins",
    }
    assert body["state"] in MACHINE_STATES
    assert type(body["temperature_c"]) is float
    assert isinstance(body["ip"], str) and len(body["ip"].split(".")) == 4
    assert set(body["wifi"]) == {"ssid", "rssi_dbm"}
    assert isinstance(body["wifi"]["ssid"], str) and type(body["wifi"]["rssi_dbm"]) is int
    assert -100 < body["wifi"]["rssi_dbm"] < 0
    assert body["firmware"] == "1.4.2"
    assert type(body["uptime_s"]) is int and body["uptime_s"] >= 0
    assert isinstance(body["package_version"], str)
    assert ISO_WITH_OFFSET.match(body["sent_at"])
    assert len(body["bins"]) == len(DEFAULT_BINS)
    for reported in body["bins"]:
        assert set(reported) == {"index", "material", "remaining", "capacity", "unit"}
        assert all(type(reported[name]) is int for name in ("index", "remaining", "capacity"))
        assert 0 <= reported["remaining"] <= reported["capacity"]
    assert json.loads(json.dumps(body)) == body, "plain JSON, no Decimals or datetimes"


def test_materials_body_names_only_the_refilled_bins_flagged_as_refilled():
    machine = make_machine()
    moment = datetime(2026, 11, 24, 8, 15, tzinfo=UTC)

    body = machine.materials_body({2, 5}, now=moment)

    assert body["sent_at"] == "2026-11-24T08:15:00Z"
    assert [reported["index"] for reported in body["bins"]] == [2, 5]
    assert all(reported["refilled"] is True for reported in body["bins"])
    assert set(body["bins"][0]) == {"index", "material", "remaining", "capacity", "unit", "refilled"}


def test_the_machine_clock_is_near_real_time_but_may_drift_and_use_its_own_zone():
    machine = make_machine()

    sent_at = datetime.fromisoformat(machine.heartbeat_body()["sent_at"].replace("Z", "+00:00"))

    assert sent_at.utcoffset() in {timedelta(0), timedelta(hours=8)}
    assert abs(sent_at - datetime.now(UTC)) < timedelta(seconds=30)


def test_no_money_slips_into_a_body_as_a_float_or_decimal():
    body = make_machine().heartbeat_body()

    def leaves(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        elif isinstance(value, list):
            for item in value:
                yield from leaves(item)
        else:
            yield value

    assert not any(isinstance(leaf, Decimal) for leaf in leaves(body))
    assert [name for name, value in body.items() if isinstance(value, float)] == ["temperature_c"]
