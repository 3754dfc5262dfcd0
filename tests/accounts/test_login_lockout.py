import pytest
from django.test import Client

from accounts.models import Role

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/?next=/admin/"


def attempt(client, email, password):
    return client.post(LOGIN_URL, {"username": email, "password": password})


def test_the_right_password_logs_in(make_user):
    make_user(role=Role.VIEWER, email="kim@example.com")
    response = attempt(Client(), "kim@example.com", "Passw0rd!x")
    assert response.status_code == 302 and response.url == "/admin/"


def test_repeated_failed_logins_lock_the_account_out_even_with_the_right_password(make_user, settings):
    make_user(role=Role.VIEWER, email="kim@example.com")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "kim@example.com", "wrong-password").status_code == 200
    assert attempt(client, "kim@example.com", "wrong-password").status_code == 429
    locked = attempt(client, "kim@example.com", "Passw0rd!x")
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_of_one_account_leaves_other_accounts_alone(make_user, settings):
    make_user(role=Role.VIEWER, email="kim@example.com")
    make_user(role=Role.VIEWER, email="lee@example.com")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "kim@example.com", "wrong-password")
    assert attempt(client, "lee@example.com", "Passw0rd!x").status_code == 302
