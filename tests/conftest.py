import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from devices.selectors import forget_device_merchants
from devices.services import register_device
from inventory.selectors import forget_material_codes
from tests.factories import DEMO_MATERIALS, MaterialFactory, MerchantFactory, UserFactory


@pytest.fixture(autouse=True)
def _isolated_caches(settings):
    """Each test starts with an empty cache (throttles, token cache) and a fresh material memo."""
    from django.core.cache import cache

    from coffeeshop.api.throttling import COUNTS_WHILE_REDIS_IS_OUT
    from coffeeshop.redis import delete_matching, get_redis, reset_breaker

    reset_breaker()
    cache.clear()
    COUNTS_WHILE_REDIS_IS_OUT.clear()
    redis = get_redis()
    if redis is not None:
        delete_matching(redis, f"{settings.CACHES['default'].get('KEY_PREFIX', 'coffeeshop')}:*")
    forget_material_codes()
    forget_device_merchants()
    yield
    forget_material_codes()
    forget_device_merchants()
    reset_breaker()


@pytest.fixture
def api():
    """An API client that enforces CSRF like a browser session would."""
    return APIClient(enforce_csrf_checks=True)


@pytest.fixture
def merchant(db):
    return MerchantFactory(name="Brew Co")


@pytest.fixture
def other_merchant(db):
    return MerchantFactory(name="Other Beans")


@pytest.fixture
def materials(merchant):
    """The demo catalogue of merchant Brew Co (the `merchant` fixture)."""
    return [MaterialFactory(merchant=merchant, code=code) for code in DEMO_MATERIALS]


@pytest.fixture
def media_root(settings, tmp_path):
    """Files the test stores (exports, packages) go to its own folder, `tmp_path`."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def make_user(db):
    def make(role=Role.VIEWER, merchants=(), **extra):
        return UserFactory(role=role, merchants=list(merchants), **extra)

    return make


@pytest.fixture
def staff_client(make_user):
    """staff_client(role, merchants) -> an APIClient logged in as a fresh user of that role."""

    def make(role=Role.VIEWER, merchants=(), **extra):
        client = APIClient(enforce_csrf_checks=True)
        user = make_user(role=role, merchants=merchants, **extra)
        client.force_authenticate(user)
        client.user = user
        return client

    return make


@pytest.fixture
def registered(merchant, materials):
    """A machine registered through the service, with its token."""
    return register_device(
        serial="CM2K-000123",
        model="CM-2000",
        firmware="1.4.2",
        provisioning_secret=merchant.provisioning_secret,
        alias="Lobby A",
    )


@pytest.fixture
def machine(registered):
    """An API client speaking as the registered machine (Authorization: Device <token>)."""
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Device {registered.token}")
    client.device = registered.device
    client.token = registered.token
    return client


@pytest.fixture
def machine_client(db):
    """machine_client(device) -> an APIClient speaking as `device` with a freshly issued token."""
    from devices.services import issue_token

    def make(device):
        token = issue_token(device)
        client = APIClient(enforce_csrf_checks=True)
        client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
        client.device = device
        client.token = token
        return client

    return make


@pytest.fixture
def expect_api_error():
    """expect_api_error(reply, status, code) -> the reply's `error`, once checked to be the envelope."""

    def check(reply, status, code):
        assert reply.status_code == status, reply.content
        assert reply["Content-Type"].startswith("application/json"), reply["Content-Type"]
        body = reply.json()
        assert set(body) == {"ok", "error"}, body
        assert body["ok"] is False
        assert set(body["error"]) == {"code", "message", "details"}, body
        assert body["error"]["code"] == code, body
        assert body["error"]["message"], body
        return body["error"]

    return check


# --- Sales (orders) ------------------------------------------------------------------------------


def protocol_order(order_id="CM2K-000123-20261124-0042", **overrides):
    """The protocol's example order (../shared/protocol.md, Orders); keyword arguments replace fields."""
    body = {
        "order_id": order_id,
        "created_at": "2026-11-24T08:14:31+08:00",
        "currency": "CNY",
        "total": "36.00",
        "payment": {"method": "wechat", "status": "paid", "transaction_id": "wx-4200001234"},
        "items": [
            {
                "product_id": "latte",
                "name": "Latte",
                "qty": 2,
                "unit_price": "18.00",
                "recipe_version": "3",
                "options": {"size": "large", "sugar": 1},
            }
        ],
        "is_test": False,
    }
    body.update(overrides)
    return body


@pytest.fixture
def order_body():
    """order_body(order_id, **overrides) -> a valid protocol order (the protocol's example by default)."""
    return protocol_order


@pytest.fixture
def fast_passwords(settings):
    """Users made by the dozen: hash their passwords with a fast hasher (tests of login keep the real one)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
