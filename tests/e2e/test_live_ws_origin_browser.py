"""The production shape on two ports: gunicorn serves the admin's pages and daphne `/ws/` on another
port (LIVE_WS_ORIGIN). A page from gunicorn opens its live socket on daphne, under the policy, and
follows a machine going offline and coming back without a reload."""

from tests.e2e.browser import (
    BROWSER_TEST,
    assert_machine_goes_offline_and_comes_back_live,
    ops_signed_in_with_a_machine_online,
)
from tests.e2e.conftest import asgi_server, wsgi_server

pytestmark = BROWSER_TEST


def test_a_page_served_by_gunicorn_follows_a_machine_live_through_daphne_on_another_port(
    django_db_blocker, tmp_path_factory
):
    from playwright.sync_api import expect

    with (
        asgi_server(django_db_blocker, tmp_path_factory) as daphne,
        wsgi_server(
            django_db_blocker,
            tmp_path_factory,
            LIVE_WS_ORIGIN=daphne.ws_url,
            CSP_ENABLED="true",
            MAX_QUEUE_WAIT_MS="0",
        ) as gunicorn,
        ops_signed_in_with_a_machine_online(
            gunicorn, "ops@two-ports.example.com", "Tw0-Ports!x", "PORTS-0001", "/admin/devices/device/"
        ) as (page, device_id, token),
    ):
        console, sockets = [], []
        page.on("console", lambda message: console.append(message.text))
        page.on("websocket", lambda socket: sockets.append(socket.url))
        page.reload()  # with the listeners on from the first request
        expect(page.locator("html")).to_have_attribute("data-live-socket", "connected", timeout=30_000)

        assert_machine_goes_offline_and_comes_back_live(page, gunicorn, device_id, token)

    assert sockets and set(sockets) == {f"{daphne.ws_url}/ws/live/"}, sockets
    refused = [text for text in console if "Content Security Policy" in text]
    assert refused == [], refused
