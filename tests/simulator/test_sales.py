"""The simulator's sales: order bodies, the product and payment mix, the daily curve, backlogs, order
numbers across runs, and selling fleets that lose replies, go offline and still deliver every order once."""

import json
import logging
import random
import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from simulator import (
    DAILY_SALES_CURVE,
    FLAT_SALES_CURVE,
    MENU,
    PAYMENT_METHODS,
    EventKind,
    FleetConfigurationError,
    FleetEvent,
    InstalledPackage,
    OrderNumbers,
    Product,
    RefillRounds,
    SimulatedMachine,
    backlog_chunks,
    sales_rate_per_hour,
)
from tests.simulator.fakes import (
    ISO_WITH_OFFSET,
    FakeServer,
    fake_client,
    fly,
    make_machine,
    no_sleep_session,
)

# --- Sales ---------------------------------------------------------------------------------------------

MONEY = re.compile(r"^\d+\.\d{2}$")
ORDER_ID = re.compile(r"^SIM-000001-(\d{8})-(\d{4,})$")
CHINA = timezone(timedelta(hours=8))


def sales(count, seed=7, now=None):
    machine = make_machine(seed)
    return machine, [machine.make_order(now) for _ in range(count)]


async def registered_machine(server, client, seed=7, **settings):
    machine = make_machine(seed)
    session = no_sleep_session(client, **settings)
    await machine.register(session)
    return machine, session


def test_an_order_body_is_exactly_the_protocols_with_money_strings_and_a_total_that_adds_up():
    machine, orders = sales(500)

    for order in orders:
        body = order.body
        assert set(body) == {"order_id", "created_at", "currency", "total", "payment", "items", "is_test"}
        assert body["currency"] == "CNY" and body["is_test"] is False
        assert ISO_WITH_OFFSET.match(body["created_at"])
        assert MONEY.match(body["total"])
        assert set(body["payment"]) <= {"method", "status", "transaction_id"}
        assert {"method", "status"} <= set(body["payment"])
        assert body["payment"]["status"] in {"paid", "unpaid", "failed"}
        assert 1 <= len(body["items"]) <= 2
        for item in body["items"]:
            assert set(item) == {"product_id", "name", "qty", "unit_price", "recipe_version", "options"}
            assert type(item["qty"]) is int and item["qty"] >= 1
            assert MONEY.match(item["unit_price"])
            assert isinstance(item["recipe_version"], str) and item["recipe_version"]
            assert set(item["options"]) == {"size", "sugar"} and type(item["options"]["sugar"]) is int
        assert Decimal(body["total"]) == sum(Decimal(i["unit_price"]) * i["qty"] for i in body["items"])
        assert order.total == Decimal(body["total"])
        assert json.loads(json.dumps(body)) == body, "plain JSON: no Decimal, no datetime"
    created_at = datetime.fromisoformat(orders[0].body["created_at"].replace("Z", "+00:00"))
    assert created_at.utcoffset() == machine.tz.utcoffset(None), "the machine's own zone"
    assert abs(created_at - datetime.now(UTC)) < timedelta(seconds=30), "the machine's (skewed) clock"


def test_the_example_latte_of_the_protocol_comes_out_as_the_protocol_writes_it():
    machine = make_machine()
    moment = datetime(2026, 11, 24, 8, 14, 31, tzinfo=CHINA)
    machine.next_order_number = 42
    machine.rng = random.Random(0)

    body = machine.make_order(moment).body

    assert body["order_id"] == "SIM-000001-20261124-0042"
    assert body["created_at"] == "2026-11-24T08:14:31+08:00"


def test_order_ids_are_unique_per_machine_and_carry_serial_machine_date_and_a_running_number():
    machine, orders = sales(2_000)

    ids = [order.order_id for order in orders]
    assert len(set(ids)) == len(ids)
    numbers = []
    for order in orders:
        day, number = ORDER_ID.match(order.order_id).groups()
        assert day == order.body["created_at"][:10].replace("-", ""), "the date on the machine's clock"
        numbers.append(int(number))
    assert numbers == list(range(1, 2_001))
    assert machine.next_order_number == 2_001


