"""Every reply under /api/v1/ is the envelope, a path that matches nothing included, and /api/v1/ is
the front door listing the staff endpoints."""

import pytest
from rest_framework.test import APIClient


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/materials/1/nope", "/api/v1/ordres", "/api/v1/devices/1/nope", "/api/v1/orders/"]
)
@pytest.mark.parametrize("debug", [True, False])
def test_a_path_matching_no_route_is_the_envelopes_404(settings, path, debug):
    settings.DEBUG = debug
    reply = APIClient().post(path, {}, format="json")
    assert reply.status_code == 404
    assert reply["Content-Type"].startswith("application/json")
    assert reply.json() == {
        "ok": False,
        "error": {"code": "NOT_FOUND", "message": "Not found.", "details": {}},
    }


@pytest.mark.django_db
def test_the_root_links_the_staff_endpoints(staff_client, merchant):
    from accounts.models import Role

    reply = staff_client(Role.VIEWER, [merchant]).get("/api/v1/")
    assert reply.status_code == 200
    links = reply.json()["data"]
    for name in (
        "orders",
        "devices",
        "locations",
        "alarms",
        "commands",
        "commands/batches",
        "jobs",
        "me",
        "docs",
    ):
        assert links[name].startswith("http://testserver/api/v1/"), name


@pytest.mark.django_db
def test_the_root_is_browsable(client):
    reply = client.get("/api/v1/", HTTP_ACCEPT="text/html")
    assert reply.status_code == 200 and b"/api/v1/orders" in reply.content
