"""Recipe packages on the simulated machines: offered in a heartbeat reply or sent by an `upgrade`
command, downloaded and checked, installed (or not, and then the old one kept), reported in the
heartbeats; what a machine running a package sells and what each cup takes from its bins."""

import hashlib
import json
from collections import Counter
from decimal import Decimal

import pytest

from simulator import (
    FACTORY_PACKAGE_VERSION,
    MENU,
    EventKind,
    FleetEvent,
    PackageOffer,
    PackageRefused,
    read_package,
)
from tests.simulator.fakes import (
    LATTE_RECIPE,
    FakeServer,
    clocked_machine,
    commanded_machine,
    fake_client,
    fly,
    no_sleep_session,
    recipe,
    serve_package,
    settle,
    upgrade_payload,
)

OAT_FLAT_WHITE = recipe(
    "oat_flat_white",
    "Oat Flat White",
    "1",
    "24.00",
    {"action": "grind", "material": "BEAN-ARABICA", "amount": 20, "unit": "g"},
    {"action": "brew", "water_ml": 35, "temperature_c": 94},
    {"action": "add", "material": "OAT-MILK", "amount": 120, "unit": "ml"},
)


async def installed_machine(server, client, recipes=(LATTE_RECIPE,), version="2026.11.4"):
    """A registered machine that has taken the package the server offers it, with its session."""
    server.desired_package = serve_package(server, recipes, version=version)
    machine, session = await commanded_machine(server, client)
    await machine.tick(session)
    assert machine.package_version == version
    return machine, session


def fill_bins(machine):
    for level in machine.bins:
        level.remaining = float(level.spec.capacity)
    return {level.spec.material: level.remaining for level in machine.bins}


# --- Offered in the heartbeat reply ----------------------------------------------------------------


async def test_an_offered_package_is_downloaded_checked_installed_and_reported_from_the_next_heartbeat():
    server = FakeServer()
    server.desired_package = serve_package(server)
    events: list[FleetEvent] = []
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        session.on_event = events.append
        for _ in range(3):
            await machine.tick(session)

    assert server.package_versions[machine.device_id] == [FACTORY_PACKAGE_VERSION, "2026.11.4", "2026.11.4"]
    (download,) = server.package_requests
    assert download.url.path == "/packages/17-2026.11.4.json"
    assert download.headers["Authorization"] == f"Device {machine.token}"
    assert [product.product_id for product in machine.menu] == ["latte"]
    assert session.stats.package_downloads == session.stats.packages_installed == 1
    assert any(event.kind == EventKind.INSTALLED and "2026.11.4" in event.detail for event in events)


async def test_a_package_failing_its_sha256_is_not_installed_the_old_one_stays_and_no_tick_fetches_it_again():
    server = FakeServer()
    events: list[FleetEvent] = []
    async with fake_client(server) as client:
        machine, clock = clocked_machine()
        session = no_sleep_session(client, command_time_scale=0.0, sales_per_hour=0)
        session.on_event = events.append
        await machine.register(session)
        server.desired_package = serve_package(server, version="2026.11.4")
        await machine.tick(session)
        server.desired_package = serve_package(
            server,
            version="2026.11.5",
            tamper=lambda content: content.replace(b'"19.50"', b'"09.50"'),  # same size, other bytes
        )
        for _ in range(5):
            await machine.tick(session)
        fetched_within_the_backoff = len(server.package_requests)
        clock.now += 91.0  # past the first retry: 2 to 3 heartbeat intervals of 30 s
        await machine.tick(session)

    assert fetched_within_the_backoff == 2, "the good package once, the bad one once"
    assert len(server.package_requests) == 3, "the bad one again after the backoff"
    assert set(server.package_versions[machine.device_id][1:]) == {"2026.11.4"}, "the old package kept"
    assert machine.product("latte").price == Decimal("19.50")
    (failure, *_) = [event for event in events if event.kind == EventKind.INSTALL_FAILED]
    assert "SHA-256" in failure.detail and "still runs 2026.11.4" in failure.detail
    assert session.stats.package_installs_failed == 2 and session.stats.packages_installed == 1


