"""The admin, its live pages and the API docs work under production's Content-Security-Policy: a real
chromium reports not one violation while a person signs in, browses the fleet and watches a machine
go offline and come back."""

import re

import pytest

from tests.e2e.browser import (
    BROWSER_TEST,
    assert_machine_goes_offline_and_comes_back_live,
    launch_chromium,
    log_in,
    online_badge,
    ops_user_with_a_machine_online,
)
from tests.e2e.conftest import asgi_server

pytestmark = BROWSER_TEST

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
    window.reportCspViolation(
        `${event.effectiveDirective} refused ${event.blockedURI || "inline"}`
        + ` at ${event.sourceFile}:${event.lineNumber}`
    );
});
"""


@pytest.fixture
def csp_server(django_db_setup, django_db_blocker, tmp_path_factory):
    with asgi_server(django_db_blocker, tmp_path_factory, CSP_ENABLED="true") as server:
        yield server


class Visit:
    """A browser page that records every CSP violation and script error, on every document it opens."""

    def __init__(self, browser, server):
        self.server = server
        self.problems: list[str] = []
        context = browser.new_context()
        context.expose_function("reportCspViolation", lambda text: self.note("violation", text))
        context.add_init_script(REPORT_VIOLATIONS)
        self.page = context.new_page()
        self.page.on("pageerror", lambda error: self.note("script error", error))
        self.page.on("console", self.note_console)

    def note(self, kind: str, text) -> None:
        self.problems.append(f"{self.page.url} {kind}: {text}")

    def note_console(self, message) -> None:
        if "Content Security Policy" in message.text or "Alpine Expression Error" in message.text:
            self.note("console", message.text)

    def open(self, path: str):
        """Open `path`, check that the policy came with it, and let its scripts run."""
        from playwright.sync_api import expect

        response = self.page.goto(f"{self.server.url}{path}")
        assert response.status == 200, (path, response.status)
        self.assert_policy(response.headers.get("content-security-policy", ""), path)
        self.page.wait_for_load_state("load")
        if path.startswith("/admin/"):  # Alpine has evaluated the page (it drops x-cloak when done)
            expect(self.page.locator("html")).not_to_have_attribute("x-cloak", "")
        return response

    @staticmethod
    def assert_policy(policy: str, path: str) -> None:
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives.get("script-src") == "'self' 'unsafe-eval'", (path, policy)
        assert directives.get("connect-src") == "'self'", (path, policy)
        assert directives.get("frame-ancestors") == "'none'", (path, policy)


def test_the_admin_and_its_live_pages_work_under_the_production_policy(csp_server):
    from playwright.sync_api import expect, sync_playwright

    device_id, token = ops_user_with_a_machine_online(
        csp_server, "ops@csp.example.com", "Sup3r-Secret!", "CSP-0001"
    )

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            visit = Visit(browser, csp_server)
            page = visit.page

            visit.open("/admin/login/")
            log_in(page, "ops@csp.example.com", "Sup3r-Secret!")
            assert re.search(r"/admin/$", page.url), page.url

            visit.open("/admin/")
            visit.open("/admin/devices/device/")
            expect(online_badge(page, device_id)).to_have_text(re.compile(r"^\s*Online\s*$"))

            visit.open(f"/admin/devices/device/{device_id}/change/")
            assert_machine_goes_offline_and_comes_back_live(page, csp_server, device_id, token)

            visit.open("/api/v1/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("coffeeshop API", timeout=15_000)
            visit.open("/api/v1/")  # the browsable API, whose log-out is a form and no inline script
            page.locator(".navbar .dropdown-toggle").click()
            with page.expect_navigation():
                page.get_by_role("button", name="Log out").click()
            expect(page.locator(".navbar")).to_contain_text("Log in")
            visit.open("/api/v1/auth/login/")

            assert visit.problems == [], "\n".join(visit.problems)
        finally:
            browser.close()
