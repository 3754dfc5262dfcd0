"""An operator who reads Chinese gets the admin and the API's messages in Chinese, from the browser's
language or the admin's switch, while the codes machines and scripts compare stay English."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role
from tests.factories import DeviceFactory, OrderFactory

pytestmark = pytest.mark.django_db

DEVICES = "/admin/devices/device/"


@pytest.fixture
def admin_client_for(merchant, make_user):
    """admin_client_for(**headers) -> a browser logged in as an Admin of Brew Co, sending those headers."""

    def make(**headers):
        client = Client(**headers)
        client.force_login(make_user(Role.ADMIN, merchants=[merchant]))
        return client

    return make


@pytest.mark.parametrize("accept_language", ["zh-Hans", "zh-CN", "zh", "zh-Hans-CN,zh;q=0.9,en;q=0.8"])
def test_a_browser_asking_for_chinese_gets_the_login_page_in_chinese(accept_language):
    html = Client().get("/admin/login/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()

    assert '<html lang="zh-hans"' in html
    assert "欢迎回到" in html  # unfold's "Welcome back to", from locale/vendor
    assert "邮箱" in html and "密码" in html  # our "e-mail" label, Django's "Password"
    assert "Welcome back to" not in html


def test_a_browser_asking_for_english_or_nothing_gets_english():
    for headers in ({"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}, {}):
        html = Client().get("/admin/login/", **headers).content.decode()

        assert '<html lang="en"' in html
        assert "Welcome back to" in html
        assert "欢迎回到" not in html


def test_the_device_list_is_in_chinese(merchant, admin_client_for):
    DeviceFactory(merchant=merchant, alias="Lobby")

    html = admin_client_for(HTTP_ACCEPT_LANGUAGE="zh-Hans").get(DEVICES).content.decode()

    assert "Lobby" in html
    for chinese in [
        "设备管理",
        "最后在线",
        "向所选设备发送指令",
        "料仓",
        "灰度发布",
        "应用筛选",
        "空闲",
        "1 / 1 在线",
    ]:
        assert chinese in html, chinese
    for english in ["Last seen", "Send command to selected machines", "Apply Filters", "Recipe packages"]:
        assert english not in html, english


def test_dates_and_money_in_the_order_list_follow_the_language(merchant, admin_client_for):
    device = DeviceFactory(merchant=merchant)
    # 08:14 UTC is 16:14 in Brew Co's Asia/Shanghai.
    OrderFactory(
        device=device, total=Decimal("1234.50"), received_at=dt.datetime(2026, 11, 24, 8, 14, tzinfo=dt.UTC)
    )
    orders = reverse("admin:orders_order_changelist")

    chinese = admin_client_for(HTTP_ACCEPT_LANGUAGE="zh-Hans").get(orders).content.decode()
    english = admin_client_for(HTTP_ACCEPT_LANGUAGE="en").get(orders).content.decode()

    assert "2026年11月24日 16:14" in chinese
    assert "Nov. 24, 2026, 4:14 p.m." in english
    assert "1234.50" in chinese and "1234.50" in english
    assert "微信支付" in chinese and "WeChat Pay" in english


def test_the_admin_language_switch_turns_the_admin_chinese_and_back(merchant, admin_client_for):
    DeviceFactory(merchant=merchant)
    client = admin_client_for(HTTP_ACCEPT_LANGUAGE="en")
    english = client.get(DEVICES).content.decode()
    assert f'action="{reverse("set_language")}"' in english  # unfold's selector in the user menu
    assert 'name="language" type="hidden" value="zh-hans"' in english

    switched = client.post(reverse("set_language"), {"language": "zh-hans", "next": DEVICES})

    assert switched.status_code == 302 and switched["Location"] == DEVICES
    chinese = client.get(DEVICES).content.decode()  # the browser still asks for English
    assert '<html lang="zh-hans"' in chinese and "最后在线" in chinese and "Last seen" not in chinese

    client.post(reverse("set_language"), {"language": "en", "next": DEVICES})

    assert "Last seen" in client.get(DEVICES).content.decode()


def test_the_language_switch_answers_only_a_post_with_a_csrf_token(merchant, admin_client_for):
    DeviceFactory(merchant=merchant)
    client = admin_client_for(enforce_csrf_checks=True)

    refused = client.post(reverse("set_language"), {"language": "zh-hans", "next": DEVICES})

    assert refused.status_code == 403
    assert "Last seen" in client.get(DEVICES).content.decode()


def test_an_api_error_speaks_chinese_but_keeps_its_english_code(staff_client, merchant, expect_api_error):
    client = staff_client(Role.VIEWER, [merchant])

    not_found = expect_api_error(
        client.get("/api/v1/devices/999999", HTTP_ACCEPT_LANGUAGE="zh-Hans"), 404, "NOT_FOUND"
    )
    unknown = expect_api_error(
        client.get("/api/v1/devices?colour=red", HTTP_ACCEPT_LANGUAGE="zh-CN"), 400, "VALIDATION_ERROR"
    )
    english = expect_api_error(client.get("/api/v1/devices/999999"), 404, "NOT_FOUND")

    assert not_found["message"] == "未找到。"
    assert unknown["details"]["fields"]["colour"][0].startswith("未知参数。可用参数：")
    assert english["message"] == "Not found."


def test_a_machine_hears_its_errors_in_chinese_when_it_asks_with_english_codes(
    api, registered, expect_api_error
):
    api.credentials(HTTP_AUTHORIZATION="Device not-a-token")

    error = expect_api_error(
        api.post(
            f"/api/v1/devices/{registered.device.pk}/status",
            {"state": "idle"},
            format="json",
            HTTP_ACCEPT_LANGUAGE="zh-Hans",
        ),
        401,
        "UNAUTHORIZED",
    )

    assert error["message"] == "设备令牌未知或已吊销。"
