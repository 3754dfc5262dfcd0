"""Alarms: one per real problem, bumped while it lasts, cleared when it is gone."""

from collections import defaultdict
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit import services as audit
from coffeeshop.exceptions import Conflict
from coffeeshop.live import broadcast_after_commit
from devices.rules import brewing_range_c, temperature_in_range
from operations.dispatch import NOTIFY_ALARM, queue_after_commit
from operations.models import GAVE_UP_COMMAND_STATUSES, NO_BIN, Alarm, AlarmType, CommandType, Severity

LOW_SEVERITY = {AlarmType.MATERIAL_EMPTY: Severity.CRITICAL, AlarmType.MATERIAL_LOW: Severity.WARNING}


def alarm_payload(alarm: Alarm) -> dict:
    return {
        "id": alarm.pk,
        "device_id": alarm.device_id,
        "type": alarm.type,
        "severity": alarm.severity,
        "bin_index": None if alarm.bin_index == NO_BIN else alarm.bin_index,
        "message": alarm.message,
        "is_active": alarm.is_active,
        "count": alarm.count,
        "acknowledged": alarm.acknowledged_at is not None,
        "last_seen_at": alarm.last_seen_at.isoformat(),
    }


def open_or_bump_alarm(
    device,
    alarm_type: str,
    severity: str,
    *,
    bin_index: int | None = None,
    message: str = "",
    now: datetime | None = None,
) -> tuple[Alarm, bool]:
    """The active alarm of this kind for the machine, created or bumped; returns (alarm, created).

    Concurrent triggers converge on one row: the partial unique index admits one active alarm, and a
    losing insert turns into a bump.
    """
    now = now or timezone.now()
    bin_key = NO_BIN if bin_index is None else bin_index
    active = Alarm.objects.filter(device=device, type=alarm_type, bin_index=bin_key, is_active=True)
    for _attempt in range(3):
        with transaction.atomic():
            if _bump(device, alarm_type, bin_key, message, now):
                return active.get(), False
            try:
                with transaction.atomic():
                    alarm = Alarm.objects.create(
                        merchant_id=device.merchant_id,
                        device=device,
                        type=alarm_type,
                        severity=severity,
                        bin_index=bin_key,
                        message=message,
                        first_seen_at=now,
                        last_seen_at=now,
                    )
            except IntegrityError:
                continue
            broadcast_after_commit(device.merchant_id, "alarm.opened", alarm_payload(alarm))
            _notify_after_commit(alarm)
            return alarm, True
    raise RuntimeError("could not open or bump the alarm")


def _bump(device, alarm_type: str, bin_key: int, message: str, now: datetime) -> int:
    """Count one more occurrence of the machine's active alarm of this kind; 0 when none is active."""
    return Alarm.objects.filter(device=device, type=alarm_type, bin_index=bin_key, is_active=True).update(
        count=F("count") + 1, last_seen_at=now, message=message or F("message")
    )


def clear_alarms(
    device,
    alarm_type: str,
    *,
    bin_index: int | None = None,
    reason: str,
    user=None,
    now: datetime | None = None,
) -> int:
    """Clear the machine's active alarm(s) of a type (all bins when bin_index is None)."""
    now = now or timezone.now()
    active = Alarm.objects.filter(device=device, type=alarm_type, is_active=True)
    if bin_index is not None:
        active = active.filter(bin_index=bin_index)
    cleared = list(active.values_list("pk", flat=True))
    if cleared:
        Alarm.objects.filter(pk__in=cleared).update(
            is_active=False, cleared_at=now, cleared_by=user, clear_reason=reason
        )
        for alarm in Alarm.objects.filter(pk__in=cleared):
            broadcast_after_commit(alarm.merchant_id, "alarm.cleared", alarm_payload(alarm))
    return len(cleared)


@transaction.atomic
def acknowledge_alarm(alarm: Alarm, *, user, now: datetime | None = None) -> Alarm:
    alarm = Alarm.objects.select_for_update().get(pk=alarm.pk)
    if not alarm.is_active:
        raise Conflict(_("The alarm is already cleared."))
    if alarm.acknowledged_at is None:
        alarm.acknowledged_at, alarm.acknowledged_by = now or timezone.now(), user
        alarm.save(update_fields=["acknowledged_at", "acknowledged_by"])
        broadcast_after_commit(alarm.merchant_id, "alarm.acknowledged", alarm_payload(alarm))
        audit.record("alarm.acknowledged", alarm, changes={"type": alarm.type, "severity": alarm.severity})
    return alarm


@transaction.atomic
def clear_alarm_by_hand(alarm: Alarm, *, user, reason: str = "", now: datetime | None = None) -> Alarm:
    alarm = Alarm.objects.select_for_update().get(pk=alarm.pk)
    if not alarm.is_active:
        raise Conflict(_("The alarm is already cleared."))
    clear_alarms(
        alarm.device,
        alarm.type,
        bin_index=alarm.bin_index,
        reason=reason or _("cleared by hand"),
        user=user,
        now=now,
    )
    alarm.refresh_from_db()
    audit.record("alarm.cleared", alarm, changes={"reason": alarm.clear_reason})
    return alarm


# --- conditions, evaluated where the facts arrive ------------------------------------------------


def machines_went_offline(devices, now: datetime | None = None) -> None:
    for device in devices:
        open_or_bump_alarm(
            device,
            AlarmType.OFFLINE,
            Severity.CRITICAL,
            now=now,
            message=_("No heartbeat for longer than the offline timeout."),
        )


