"""Scheduled reports: a merchant's daily or weekly summary by e-mail.

Each subscription owns one django-celery-beat entry, a crontab in the merchant's time zone, created,
changed, paused and removed with it (`keep_schedule`), so operators see and edit it among the other
schedules. The summary is the dashboard's selector over the day or the week before the send, in the
merchant's days and in the subscription's language.
"""

import json
from datetime import datetime, timedelta

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.time_zones import merchant_zone
from operations.dashboard import dashboard_summary, merchant_scope
from operations.models import ReportSubscription

REPORT_TASK = "operations.send_report"


def _crontab(subscription: ReportSubscription) -> CrontabSchedule:
    weekly = subscription.frequency == ReportSubscription.Frequency.WEEKLY
    schedule, _created = CrontabSchedule.objects.get_or_create(
        minute=str(subscription.send_at.minute),
        hour=str(subscription.send_at.hour),
        day_of_week=str(subscription.weekday) if weekly else "*",
        day_of_month="*",
        month_of_year="*",
        timezone=merchant_zone(subscription.merchant),
    )
    return schedule


@transaction.atomic
def keep_schedule(subscription: ReportSubscription) -> PeriodicTask:
    """The subscription's beat entry as the subscription now says (its crontab, on or off)."""
    task = subscription.periodic_task or PeriodicTask(task=REPORT_TASK)
    task.name = f"Report {subscription.pk}: {subscription.email} ({subscription.merchant.name})"[:200]
    task.crontab, task.interval = _crontab(subscription), None
    task.args = json.dumps([subscription.pk])
    task.enabled = subscription.is_active
    task.description = _("Sends %(merchant)s's summary to %(email)s.") % {
        "merchant": subscription.merchant.name,
        "email": subscription.email,
    }
    task.save()
    if subscription.periodic_task_id != task.pk:
        subscription.periodic_task = task
        subscription.save(update_fields=["periodic_task"])
    return task


@transaction.atomic
def remove_subscription(subscription: ReportSubscription) -> None:
    if subscription.periodic_task_id:
        PeriodicTask.objects.filter(pk=subscription.periodic_task_id).delete()
    subscription.delete()


def report_days(subscription: ReportSubscription, now: datetime):
    """The day before (daily) or the seven days before (weekly), as the merchant's local days."""
    today = timezone.localdate(now, merchant_zone(subscription.merchant))
    yesterday = today - timedelta(days=1)
    if subscription.frequency == ReportSubscription.Frequency.WEEKLY:
        return yesterday - timedelta(days=6), yesterday
    return yesterday, yesterday


def _sales_lines(figures) -> list[str]:
    if not figures:
        return [_("No sales.")]
    return [
        _("%(amount)s %(currency)s from %(orders)s orders (average ticket %(ticket)s)")
        % {
            "amount": figure["amount"],
            "currency": figure["currency"],
            "orders": figure["orders"],
            "ticket": figure["average_ticket"],
        }
        for figure in figures
    ]


def report_message(subscription: ReportSubscription, now: datetime) -> tuple[str, str]:
    """(subject, body) of the summary, in the subscription's language."""
    first, last = report_days(subscription, now)
    figures = dashboard_summary(merchant_scope(subscription.merchant, first, last), now=now)
    with translation.override(subscription.language):
        period = first.isoformat() if first == last else f"{first.isoformat()} – {last.isoformat()}"
        names = {"merchant": subscription.merchant.name, "period": period}
        subject = _("%(merchant)s: summary for %(period)s") % names
        machines, alarms, bins = figures["machines"], figures["open_alarms"], figures["bins"]
        lines = [
            subject,
            "",
            _("Sales (paid, net of refunds):"),
            *(f"  {line}" for line in _sales_lines(figures["sales"])),
            "",
            _("Machines: %(online)s of %(total)s online now, %(fault)s in fault.")
            % {"online": machines["online"], "total": machines["total"], "fault": machines["in_fault"]},
            _("Open alarms: %(critical)s critical, %(warning)s warnings.")
            % {"critical": alarms["critical"], "warning": alarms["warning"]},
            _("Bins: %(low)s low, %(empty)s empty.") % {"low": bins["low"], "empty": bins["empty"]},
            "",
            _("Days in %(zone)s.") % {"zone": figures["time_zone"]},
        ]
    return subject, "\n".join(str(line) for line in lines)


def send_report(subscription_id: int, now: datetime | None = None) -> bool:
    """Sends the summary; False when the subscription is gone or paused (a stale beat entry)."""
    subscriptions = ReportSubscription.objects.select_related("merchant")
    subscription = subscriptions.filter(pk=subscription_id, is_active=True).first()
    if subscription is None:
        return False
    now = now or timezone.now()
    subject, body = report_message(subscription, now)
    send_mail(subject, body, None, [subscription.email])
    ReportSubscription.objects.filter(pk=subscription.pk).update(last_sent_at=now)
    return True
