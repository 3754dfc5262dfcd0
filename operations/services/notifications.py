"""Telling people about alarms: by e-mail and webhook, per merchant, never during maintenance."""

import hashlib
import hmac
import json
import logging
from datetime import timedelta

import httpx
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from accounts.time_zones import merchant_zone
from operations import dispatch
from operations.models import Alarm, MaintenanceWindow, NotificationChannel, Severity
from operations.services.alarms import alarm_payload

logger = logging.getLogger(__name__)
SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
WEBHOOK_TIMEOUT_S = 5


def in_maintenance(device_id: int, now) -> bool:
    return MaintenanceWindow.objects.filter(device_id=device_id, starts_at__lte=now, ends_at__gt=now).exists()


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def notify_alarm(alarm_id: int, now=None) -> list[str]:
    """Notify the alarm's merchant once; returns the targets reached. Safe to run twice."""
    now = now or timezone.now()
    with transaction.atomic():
        alarm = Alarm.objects.select_for_update().select_related("device").filter(pk=alarm_id).first()
        if alarm is None or alarm.notified_at is not None or not alarm.is_active:
            return []
        if in_maintenance(alarm.device_id, now):
            return []
        alarm.notified_at = now
        alarm.save(update_fields=["notified_at"])
    channels = NotificationChannel.objects.filter(merchant_id=alarm.merchant_id, is_active=True)
    reached = []
    for channel in channels:
        if SEVERITY_RANK[alarm.severity] < SEVERITY_RANK[channel.min_severity]:
            continue
        if _deliver(channel, alarm):
            reached.append(channel.target)
    return reached


def alarm_email(alarm: Alarm, language: str) -> tuple[str, str]:
    """(subject, body) of the alarm's e-mail in `language`; times in the merchant's zone, and the
    alarm's code (its type, which machines and integrations match on) as the English identifier."""
    with translation.override(language), timezone.override(merchant_zone(alarm.merchant)):
        names = {
            "severity": alarm.get_severity_display(),
            "type": alarm.get_type_display(),
            "device": alarm.device,
        }
        subject = _("[%(severity)s] %(type)s on %(device)s") % names
        first_seen = timezone.localtime(alarm.first_seen_at)
        lines = [
            subject,
            "",
            _("Machine: %(device)s") % names,
            _("Alarm: %(type)s (code %(code)s)") % {**names, "code": alarm.type},
            _("Severity: %(severity)s") % names,
            _("First seen: %(time)s (%(zone)s)")
            % {"time": date_format(first_seen, "DATETIME_FORMAT"), "zone": first_seen.tzinfo.key},
        ]
        if alarm.message:
            lines.append(_("Machine's message: %(message)s") % {"message": alarm.message})
    return subject, "\n".join(lines) + "\n"


def _deliver(channel: NotificationChannel, alarm: Alarm) -> bool:
    if channel.kind == NotificationChannel.Kind.EMAIL:
        subject, body = alarm_email(alarm, channel.language)
        return send_mail(subject, body, None, [channel.target], fail_silently=True) == 1
    body = json.dumps({"event": "alarm.opened", "alarm": alarm_payload(alarm)}).encode()
    headers = {"Content-Type": "application/json"}
    if channel.secret:
        headers["X-Coffeeshop-Signature"] = signature(channel.secret, body)
    try:
        response = httpx.post(channel.target, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_S)
    except httpx.HTTPError as error:
        logger.warning("webhook %s failed: %s", channel.target, error)
        return False
    return response.is_success


def queue_unsent_notifications(redis=None, now=None) -> int:
    """When Redis answers again after an outage (a recovery hook): the alarms opened meanwhile could not
    queue their notification, so every active alarm of the last hour not yet notified is queued again
    (`notify_alarm` notifies each once, however often it is queued)."""
    now = now or timezone.now()
    unsent = Alarm.objects.filter(
        is_active=True, notified_at=None, first_seen_at__gte=now - timedelta(hours=1)
    ).values_list("pk", flat=True)
    return sum(dispatch.send(dispatch.NOTIFY_ALARM, alarm_id) for alarm_id in unsent)