@pytest.mark.parametrize(
    ("content", "offered", "refusal"),
    [
        (b"{}", {"size": 3}, "bytes"),
        (b"{}", {"sha256": "0" * 64}, "SHA-256"),
        (b"not json", {}, "not JSON"),
        (json.dumps({"package_id": "17", "version": "2026.11.9", "recipes": []}).encode(), {}, "version"),
        (json.dumps({"package_id": "17", "version": "2026.11.4"}).encode(), {}, "recipes"),
        (
            json.dumps(
                {"package_id": "17", "version": "2026.11.4", "recipes": [{**LATTE_RECIPE, "price": 19.5}]}
            ).encode(),
            {},
            "recipes.0.price",
        ),
        (
            json.dumps(
                {
                    "package_id": "17",
                    "version": "2026.11.4",
                    "recipes": [{**LATTE_RECIPE, "steps": [{"action": "steam", "water_ml": 50}]}],
                }
            ).encode(),
            {},
            "recipes.0.steps.0.action",
        ),
        (
            json.dumps(
                {"package_id": "17", "version": "2026.11.4", "recipes": [LATTE_RECIPE, LATTE_RECIPE]}
            ).encode(),
            {},
            "appears twice",
        ),
    ],
)
def test_a_package_that_is_not_the_one_offered_or_not_the_protocols_format_is_refused_naming_why(
    content, offered, refusal
):
    offer = PackageOffer(
        "17", "2026.11.4", "/p", **{"sha256": hashlib.sha256(content).hexdigest(), "size": None, **offered}
    )

    with pytest.raises(PackageRefused, match=refusal):
        read_package(content, offer)


# --- By upgrade command ------------------------------------------------------------------------------


async def test_an_upgrade_command_with_the_same_package_offered_downloads_once_and_reports_succeeded():
    server = FakeServer()
    offer = serve_package(server)
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client)
        server.desired_package = offer
        command = server.send(machine.device_id, "upgrade", upgrade_payload(offer))
        await machine.tick(session)  # the reply carries the offer and the command
        await settle(machine)
        await machine.tick(session)
        again = server.send(machine.device_id, "upgrade", upgrade_payload(offer))
        await machine.tick(session)
        await settle(machine)

    assert len(server.package_requests) == 1, "neither the offer nor a second command fetched it again"
    assert server.results_of(command["command_id"]) == ["accepted", "succeeded"]
    assert server.results_of(again["command_id"]) == ["accepted", "succeeded"], "it runs that package"
    final = server.results[-1][2]
    assert final["result"] == {"package_id": "17", "package_version": "2026.11.4"}
    assert server.package_versions[machine.device_id][1:] == ["2026.11.4", "2026.11.4"]


async def test_an_upgrade_whose_download_fails_reports_failed_with_why_and_keeps_the_old_package():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await installed_machine(server, client)
        command = server.send(
            machine.device_id,
            "upgrade",
            {"package_id": "18", "version": "2026.12.1", "url": "/packages/gone.json", "sha256": "a" * 64},
        )
        await machine.tick(session)
        await settle(machine)
        await machine.tick(session)

    assert server.results_of(command["command_id"]) == ["accepted", "failed"]
    assert "package download failed" in server.results[-1][2]["error"]
    assert server.package_versions[machine.device_id][-1] == "2026.11.4"


# --- Told to fail installs -----------------------------------------------------------------------------


async def test_a_machine_told_to_fail_installs_downloads_and_checks_the_package_then_reports_failed():
    server = FakeServer()
    offer = serve_package(server)
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client, misbehaviours=["fail_installs"])
        server.desired_package = offer
        command = server.send(machine.device_id, "upgrade", upgrade_payload(offer))
        for _ in range(3):
            await machine.tick(session)
            await settle(machine)

    assert server.results_of(command["command_id"]) == ["accepted", "failed"]
    assert "fail_installs" in server.results[-1][2]["error"]
    assert len(server.package_requests) == 1, "downloaded once; the offer waits for the backoff"
    assert set(server.package_versions[machine.device_id]) == {FACTORY_PACKAGE_VERSION}
    assert machine.menu == MENU


