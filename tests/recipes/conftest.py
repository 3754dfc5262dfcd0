import pytest
from django.test import Client

from tests.factories import LATTE_STEPS, RecipeFactory


@pytest.fixture
def latte_steps():
    """latte_steps() -> a fresh copy of the protocol's latte steps, to change at will."""
    return lambda: [dict(step) for step in LATTE_STEPS]


@pytest.fixture
def latte(merchant, materials):
    """Brew Co's latte, with no version yet; Brew Co's catalogue holds the demo materials."""
    return RecipeFactory(
        merchant=merchant, product_id="latte", name="Latte", category="coffee", price="18.00"
    )


@pytest.fixture
def admin_client_as(make_user, merchant):
    """admin_client_as(role) -> an admin client of a fresh user of Brew Co (the user is `client.user`)."""

    def make(role):
        client = Client()
        client.user = make_user(role, merchants=[merchant])
        client.force_login(client.user)
        return client

    return make
