"""Telling people about alarms: by e-mail and webhook, per merchant, never during maintenance."""

import hashlib
import hmac
import json
import logging
from datetime import timedelta

import httpx
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

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


def _deliver(channel: NotificationChannel, alarm: Alarm) -> bool:
    subject = _("[%(severity)s] %(type)s on %(device)s") % {
        "severity": alarm.get_severity_display(),
        "type": alarm.get_type_display(),
        "device": alarm.device,
    }
    if channel.kind == NotificationChannel.Kind.EMAIL:
        return send_mail(subject, alarm.message or subject, None, [channel.target], fail_silently=True) == 1
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
