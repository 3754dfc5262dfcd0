"""The recipes issue's demo in a real browser: an operator authors a recipe and publishes it, builds a
package (a real Celery worker builds it), rolls it out to a canary of the simulated fleet whose one
machine fails every install, watches the rollout halt by itself on its page without reloading, and
rolls back. The periodic job runs here as beat would run it."""

import asyncio
import json
import os
import re
import secrets
import threading

from accounts.models import Role
from devices.models import Device
from recipes.models import RecipePackage, Rollout, RolloutMachine
from recipes.services import rollouts
from recipes.services.packages import build_package, start_package_build
from simulator import run_fleet
from tests.e2e.browser import BROWSER_TEST, in_other_thread, launch_chromium, log_in
from tests.e2e.conftest import asgi_server, celery_worker
from tests.factories import (
    LATTE_STEPS,
    RecipeFactory,
    RecipeVersionFactory,
    UserFactory,
    merchant_with_catalogue,
)

pytestmark = BROWSER_TEST

EMAIL, PASSWORD = "ops@rollout.example.com", "Sup3r-Secret!"
FACTORY_MENU = "2026.1.0"  # what simulated machines leave the factory with (simulator.MENU)


class FleetInAThread:
    """The simulated fleet on its own event loop (Playwright's sync API owns this thread's)."""

    def __init__(self, **options):
        self.options, self.started = options, threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self):
        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        self.started.set()
        self.stats = await run_fleet(stop=self.stop, **self.options)

    def __enter__(self):
        self.thread.start()
        self.started.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


class Beat:
    """`advance_rollouts` every second, as beat runs the periodic job (every 15 s in production)."""

    def __init__(self):
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        from django.db import connections

        try:
            while not self.done.wait(1):
                rollouts.advance_rollouts()
        finally:
            connections.close_all()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(30)


def the_factory_menu_as_a_package(merchant, ops):
    """The menu the machines run, built as the merchant's first package: what a rollback returns to."""
    recipe = RecipeFactory(merchant=merchant, product_id="americano", name="Americano", price="12.00")
    package = start_package_build(
        merchant=merchant,
        version=FACTORY_MENU,
        machine_models=["CM-2000", "CM-3000"],
        recipe_version_ids=[RecipeVersionFactory(recipe=recipe, status="published").pk],
        user=ops,
        enqueue=lambda job_id: None,
    )
    build_package(package.job_id)
    return package