def test_the_product_and_payment_mix_follows_the_weights_over_many_sales():
    _, orders = sales(20_000, seed=3)
    lines = [item for order in orders for item in order.body["items"]]
    payments = [order.body["payment"] for order in orders]

    products = Counter(item["product_id"] for item in lines)
    total_weight = sum(product.weight for product in MENU)
    for product in MENU:
        assert products[product.product_id] / len(lines) == pytest.approx(
            product.weight / total_weight, abs=0.015
        )
        assert {i["unit_price"] for i in lines if i["product_id"] == product.product_id} == {
            f"{product.price}"
        }
    methods = Counter(payment["method"] for payment in payments)
    for method, weight in PAYMENT_METHODS:
        assert methods[method] / len(payments) == pytest.approx(weight / 100, abs=0.015)
    statuses = Counter(payment["status"] for payment in payments)
    assert statuses["paid"] / len(payments) > 0.93
    assert statuses["unpaid"] > 0 and statuses["failed"] > 0
    assert all(p.get("transaction_id") for p in payments if p["status"] == "paid" and p["method"] != "cash")
    assert not any(
        p.get("transaction_id") for p in payments if p["status"] != "paid" or p["method"] == "cash"
    )
    quantities = Counter(item["qty"] for item in lines)
    assert set(quantities) == {1, 2} and quantities[1] / len(lines) == pytest.approx(0.85, abs=0.02)
    assert Counter(len(order.body["items"]) for order in orders)[1] / len(orders) == pytest.approx(
        0.9, abs=0.02
    )


def test_backlog_chunks_hold_at_most_500_orders_and_keep_the_order_sold():
    orders = list(range(1_234))

    chunks = backlog_chunks(orders)

    assert [len(chunk) for chunk in chunks] == [500, 500, 234]
    assert [order for chunk in chunks for order in chunk] == orders
    assert backlog_chunks(list(range(500))) == [list(range(500))]
    assert backlog_chunks([]) == []


def test_the_daily_curve_sells_more_at_breakfast_and_lunch_than_at_night_and_averages_the_base_rate():
    def at(hour):
        return sales_rate_per_hour(datetime(2026, 11, 24, hour, 30, tzinfo=CHINA), 10.0)

    assert at(8) > 4 * at(3)
    assert at(12) > at(10) and at(15) > at(14)
    assert at(3) > 0, "night is quiet, not dead"
    assert statistics.mean(at(hour) for hour in range(24)) == pytest.approx(10.0)
    flat = {
        sales_rate_per_hour(datetime(2026, 11, 24, h, tzinfo=CHINA), 10.0, FLAT_SALES_CURVE)
        for h in range(24)
    }
    assert flat == {10.0}
    assert len(DAILY_SALES_CURVE) == 24


def test_a_machine_reports_brewing_while_it_makes_a_sold_drink_and_the_bins_drain():
    now = [1_000.0]
    machine = SimulatedMachine(
        "SIM-000001", "CM-2000", "1.4.2", "Lobby 1", rng=random.Random(7), clock=lambda: now[0]
    )
    water = next(level for level in machine.bins if level.spec.material == "WATER")
    water_before = water.remaining

    machine.brew(machine.make_order())

    assert machine.heartbeat_body()["state"] == "brewing"
    assert water.remaining < water_before, "every drink on the menu takes water"
    now[0] += 10 * 60
    assert machine.heartbeat_body()["state"] == "idle"


def test_order_numbers_survive_a_restart_through_the_state_file_and_a_crash_never_reuses_one(tmp_path):
    path = tmp_path / "state" / "numbers.json"
    numbers = OrderNumbers(path)
    assert numbers.first_free("SIM-000001") == 1

    numbers.note_used("SIM-000001", 2)
    crashed = OrderNumbers(path)
    assert crashed.first_free("SIM-000001") >= 2, "a killed simulator resumes past every number it used"

    numbers.settle({"SIM-000001": 7, "SIM-000002": 3})
    assert OrderNumbers(path).first_free("SIM-000001") == 7
    assert OrderNumbers(path).first_free("SIM-000002") == 3


def test_a_corrupt_state_file_is_refused_before_any_call(tmp_path):
    path = tmp_path / "numbers.json"
    path.write_text("not json")

    with pytest.raises(FleetConfigurationError):
        OrderNumbers(path)


async def test_a_selling_fleet_delivers_every_order_exactly_once():
    server = FakeServer()

    stats = await fly(
        server,
        devices=3,
        duration_s=0.5,
        sales_per_hour=36_000,
        sales_curve=FLAT_SALES_CURVE,
        duplicate_probability=0.0,
    )

    assert stats.orders_sold >= 3
    delivered = {(record.serial, record.order_id) for record in stats.delivered}
    serial_of = {device_id: serial for serial, device_id in server.devices.items()}
    assert delivered == {(serial_of[device_id], order_id) for device_id, order_id in server.orders}
    assert len(stats.delivered) == len(delivered) == stats.orders_accepted
    assert stats.delivered_total == sum(Decimal(order["total"]) for order in server.orders.values())
    assert stats.orders_sold == len(stats.delivered) + stats.orders_unsent
    assert stats.orders_duplicate == stats.orders_rejected == stats.orders_conflict == 0
    assert all("orders" not in body for body in server.order_requests), "online sales go up one by one"