async def test_installs_fail_at_the_fleets_install_failure_probability():
    server = FakeServer()
    offer = serve_package(server)
    async with fake_client(server) as client:
        machine, _ = await commanded_machine(server, client)
        session = no_sleep_session(client, command_time_scale=0.0, install_failure_probability=1.0)
        command = server.send(machine.device_id, "upgrade", upgrade_payload(offer))
        await machine.heartbeat(session)
        await settle(machine)

    assert server.results_of(command["command_id"]) == ["accepted", "failed"]
    assert "flash write" in server.results[-1][2]["error"]


async def test_in_a_fleet_the_machine_told_to_fail_installs_keeps_its_package_the_others_take_the_new_one():
    server = FakeServer()
    server.desired_package = serve_package(server)
    events: list[FleetEvent] = []

    stats = await fly(
        server,
        events,
        devices=3,
        duration_s=0.5,
        command_channels="heartbeat",
        command_time_scale=0,
        misbehaving_serials={"SIM-000002": ["fail_installs"]},
    )

    failing = server.devices["SIM-000002"]
    assert set(server.package_versions[failing]) == {FACTORY_PACKAGE_VERSION}
    for serial in ("SIM-000001", "SIM-000003"):
        assert server.package_versions[server.devices[serial]][-1] == "2026.11.4"
    assert stats.packages_installed == 2 and stats.package_installs_failed >= 1
    assert {event.serial for event in events if event.kind == EventKind.INSTALL_FAILED} == {"SIM-000002"}


# --- Selling by the package's recipes ----------------------------------------------------------------


async def test_each_cup_sold_takes_from_the_bins_what_its_recipe_says_and_nothing_else():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await installed_machine(server, client)
        before = fill_bins(machine)
        for _ in range(4):
            await machine.sell(session)

    cups = sum(item["qty"] for order in server.orders.values() for item in order["items"])
    after = {level.spec.material: level.remaining for level in machine.bins}
    drawn = {material: before[material] - after[material] for material in before}
    assert 4 <= cups <= 16, "the bins never ran out"
    assert drawn["BEAN-ARABICA"] == pytest.approx(25 * cups, rel=0.05)
    assert drawn["MILK-POWDER"] == pytest.approx(15 * cups, rel=0.05)
    assert drawn["WATER"] == pytest.approx((40 + 200) * cups, rel=0.05), "brewed and poured water"
    assert drawn["SUGAR"] == drawn["CHOCOLATE"] == 0, "the recipe takes neither"


async def test_orders_carry_the_packages_products_prices_and_recipe_versions():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await installed_machine(server, client, recipes=(LATTE_RECIPE, OAT_FLAT_WHITE))
        fill_bins(machine)
        for _ in range(30):
            await machine.sell(session)

    items = [item for order in server.orders.values() for item in order["items"]]
    sold = Counter(item["product_id"] for item in items)
    assert set(sold) == {"latte", "oat_flat_white"}, "the package's recipes and nothing else"
    for item in items:
        recipe = LATTE_RECIPE if item["product_id"] == "latte" else OAT_FLAT_WHITE
        assert (item["name"], item["unit_price"], item["recipe_version"]) == (
            recipe["name"],
            recipe["price"],
            recipe["recipe_version"],
        )
        assert item["options"] == {}, "the package format has no sizes or sugar"
    for order in server.orders.values():
        assert Decimal(order["total"]) == sum(
            Decimal(item["unit_price"]) * item["qty"] for item in order["items"]
        )


async def test_a_remote_brew_of_a_product_the_package_does_not_have_is_rejected():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await installed_machine(server, client)
        espresso = server.send(machine.device_id, "make_product", {"product_id": "espresso"})
        await machine.heartbeat(session)
        await settle(machine)

    assert server.results_of(espresso["command_id"]) == ["rejected"]
