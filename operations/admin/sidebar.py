"""The sidebar: who sees the notification entry, and the live alarm badge."""

from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from accounts.models import Capability
from coffeeshop.admin_base import user_can
from operations import selectors
from operations.admin.common import admin_url, labels_of
from operations.models import Alarm, AlarmType


def can_manage_notifications(request) -> bool:
    return user_can(request.user, Capability.MANAGE_MERCHANTS)


def alarm_badge(request):
    """The sidebar's active alarm counts (critical, warning), refreshed by live.js on alarm.* events.

    It also carries what live.js needs to announce a new critical alarm in the page's language.
    """
    if not user_can(request.user, Capability.VIEW):
        return ""
    counts = selectors.active_alarm_counts(request.user)
    # Whoever may acknowledge gets the toast's one-click Acknowledge (the staff API's, with the CSRF token).
    acknowledge_url = (
        reverse("alarm-acknowledge", args=[0]) if user_can(request.user, Capability.OPERATE_DEVICES) else ""
    )
    return format_html(
        '<span class="cs-alarm-badge" data-live="alarms" data-url="{}" data-alarm-url="{}" '
        'data-acknowledge-url="{}" data-acknowledge-label="{}" data-acknowledged-label="{}" '
        'data-toast-title="{}" data-open-label="{}" data-dismiss-label="{}" data-type-labels="{}">'
        '<span class="cs-alarm-count" data-severity="critical" data-count="{}" title="{}">{}</span>'
        '<span class="cs-alarm-count" data-severity="warning" data-count="{}" title="{}">{}</span>'
        "</span>",
        reverse("admin:operations_alarm_counts"),
        admin_url(Alarm, "change", 0),
        acknowledge_url,
        _("Acknowledge"),
        _("Acknowledged"),
        _("Critical alarm"),
        _("Open"),
        _("Dismiss"),
        labels_of(AlarmType),
        counts["critical"],
        _("active critical alarms"),
        counts["critical"],
        counts["warning"],
        _("active warnings"),
        counts["warning"],
    )