async def test_sales_made_offline_are_buffered_and_go_up_as_backlogs_of_at_most_500_in_the_order_sold():
    server = FakeServer()
    events: list[FleetEvent] = []
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)
        session.on_event = events.append
        machine.is_offline = True
        sold = [await machine.sell(session) for _ in range(1_203)]
        assert server.order_requests == [], "silent while offline"
        machine.is_offline = False

        await machine.tick(session)

    assert [len(body["orders"]) for body in server.order_requests] == [500, 500, 203]
    uploaded = [order["order_id"] for body in server.order_requests for order in body["orders"]]
    assert uploaded == [order.order_id for order in sold]
    assert machine.outbox == []
    assert session.stats.backlogs_uploaded == 3
    assert session.stats.orders_buffered_max == 1_203
    assert session.stats.orders_accepted == len(session.stats.delivered) == 1_203
    assert [event.detail for event in events if event.kind == EventKind.BACKLOG] == [
        "500 orders uploaded: 500 accepted, 0 duplicate, 0 rejected",
        "500 orders uploaded: 500 accepted, 0 duplicate, 0 rejected",
        "203 orders uploaded: 203 accepted, 0 duplicate, 0 rejected",
    ]


async def test_a_sale_whose_reply_timed_out_is_sent_again_and_its_duplicate_counts_as_delivered_once():
    server = FakeServer()
    server.timeouts_after_storing = 1
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)

        await machine.sell(session)

    assert len(server.order_requests) == 2, "the timed-out call was retried"
    assert len(server.orders) == 1
    assert session.stats.orders_accepted == 0 and session.stats.orders_duplicate == 1
    assert [record.order_id for record in session.stats.delivered] == [order for _, order in server.orders]
    assert machine.outbox == []


async def test_sales_wait_through_an_unreachable_server_and_go_up_as_a_backlog_when_it_is_back():
    server = FakeServer()
    server.unreachable_order_calls = 3 * 2  # two sales, three attempts each
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)

        first, second = await machine.sell(session), await machine.sell(session)
        assert machine.outbox == [first, second] and server.orders == {}
        await machine.tick(session)

    assert server.order_requests == [{"orders": [first.body, second.body]}]
    assert session.stats.order_uploads_failed == 2
    assert session.stats.orders_buffered_max == 2
    assert [record.order_id for record in session.stats.delivered] == [first.order_id, second.order_id]
    assert machine.outbox == []


async def test_a_rejected_order_in_a_backlog_is_logged_with_its_error_and_dropped_not_retried(caplog):
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)
        machine.is_offline = True
        good, bad = await machine.sell(session), await machine.sell(session)
        server.reject_order_ids = {bad.order_id}
        machine.is_offline = False

        with caplog.at_level(logging.WARNING, logger="simulator"):
            await machine.tick(session)
            await machine.tick(session)

    assert len([body for body in server.order_requests if "orders" in body]) == 1, "not sent again"
    assert session.stats.orders_rejected == 1 and session.stats.orders_accepted == 1
    assert [record.order_id for record in session.stats.delivered] == [good.order_id]
    assert any(
        bad.order_id in r.getMessage() and "VALIDATION_ERROR" in r.getMessage() for r in caplog.records
    )
    assert machine.outbox == []


async def test_a_conflict_never_expected_from_a_correct_machine_is_counted_and_logged_as_an_error(caplog):
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=0.0)
        order = await machine.sell(session)
        machine.next_order_number -= 1  # a machine that lost its counter reuses the id for another sale

        with caplog.at_level(logging.ERROR, logger="simulator"):
            reused = await machine.sell(session)

    assert reused.order_id == order.order_id
    assert session.stats.orders_conflict == 1
    assert any(r.levelno == logging.ERROR and "conflict" in r.getMessage() for r in caplog.records)
    assert machine.outbox == [], "dropped, not retried forever"
    assert len(session.stats.delivered) == 1


