"""A person in the admin watches a machine go offline and come back, without reloading the page."""

from tests.e2e.browser import (
    BROWSER_TEST,
    assert_machine_goes_offline_and_comes_back_live,
    ops_signed_in_with_a_machine_online,
)

pytestmark = BROWSER_TEST


def test_ops_user_sees_a_machine_go_offline_and_come_back_live(live_asgi_server):
    with ops_signed_in_with_a_machine_online(
        live_asgi_server, "ops@live.example.com", "Sup3r-Secret!", "LIVE-0001", "/admin/devices/device/"
    ) as (page, device_id, token):
        assert_machine_goes_offline_and_comes_back_live(page, live_asgi_server, device_id, token)