def _active_kinds(device) -> set[tuple[str, int]]:
    """(type, bin) of the machine's active alarms: one query, so that clearing costs nothing when
    there is nothing to clear (the usual case)."""
    return set(Alarm.objects.filter(device=device, is_active=True).values_list("type", "bin_index"))


# Reasons are translated when an alarm is cleared, not on every report that might clear one.
BACK_ONLINE = gettext_lazy("the machine is back online")
BACK_IN_RANGE = gettext_lazy("temperature back in range")
REFILLED = gettext_lazy("refilled")
NOW_EMPTY = gettext_lazy("now empty")


def _clear_if_active(device, active, alarm_type: str, bin_index: int, reason, now) -> None:
    if active is None or (alarm_type, bin_index) in active:
        clear_alarms(
            device,
            alarm_type,
            bin_index=None if bin_index == NO_BIN else bin_index,
            reason=str(reason),
            now=now,
        )


def _raise_or_bump(device, active, alarm_type: str, severity: str, bin_index: int, message, now) -> None:
    """Open the alarm, or bump it. One UPDATE when `active` says it is open already (a bin that stays
    low reports again and again); if it was cleared meanwhile, it opens again as usual."""
    already_open = active is not None and (alarm_type, bin_index) in active
    if already_open and _bump(device, alarm_type, bin_index, message, now or timezone.now()):
        return
    open_or_bump_alarm(
        device,
        alarm_type,
        severity,
        bin_index=None if bin_index == NO_BIN else bin_index,
        now=now,
        message=message,
    )


def machine_came_online(device, now: datetime | None = None, active=None) -> None:
    _clear_if_active(device, active, AlarmType.OFFLINE, NO_BIN, BACK_ONLINE, now)


def temperature_reported(
    device, temperature_c: float | None, now: datetime | None = None, active=None
) -> None:
    if temperature_c is None:
        return
    if temperature_in_range(temperature_c):
        _clear_if_active(device, active, AlarmType.TEMPERATURE_OUT_OF_RANGE, NO_BIN, BACK_IN_RANGE, now)
    else:
        low, high = brewing_range_c()
        _raise_or_bump(
            device,
            active,
            AlarmType.TEMPERATURE_OUT_OF_RANGE,
            Severity.WARNING,
            NO_BIN,
            _("%(t).1f °C is outside %(low).0f–%(high).0f °C")
            % {"t": temperature_c, "low": low, "high": high},
            now,
        )


def after_heartbeat(device, temperature_c: float | None, outcome, now: datetime | None = None) -> None:
    """What a heartbeat means for alarms. Unchanged heartbeats (outcome None) in range cost nothing;
    a changed one costs one query unless an alarm opens, is bumped or clears."""
    if temperature_in_range(temperature_c) and outcome is None:
        return
    active = _active_kinds(device)
    temperature_reported(device, temperature_c, now=now, active=active)
    if outcome is None:
        return
    if outcome.came_online:
        machine_came_online(device, now=now, active=active)
    if outcome.bins is not None:
        bins_reported(device, outcome.bins, now=now, active=active)


def judge_flushed_bins(bins_by_device) -> None:
    """The levels quiet heartbeats wrote behind, once the flush has written them ({device: bins}),
    judged like any other bin report, with one query for the active alarms of every machine."""
    active = defaultdict(set)
    for device_id, alarm_type, bin_index in Alarm.objects.filter(
        device__in=bins_by_device, is_active=True
    ).values_list("device_id", "type", "bin_index"):
        active[device_id].add((alarm_type, bin_index))
    for device, bins in bins_by_device.items():
        bins_reported(device, bins, active=active[device.pk])


def bins_reported(device, bins, now: datetime | None = None, active=None, reason=None) -> None:
    """Open low/empty alarms for bins at or under their threshold; clear them when refilled (or for
    `reason`, when something else made the bin no longer low: a threshold changed)."""
    active = _active_kinds(device) if active is None else active
    refilled = REFILLED if reason is None else reason
    for bin_ in bins:
        empty, low = bin_.is_empty, bin_.is_low
        if empty:
            _raise_or_bump(
                device,
                active,
                AlarmType.MATERIAL_EMPTY,
                Severity.CRITICAL,
                bin_.index,
                _("%(material)s is empty") % {"material": bin_.material_code},
                now,
            )
        else:
            _clear_if_active(device, active, AlarmType.MATERIAL_EMPTY, bin_.index, refilled, now)
        if low and not empty:
            _raise_or_bump(
                device,
                active,
                AlarmType.MATERIAL_LOW,
                Severity.WARNING,
                bin_.index,
                _("%(material)s at %(pct).0f%%") % {"material": bin_.material_code, "pct": bin_.level_pct},
                now,
            )
        else:
            _clear_if_active(
                device, active, AlarmType.MATERIAL_LOW, bin_.index, NOW_EMPTY if empty else refilled, now
            )


def command_gave_up(command, now: datetime | None = None) -> None:
    """A command that ended failed or timed out raises an alarm on its machine (`upgrade_failed` for
    an upgrade, `command_failed` for the rest); any other outcome raises none."""
    if command.status not in GAVE_UP_COMMAND_STATUSES:
        return
    alarm_type = AlarmType.UPGRADE_FAILED if command.type == CommandType.UPGRADE else AlarmType.COMMAND_FAILED
    open_or_bump_alarm(
        command.device,
        alarm_type,
        Severity.WARNING,
        now=now,
        message=_("%(type)s %(status)s: %(error)s")
        % {"type": command.type, "status": command.status, "error": command.error or "—"},
    )


def _notify_after_commit(alarm: Alarm) -> None:
    queue_after_commit(NOTIFY_ALARM, alarm.pk)
