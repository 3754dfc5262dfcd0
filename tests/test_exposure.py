"""What the world can read: /metrics for the scraper only, the API docs and schema for staff only, in
production; both open in development (the production defaults are checked in test_settings.py)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import Role

TOKEN = "scraper-secret-0123456789"
pytestmark = pytest.mark.django_db  # the metrics page reads the business figures from the database


@pytest.fixture
def production_exposure(settings):
    """The production defaults: no address may read /metrics, the docs are for staff."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    settings.API_DOCS_PUBLIC = False
    return settings


def is_metrics_page(reply) -> bool:
    return reply.status_code == 200 and b"django_http_requests_before_middlewares_total" in reply.content


# --- /metrics ------------------------------------------------------------------------------------


def test_metrics_are_refused_to_anyone_in_production(production_exposure, client):
    reply = client.get("/metrics")

    assert reply.status_code == 403
    assert b"django_http" not in reply.content


def test_the_scraper_reads_metrics_with_its_bearer_token(production_exposure, client):
    production_exposure.METRICS_TOKEN = TOKEN

    assert is_metrics_page(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"))
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 403
    assert client.get("/metrics").status_code == 403


def test_an_empty_token_opens_nothing(production_exposure, client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer").status_code == 403


def test_metrics_open_to_allowed_addresses_and_networks(production_exposure, client):
    production_exposure.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]

    for address in ("10.20.30.40", "192.0.2.7", "2001:db8::1"):
        assert is_metrics_page(client.get("/metrics", REMOTE_ADDR=address)), address
    for address in ("192.0.2.8", "11.0.0.1", "2001:db9::1", "127.0.0.1"):
        assert client.get("/metrics", REMOTE_ADDR=address).status_code == 403, address


def test_a_forwarded_for_header_does_not_make_an_outsider_an_allowed_address(production_exposure, client):
    production_exposure.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]

    reply = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.0.0.1")

    assert reply.status_code == 403


def test_metrics_are_open_in_development(client):
    assert is_metrics_page(client.get("/metrics"))


# --- /api/v1/docs and /api/v1/schema -------------------------------------------------------------


def test_an_anonymous_script_gets_the_envelopes_401_for_the_schema_in_production(
    production_exposure, api, expect_api_error
):
    for params in ({}, {"format": "json"}, {"format": "yaml"}):
        reply = api.get("/api/v1/schema", params)

        assert reply["Content-Type"].startswith("application/json"), params
        expect_api_error(reply, 401, "UNAUTHORIZED")
        assert b"openapi" not in reply.content


def test_an_anonymous_person_is_sent_to_log_in_for_the_docs_and_comes_back(production_exposure, api):
    reply = api.get("/api/v1/docs")

    assert reply.status_code == 302
    assert reply["Location"] == "/admin/login/?next=/api/v1/docs"
    assert b"swagger" not in reply.content.lower()


def test_a_signed_in_user_who_is_not_staff_gets_neither(production_exposure, make_user, expect_api_error):
    client = APIClient()
    client.force_login(make_user(Role.VIEWER, is_staff=False))

    expect_api_error(client.get("/api/v1/schema"), 403, "FORBIDDEN")
    assert client.get("/api/v1/docs").status_code == 302
    assert client.get("/api/v1/docs", {"script": ""}).status_code == 302


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPS, Role.ADMIN])
def test_signed_in_staff_read_the_docs_and_the_schema_in_production(
    production_exposure, staff_client, merchant, role
):
    client = staff_client(role, [merchant])

    docs = client.get("/api/v1/docs")
    docs_script = client.get("/api/v1/docs", {"script": ""})
    schema = client.get("/api/v1/schema", {"format": "json"})

    assert docs.status_code == 200
    assert b"/api/v1/schema" in docs_script.content
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "coffeeshop API"


def test_a_script_reads_the_schema_with_its_drf_token_in_production(production_exposure, make_user, merchant):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user(Role.VIEWER, [merchant])).key}"
    )

    reply = client.get("/api/v1/schema")

    assert reply.status_code == 200
    assert b"openapi:" in reply.content


def test_the_docs_and_schema_are_open_in_development(api):
    assert api.get("/api/v1/docs").status_code == 200
    assert api.get("/api/v1/schema").status_code == 200
