"""A hand-computed business for the analytics tests: Brew Co in Shanghai (UTC+8) selling in CNY and HKD
on 1 and 2 December 2026 (a Tuesday and a Wednesday), with sales either side of its local midnight, a
partial and a whole refund, unpaid, failed and test orders, sales just outside the range, recorded
connectivity, and a rival merchant's sale and hour beside them.

Sold in the range (local time):
  Tue 00:30 Seller  Hall   CNY 12.00 cash      americano 1 × 12   (on 30 November in UTC)
  Tue 23:30 Seller  Hall   CNY 18.00 wechat    latte 1 × 18
  Wed 00:30 Seller  Hall   CNY 30.00 wechat    latte 2 × 15, 10.00 refunded: 20.00 net
  Wed 09:00 CM2K-LOBBY Lobby CNY 25.00 mealcard mocha 1 × 25      (Brew Co calls it "Meal card")
  Wed 10:00 CM2K-LOBBY Lobby HKD 40.00 cash    latte 2 × 20
"""

from datetime import UTC, date, datetime
from decimal import Decimal

from devices.models import DeviceStatusHour
from orders.models import PaymentMethod, PaymentStatus
from tests.factories import DeviceFactory, LocationFactory, OrderFactory

FIRST_DAY, LAST_DAY = date(2026, 12, 1), date(2026, 12, 2)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def utc(month, day, hour, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def item(product, qty, price):
    return {"product_id": product.lower(), "name": product, "qty": qty, "unit_price": Decimal(price)}


def build_business(merchant, other_merchant) -> dict:
    merchant.time_zone = "Asia/Shanghai"
    merchant.save()
    hall = LocationFactory(merchant=merchant, name="Hall")
    lobby = LocationFactory(merchant=merchant, name="Lobby")
    seller = DeviceFactory(merchant=merchant, location=hall, alias="Seller")
    lobby_machine = DeviceFactory(merchant=merchant, location=lobby, alias="", serial="CM2K-LOBBY")
    rival = DeviceFactory(merchant=other_merchant, alias="Rival")
    PaymentMethod.objects.create(merchant=merchant, code="mealcard", name="Meal card")
    PaymentMethod.objects.create(merchant=other_merchant, code="mealcard", name="Rival card")

    def sale(device, at, total, items, **fields):
        return OrderFactory(device=device, device_created_at=at, received_at=NOW, total=Decimal(total),
                            items=items, **fields)  # fmt: skip

    sale(seller, utc(11, 30, 16, 30), "12.00", [item("Americano", 1, "12")], payment_method="cash")
    sale(seller, utc(12, 1, 15, 30), "18.00", [item("Latte", 1, "18")])
    sale(
        seller,
        utc(12, 1, 16, 30),
        "30.00",
        [item("Latte", 2, "15")],
        payment_status=PaymentStatus.PARTIALLY_REFUNDED,
        refunded_total=Decimal("10.00"),
    )
    sale(lobby_machine, utc(12, 2, 1), "25.00", [item("Mocha", 1, "25")], payment_method="mealcard")
    hkd = {"currency": "HKD", "payment_method": "cash"}
    sale(lobby_machine, utc(12, 2, 2), "40.00", [item("Latte", 2, "20")], **hkd)
    # Not sales, or not in the range.
    latte = [item("Latte", 1, "50")]
    sale(seller, utc(12, 1, 17), "50.00", latte, payment_status=PaymentStatus.UNPAID)
    sale(seller, utc(12, 1, 17), "50.00", latte, payment_status=PaymentStatus.FAILED)
    sale(seller, utc(12, 1, 17), "50.00", latte, payment_status=PaymentStatus.REFUNDED,
         refunded_total=Decimal("50.00"))  # fmt: skip
    sale(seller, utc(12, 1, 17), "50.00", latte, is_test=True)
    sale(seller, utc(11, 30, 15, 30), "50.00", latte)  # 23:30 on 30 November, local
    sale(seller, utc(12, 2, 16, 30), "50.00", latte)  # 00:30 on 3 December, local
    sale(rival, utc(12, 1, 17), "77.00", [item("Latte", 1, "77")], payment_method="mealcard")

    # 1 December (local): the seller online half an hour of its two known hours, the lobby machine its
    # whole hour; 2 December: the seller its whole hour, the lobby machine an hour of unknown state.
    for device, at, online, known in (
        (seller, utc(11, 30, 15), 3600, 3600),  # 23:00 on 30 November, local: outside the range
        (seller, utc(11, 30, 16), 1800, 3600),
        (seller, utc(12, 1, 15), 0, 3600),
        (lobby_machine, utc(11, 30, 16), 3600, 3600),
        (seller, utc(12, 1, 16), 3600, 3600),
        (lobby_machine, utc(12, 1, 16), 0, 0),
        (rival, utc(12, 1, 16), 0, 3600),
    ):
        DeviceStatusHour.objects.create(device=device, hour=at, online_s=online, known_s=known, samples=12)
    return {"seller": seller, "lobby_machine": lobby_machine, "hall": hall, "lobby": lobby, "rival": rival}