async def test_with_a_duplicate_probability_every_answered_order_is_re_sent_and_counted_as_a_duplicate():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await registered_machine(server, client, duplicate_probability=1.0)
        for _ in range(5):
            await machine.sell(session)
        machine.is_offline = True
        for _ in range(3):
            await machine.sell(session)
        machine.is_offline = False
        await machine.tick(session)

    assert len(server.orders) == 8
    assert session.stats.orders_accepted == 8
    assert session.stats.orders_duplicate == session.stats.orders_resent == 8
    assert len(session.stats.delivered) == 8
    assert session.stats.orders_conflict == 0


async def test_a_restarted_fleet_with_a_state_file_numbers_on_and_never_reuses_an_order_id(tmp_path):
    server = FakeServer()
    options = {
        "devices": 2,
        "duration_s": 0.3,
        "sales_per_hour": 36_000,
        "sales_curve": FLAT_SALES_CURVE,
        "duplicate_probability": 0.0,
        "state_file": tmp_path / "numbers.json",
    }

    first = await fly(server, **options)
    second = await fly(server, **options)

    assert first.orders_sold > 0 and second.orders_sold > 0
    assert first.orders_conflict == second.orders_conflict == 0
    assert second.orders_accepted == len(second.delivered), "every order of the second run was new"
    numbers = sorted(int(order_id.rsplit("-", 1)[1]) for serial, order_id in server.orders if serial == "1")
    assert numbers == list(range(1, len(numbers) + 1)), "numbering went on without a gap"


async def test_offline_spells_stop_sales_reaching_the_server_until_the_machine_is_back_and_nothing_is_lost():
    server = FakeServer()
    events: list[FleetEvent] = []

    stats = await fly(
        server,
        events,
        devices=3,
        duration_s=0.8,
        offline_probability=0.5,
        offline_intervals=(1.0, 3.0),
        sales_per_hour=36_000,
        sales_curve=FLAT_SALES_CURVE,
        duplicate_probability=0.1,
    )

    assert stats.offline_periods >= 1 and stats.backlogs_uploaded >= 1 and stats.orders_buffered_max >= 1
    assert stats.orders_sold == len(stats.delivered) + stats.orders_unsent
    assert (
        len(server.orders) == len(stats.delivered) == len({(r.serial, r.order_id) for r in stats.delivered})
    )
    unsent = {(r.serial, r.order_id) for r in stats.unsent}
    serial_of = {device_id: serial for serial, device_id in server.devices.items()}
    assert not unsent & {(serial_of[device_id], order_id) for device_id, order_id in server.orders}
    assert stats.orders_conflict == stats.orders_rejected == 0
    assert any(event.kind == EventKind.SOLD and "offline" in event.detail for event in events)


# --- What the back office's consumption ledger sees -------------------------------------------------------


def latte_package() -> InstalledPackage:
    latte = Product("latte", "Latte", Decimal("18.00"), 1, "1", {"BEAN-ARABICA": 18.0, "WATER": 220.0}, False)
    return InstalledPackage("17", "2026.11.4", "0" * 64, (latte,))


def levels(machine) -> dict[str, float]:
    return {level.spec.material: level.remaining for level in machine.bins}


def test_a_machine_running_a_package_drains_its_bins_only_by_what_it_sells():
    machine = make_machine()
    machine.refill_rounds = RefillRounds(every_ticks=10**9)
    before = levels(machine)
    for _ in range(200):
        machine.step()
    assert levels(machine) != before, "on the factory menu the demo's bins drain fast besides the sales"

    machine.package = latte_package()
    before = levels(machine)
    for _ in range(200):
        machine.step()
    assert levels(machine) == before, "nothing the back office cannot book from the recipes"

    machine.brew(machine.make_order())
    after = levels(machine)
    assert 0.95 * 18 <= before["BEAN-ARABICA"] - after["BEAN-ARABICA"] <= 1.05 * 18 * 2  # one or two cups


def test_a_leaking_machine_loses_a_third_more_than_its_cups_take_():
    leaking, sound = make_machine(seed=3), make_machine(seed=3)
    for machine in (leaking, sound):
        machine.package = latte_package()
        machine.rng = random.Random(5)
    leaking.misbehave(["leak"])
    order = sound.make_order()

    before = levels(sound)["BEAN-ARABICA"], levels(leaking)["BEAN-ARABICA"]
    sound.rng, leaking.rng = random.Random(9), random.Random(9)
    sound.brew(order)
    leaking.brew(order)

    taken_sound = before[0] - levels(sound)["BEAN-ARABICA"]
    taken_leaking = before[1] - levels(leaking)["BEAN-ARABICA"]
    assert taken_leaking == pytest.approx(1.3 * taken_sound)
