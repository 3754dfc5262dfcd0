"""Scheduled reports: a subscription is its own beat entry (a crontab in the merchant's time zone) kept in
step from the admin, and its e-mail carries the merchant's figures of the day or week before."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django_celery_beat.models import PeriodicTask

from accounts.models import Role
from operations.models import ReportSubscription
from operations.services.reports import send_report
from orders.models import PaymentStatus
from tests.factories import DeviceFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

ADD = "/admin/operations/reportsubscription/add/"


def form(merchant, **fields):
    return {
        "merchant": merchant.pk,
        "email": "owner@brew.example",
        "frequency": "daily",
        "send_at": "08:00",
        "weekday": 1,
        "language": "en",
        "is_active": "on",
        **fields,
    }


@pytest.fixture
def admin_client(make_user, merchant):
    client = Client()
    client.force_login(make_user(Role.ADMIN, merchants=[merchant]))
    return client


def test_a_subscription_is_a_beat_entry_in_the_merchants_time_zone_kept_in_step(admin_client, merchant):
    merchant.time_zone = "Europe/London"
    merchant.save()

    admin_client.post(ADD, form(merchant, frequency="weekly", weekday=5, send_at="07:30"))

    subscription = ReportSubscription.objects.get()
    task = PeriodicTask.objects.get(pk=subscription.periodic_task_id)
    crontab = task.crontab
    assert (task.task, task.args, task.enabled) == ("operations.send_report", f"[{subscription.pk}]", True)
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "30",
        "7",
        "5",
        "Europe/London",
    )

    change = f"/admin/operations/reportsubscription/{subscription.pk}/change/"
    admin_client.post(change, form(merchant, frequency="daily", send_at="06:00", is_active=""))
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.day_of_week, task.enabled) == ("6", "*", False)
    assert PeriodicTask.objects.filter(task="operations.send_report").count() == 1

    admin_client.post(f"/admin/operations/reportsubscription/{subscription.pk}/delete/", {"post": "yes"})
    assert not ReportSubscription.objects.exists()
    assert not PeriodicTask.objects.filter(task="operations.send_report").exists()


def test_the_daily_summary_is_the_merchants_day_before(merchant):
    merchant.time_zone = "Asia/Shanghai"
    merchant.save()
    machine = DeviceFactory(merchant=merchant, is_online=True)
    for at, total, status in (
        (datetime(2026, 11, 30, 16, 30, tzinfo=UTC), "18.00", PaymentStatus.PAID),  # 1 Dec 00:30 local
        (datetime(2026, 12, 1, 15, 30, tzinfo=UTC), "20.00", PaymentStatus.PAID),  # 1 Dec 23:30 local
        (datetime(2026, 12, 1, 15, 40, tzinfo=UTC), "50.00", PaymentStatus.UNPAID),
        (datetime(2026, 12, 1, 16, 30, tzinfo=UTC), "99.00", PaymentStatus.PAID),  # 2 Dec: today
    ):
        OrderFactory(device=machine, device_created_at=at, total=Decimal(total), payment_status=status)
    subscription = ReportSubscription.objects.create(merchant=merchant, email="owner@brew.example")

    sent = send_report(subscription.pk, now=datetime(2026, 12, 1, 17, 0, tzinfo=UTC))  # 2 Dec 01:00 local

    assert sent and len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@brew.example"]
    assert message.subject == f"{merchant.name}: summary for 2026-12-01"
    assert "38.00 CNY from 2 orders (average ticket 19.00)" in message.body
    assert "1 of 1 online" in message.body and "Asia/Shanghai" in message.body


def test_a_paused_subscription_sends_nothing(merchant):
    subscription = ReportSubscription.objects.create(
        merchant=merchant, email="x@brew.example", is_active=False
    )

    assert send_report(subscription.pk) is False and not mail.outbox


def test_another_merchants_admin_cannot_see_or_change_a_subscription(make_user, merchant, other_merchant):
    subscription = ReportSubscription.objects.create(merchant=merchant, email="owner@brew.example")
    rival = Client()
    rival.force_login(make_user(Role.ADMIN, merchants=[other_merchant]))

    listing = rival.get("/admin/operations/reportsubscription/")
    page = rival.get(f"/admin/operations/reportsubscription/{subscription.pk}/change/", follow=True)

    assert "owner@brew.example" not in listing.content.decode() + page.content.decode()