def test_an_operator_authors_builds_rolls_out_sees_the_canary_halt_and_rolls_back(
    django_db_blocker, tmp_path_factory, settings
):
    from playwright.sync_api import expect, sync_playwright

    queue = f"e2e-rollout-browser-{os.getpid()}-{secrets.token_hex(3)}"
    settings.PACKAGE_INSTALL_TIMEOUT_S = 6  # the failing machine's offer fails after this (beat decides)
    merchant = merchant_with_catalogue(name="Canary Coffee")
    ops = UserFactory(email=EMAIL, role=Role.OPS, merchants=[merchant], password=PASSWORD)
    with (
        asgi_server(django_db_blocker, tmp_path_factory, CELERY_TASK_DEFAULT_QUEUE=queue) as server,
        celery_worker(queue, django_db_blocker, server.data_dir),
    ):
        settings.MEDIA_ROOT = server.data_dir / "media"  # the first package is built here, served there
        first = the_factory_menu_as_a_package(merchant, ops)
        fleet = FleetInAThread(
            base_url=server.url,
            provisioning_secret=merchant.provisioning_secret,
            devices=3,  # models: CM-2000, CM-3000, EspressoPro (never offered these packages)
            heartbeat_interval_s=0.5,
            offline_probability=0,
            serial_prefix="CA",
            seed=7,
            sales_per_hour=0,
            command_time_scale=0.2,
            misbehaving_serials={"CA-000002": ["fail_installs"]},
        )
        with fleet, Beat(), sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                page = browser.new_page()
                page.goto(f"{server.url}/admin/login/?next=/admin/recipes/recipe/add/")
                log_in(page, EMAIL, PASSWORD)

                page.get_by_label(re.compile("product id", re.I)).fill("flat-white")
                page.get_by_label(re.compile("^name", re.I)).fill("Flat white")
                page.get_by_label(re.compile("category", re.I)).fill("coffee")
                page.get_by_label(re.compile("price", re.I)).fill("22.00")
                save_and_continue(page)
                page.get_by_role("link", name=re.compile("new draft", re.I)).click()
                page.get_by_label(re.compile("definition", re.I)).fill(json.dumps({"steps": LATTE_STEPS}))
                save_and_continue(page)
                page.locator('a[href$="/publish/"]').first.click()
                page.locator("#dialog").get_by_role("button", name=re.compile("publish", re.I)).click()
                expect(page.get_by_text(re.compile("is published", re.I)).first).to_be_visible()

                page.goto(f"{server.url}/admin/recipes/recipepackage/add/")
                page.locator("input[name=version]").fill("2026.12.1")
                page.locator("input[name=machine_models]").fill("CM-2000, CM-3000")
                page.locator("label", has_text="flat-white").locator("input").check()
                page.get_by_role("button", name=re.compile("build", re.I)).click()
                ready = RecipePackage.objects.filter(version="2026.12.1", status=RecipePackage.Status.READY)
                wait_for(ready.exists, "the worker to build the package")
                page.reload()
                expect(page.get_by_text(re.compile("download the package", re.I))).to_be_visible()

                wait_for(lambda: Device.objects.filter(merchant=merchant).count() == 3, "the fleet")
                page.goto(f"{server.url}/admin/devices/device/")
                page.locator("#action-toggle").check()
                page.locator("select[name=action]").select_option("roll_out_to_selected")
                page.get_by_role("button", name=re.compile("^run$", re.I)).click()
                page.locator("select[name=package]").select_option(label="2026.12.1")
                page.locator("input[name=canary]").fill("2")
                page.locator("input[name=failure_threshold_pct]").fill("50")
                page.evaluate("window.__notReloaded = true")
                page.get_by_role("button", name=re.compile("start the rollout", re.I)).click()
                page.wait_for_url(re.compile(r"/admin/recipes/rollout/\d+/change/"))
                page.evaluate("window.__notReloaded = true")

                canary = page.locator('.cs-rollout-stage[data-stage="0"]')
                expect(canary.locator('[data-status="stage_status"]')).to_have_text("halted", timeout=30_000)
                expect(canary.locator('[data-status="installed"]')).to_have_text("1")
                expect(canary.locator('[data-status="failed"]')).to_have_text("1")
                health = page.locator('.cs-rollout-health-row[data-version="2026.12.1"] td').nth(1)
                expect(health).to_have_text("1")  # the machine that took it, beside the one that did not
                assert page.evaluate("window.__notReloaded === true"), "the page reloaded instead of updating"

                page.get_by_role("link", name=re.compile("roll back", re.I)).click()
                page.wait_for_url(re.compile(r"/admin/recipes/rollout/\d+/change/"))
                back = page.locator('.cs-rollout-stage[data-stage="0"]')
                expect(back.locator('[data-status="installed"]')).to_have_text("1", timeout=30_000)
            except Exception:
                page.screenshot(path="/tmp/rollout-browser.png", full_page=True)
                raise
            finally:
                browser.close()

    halted = Rollout.objects.get(package__version="2026.12.1")
    assert halted.status == Rollout.Status.ABORTED and "1 of 2" in halted.halted_reason
    rollback = Rollout.objects.get(rollback_of=halted)
    assert rollback.package == first
    assert dict(rollback.machines.values_list("device__serial", "status")) == {
        "CA-000001": RolloutMachine.Status.INSTALLED
    }
    built = RecipePackage.objects.get(version="2026.12.1")
    assert built.recipe_versions.get().recipe.product_id == "flat-white"
    assert fleet.stats.package_installs_failed >= 1


def save_and_continue(page) -> None:
    with page.expect_navigation():
        page.locator("button[name=_continue]").click()


def wait_for(check, what: str, timeout_s: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not in_other_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
