"""A fleet in London: its orders are protocol orders in GBP at London prices, paid by protocol methods,
and its daily curve runs on London's clock."""

import argparse
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from coffeeshop.protocol.serializers import OrderSerializer
from simulator import CHINA, FLAT_SALES_CURVE, MENU, UK, SimulatedMachine, build_fleet
from simulator.cli import add_fleet_arguments
from tests.simulator.fakes import FakeServer, fake_client, fly, no_sleep_session

PROTOCOL_METHODS = {"wechat", "alipay", "card", "corp", "cash"}


def test_a_london_machines_orders_are_valid_protocol_orders_in_pounds_at_london_prices():
    machine = SimulatedMachine("BML-000001", "CM-2000", "1.4.2", "Lobby 1", rng=random.Random(3), region=UK)
    bodies = [machine.make_order().body for _ in range(400)]

    for body in bodies:
        serializer = OrderSerializer(data=body)
        assert serializer.is_valid(), serializer.errors
        assert body["currency"] == "GBP"
    prices = {item["product_id"]: Decimal(item["unit_price"]) for body in bodies for item in body["items"]}
    assert prices["latte"] == Decimal("3.40") and max(prices.values()) < Decimal("5")
    methods = {body["payment"]["method"] for body in bodies}
    assert methods <= PROTOCOL_METHODS - {"wechat", "alipay"} and "card" in methods
    assert {product.product_id for product in UK.menu} == {product.product_id for product in MENU}


def test_london_machines_keep_london_time_or_utc_and_shanghai_ones_china_time_or_utc():
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # British Summer Time: London is UTC+1
    london = {m.tz.utcoffset(summer) for m in build_fleet(40, "BML", seed=1, region=UK)}
    china = {m.tz.utcoffset(summer) for m in build_fleet(40, "SIM", seed=1, region=CHINA)}
    assert london == {timedelta(0), timedelta(hours=1)}
    assert china == {timedelta(0), timedelta(hours=8)}


async def test_a_london_fleet_delivers_its_sales_in_pounds():
    server = FakeServer()

    stats = await fly(
        server, devices=2, duration_s=0.5, sales_per_hour=36_000, sales_curve=FLAT_SALES_CURVE, region=UK
    )

    assert stats.orders_accepted >= 2
    assert {order["currency"] for order in server.orders.values()} == {"GBP"}
    assert {order["payment"]["method"] for order in server.orders.values()} <= {"card", "corp", "cash"}


def test_the_command_line_takes_a_region_and_defaults_to_china():
    parser = argparse.ArgumentParser()
    add_fleet_arguments(parser)
    base = ["--devices", "3", "--base-url", "http://localhost:8000"]

    assert parser.parse_args(base).region == "cn"
    assert parser.parse_args([*base, "--region", "uk"]).region == "uk"


async def test_a_london_machine_follows_the_daily_curve_on_londons_clock_not_chinas():
    server = FakeServer()
    client = fake_client(server)
    only_eight_oclock = tuple(1.0 if hour == 8 else 0.0 for hour in range(24))
    half_past_eight_in_london = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)  # 16:30 in Shanghai
    sold = {}
    for serial, region in (("BML-000001", UK), ("SIM-000001", CHINA)):
        machine = SimulatedMachine(serial, "CM-2000", "1.4.2", "Lobby 1", rng=random.Random(3), region=region)
        session = no_sleep_session(client, sales_per_hour=36_000, sales_curve=only_eight_oclock)
        await machine.register(session)
        machine.clock_skew = half_past_eight_in_london - datetime.now(UTC)
        await machine.trade(session, 0.3)
        sold[region.code] = session.stats.orders_sold

    assert sold["uk"] > 0 and sold["cn"] == 0, sold
