"""JSON nested past the protocol's 32 levels is a 400 in the envelope at every door, before it is
parsed: never a RecursionError answered 500 (protocol 1.1, Conventions: Limits)."""

import json

import pytest
from rest_framework.test import APIClient

from coffeeshop.api.parsers import MAX_JSON_DEPTH, nesting_depth


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_brackets_inside_strings_do_not_count():
    assert nesting_depth(json.dumps({"a": [{"b": "[[[[{{{{"}]})) == 3
    assert nesting_depth(json.dumps({"quote": 'say \\"[[[\\"'})) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 2000, 100_000])
def test_too_deep_is_a_400_on_registration_heartbeat_and_staff_api(
    registered, staff_client, merchant, levels
):
    from accounts.models import Role

    machine = APIClient()
    machine.credentials(HTTP_AUTHORIZATION=f"Device {registered.token}")
    replies = [
        APIClient().post("/api/v1/devices/register", nested(levels), content_type="application/json"),
        machine.post(
            f"/api/v1/devices/{registered.device.pk}/status", nested(levels), content_type="application/json"
        ),
        staff_client(Role.ADMIN, [merchant]).post(
            "/api/v1/locations", nested(levels), content_type="application/json"
        ),
    ]
    for reply in replies:
        assert reply.status_code == 400, reply.content[:300]
        assert reply.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.django_db
def test_thirty_two_levels_are_parsed_and_judged_as_usual(registered):
    body = {"serial": "CM2K-1", "model": "M", "firmware": "1", "provisioning_secret": "x", "alias": "a"}
    deep = body
    for _ in range(MAX_JSON_DEPTH - 2):
        deep["extra"] = {}
        deep = deep["extra"]
    reply = APIClient().post("/api/v1/devices/register", body, format="json")
    assert reply.status_code in (400, 403)  # the wrong secret, not the depth
    assert "deeper" not in reply.json()["error"]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["\\ud800", "a\\udfffb", "\\ude00\\ud83d"])
def test_an_unpaired_surrogate_is_a_400_at_every_door_never_a_500(machine, staff_client, merchant, text):
    """Found by probing past schemathesis: a choice field echoed '"\\ud800" is not a valid choice',
    which no UTF-8 reply can carry."""
    from accounts.models import Role

    staff = staff_client(Role.ADMIN, [merchant])
    device = machine.device.pk
    doors = [
        (APIClient(), "/api/v1/devices/register", '{"serial": "%s"}'),
        (machine, f"/api/v1/devices/{device}/status", '{"state": "%s"}'),
        (machine, f"/api/v1/devices/{device}/orders/create", '{"payment": {"status": "%s"}}'),
        (staff, f"/api/v1/devices/{device}/commands", '{"type": "%s"}'),
        (staff, "/api/v1/locations", '{"merchant_id": 1, "name": "x", "extra": {"%s": 1}}'),
    ]
    for client, path, body in doors:
        reply = client.post(path, body % text, content_type="application/json")
        assert reply.status_code == 400, (path, reply.content[:300])
        assert reply.json()["error"]["code"] == "VALIDATION_ERROR"
        assert "surrogate" in reply.json()["error"]["message"]


@pytest.mark.django_db
def test_a_surrogate_pair_is_the_character_it_spells(staff_client, merchant):
    from accounts.models import Role

    body = json.dumps({"merchant_id": merchant.pk, "name": "Lobby \N{GRINNING FACE}"})
    assert "\\ud83d\\ude00" in body  # sent as the pair of escapes
    reply = staff_client(Role.ADMIN, [merchant]).post(
        "/api/v1/locations", body, content_type="application/json"
    )
    assert reply.status_code == 201, reply.content
    assert reply.json()["data"]["name"] == "Lobby \N{GRINNING FACE}"
