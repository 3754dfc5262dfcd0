import pytest
from django.test import Client


@pytest.fixture
def admin_as(make_user, merchant):
    """admin_as(role, **extra) -> an admin client of a fresh user of Brew Co, or as `extra` says
    (is_platform_staff=True)."""

    def make(role, **extra):
        user = make_user(role, **extra) if extra else make_user(role, merchants=[merchant])
        client = Client()
        client.force_login(user)
        return client

    return make
