"""Alarms (acknowledged and cleared by Ops), where merchants hear about them and the windows in which
nobody is told."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import JsonResponse
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action, display

from accounts.models import Capability
from coffeeshop.admin_base import OpensOnFilter, ScopedModelAdmin, ScopedRelatedFilter
from coffeeshop.exceptions import Conflict, DomainError
from operations import selectors
from operations.forms import ClearAlarmForm, MaintenanceWindowForm, NotificationChannelForm
from operations.models import (
    ALARM_LIFECYCLE_FIELDS,
    NO_BIN,
    Alarm,
    MaintenanceWindow,
    NotificationChannel,
    Severity,
)
from operations.services.alarms import acknowledge_alarm, clear_alarm_by_hand

SEVERITY_COLOURS = {Severity.CRITICAL: "danger", Severity.WARNING: "warning", Severity.INFO: "info"}


class AcknowledgedFilter(admin.SimpleListFilter):
    title = _("acknowledged")
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


class AlarmStateFilter(OpensOnFilter):
    """The list opens on what is wrong now: active alarms, with cleared ones (and all) a click away."""

    title = _("state")
    parameter_name = "state"
    DEFAULT = "active"

    def lookups(self, request, model_admin):
        return [("active", _("Active")), ("cleared", _("Cleared")), ("all", _("All"))]

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.filter(is_active=self.value() != "cleared")


# Unacknowledged first (nobody is on them yet), then the most severe, then the latest.
ALARM_ORDERING = [
    Case(When(acknowledged_at__isnull=True, then=Value(0)), default=Value(1), output_field=IntegerField()),
    Case(
        When(severity=Severity.CRITICAL, then=Value(0)),
        When(severity=Severity.WARNING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    ).asc(),
    "-last_seen_at",
]


CLEAR_ALARM_DIALOG = {
    "title": _("Clear this alarm?"),
    "description": _("It opens again if the machine reports the problem again."),
    "form_class": ClearAlarmForm,
    "form_submit_text": _("Clear alarm"),
}


@admin.register(Alarm)
class AlarmAdmin(ScopedModelAdmin):
    """Alarms open and clear themselves from what the machines report; Ops acknowledge them (someone is
    on it) or clear them by hand."""

    write_capability = None
    list_display = [
        "alarm",
        "severity_label",
        "message",
        "count",
        "last_seen_at",
        "is_active",
        "acknowledged",
    ]
    list_select_related = ["device", "merchant"]
    list_filter = [
        ("type", ChoicesDropdownFilter),
        ("severity", ChoicesDropdownFilter),
        AlarmStateFilter,
        AcknowledgedFilter,
        ("merchant", ScopedRelatedFilter),
        ("device", ScopedRelatedFilter),
    ]
    list_filter_submit = True
    ordering = ALARM_ORDERING
    search_fields = ["device__serial", "device__alias", "message"]
    fieldsets = [
        (None, {"fields": ["merchant", "device", "type", "severity_label", "bin", "message", "count"]}),
        (
            _("Lifecycle"),
            {"fields": ["is_active", *ALARM_LIFECYCLE_FIELDS]},
        ),
    ]
    readonly_fields = ["severity_label", "bin"]
    actions = ["acknowledge_selected"]
    actions_detail = ["acknowledge", "clear"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("device", "merchant")

    def get_urls(self):
        counts = path("counts/", self.admin_site.admin_view(self.counts_view), name="operations_alarm_counts")
        return [counts, *super().get_urls()]

    def counts_view(self, request):
        """The sidebar badge's refresh (live.js): active alarms of the user's merchants by severity."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(selectors.active_alarm_counts(request.user))

    def has_operate_permission(self, request, obj=None):
        return self.has_capability(request, Capability.OPERATE_DEVICES)

    @display(description=_("alarm"), header=True)
    def alarm(self, alarm):
        return [alarm.get_type_display(), f"{alarm.device}{self.bin(alarm, prefix=' #')}"]

    @display(description=_("bin"))
    def bin(self, alarm, prefix=""):
        return "" if alarm.bin_index == NO_BIN else f"{prefix}{alarm.bin_index}"

    @display(description=_("severity"), ordering="severity")
    def severity_label(self, alarm):
        return render_to_string(
            "unfold/helpers/label.html",
            {"text": alarm.get_severity_display(), "type": SEVERITY_COLOURS.get(alarm.severity)},
        )

    @display(description=_("acknowledged"), boolean=True, ordering="acknowledged_at")
    def acknowledged(self, alarm):
        return alarm.acknowledged_at is not None

    @action(
        description=_("Acknowledge"),
        icon="done",
        permissions=["operate"],
        dialog={
            "title": _("Acknowledge this alarm?"),
            "description": _("Tells everyone that someone is on it; it stays active until it clears."),
            "form_submit_text": _("Acknowledge"),
        },
    )
    def acknowledge(self, request, form, object_id):
        alarm = self.object_for_action(request, object_id)
        try:
            acknowledge_alarm(alarm, user=request.user)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("Alarm acknowledged."))
        return self.back_to_change_page(request, alarm)

    @action(description=_("Clear"), icon="check_circle", permissions=["operate"], dialog=CLEAR_ALARM_DIALOG)
    def clear(self, request, form, object_id):
        return self.submit_dialog(
            request,
            form,
            CLEAR_ALARM_DIALOG,
            lambda: clear_alarm_by_hand(form.target, user=request.user, reason=form.cleaned_data["reason"]),
            lambda _alarm: _("Alarm cleared."),
        )

    @action(description=_("Acknowledge selected alarms"), icon="done_all", permissions=["operate"])
    def acknowledge_selected(self, request, queryset):
        acknowledged = 0
        for alarm in queryset.filter(is_active=True, acknowledged_at__isnull=True):
            try:
                acknowledge_alarm(alarm, user=request.user)
            except Conflict:
                continue  # cleared meanwhile
            acknowledged += 1
        messages.success(
            request,
            ngettext("Acknowledged %(count)d alarm.", "Acknowledged %(count)d alarms.", acknowledged)
            % {"count": acknowledged},
        )


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ScopedModelAdmin):
    """Where a merchant hears about alarms: their Admins keep it (webhook secrets included)."""

    view_capability = Capability.MANAGE_MERCHANTS
    write_capability = Capability.MANAGE_MERCHANTS
    secret_fields = ("secret",)
    form = NotificationChannelForm
    list_display = ["target", "kind", "merchant", "min_severity", "language", "is_active"]
    list_select_related = ["merchant"]
    list_filter = [("merchant", ScopedRelatedFilter), "kind", "is_active"]
    search_fields = ["target"]
    ordering = ["merchant__name", "kind", "target"]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(ScopedModelAdmin):
    """While a window lasts, the machine's alarms are recorded but nobody is notified."""

    write_capability = Capability.OPERATE_DEVICES
    form = MaintenanceWindowForm
    list_display = ["device", "starts_at", "ends_at", "reason", "is_current"]
    list_select_related = ["device"]
    list_filter = [("device", ScopedRelatedFilter)]
    search_fields = ["device__serial", "device__alias", "reason"]
    autocomplete_fields = ["device"]

    @display(description=_("now"), boolean=True)
    def is_current(self, window):
        return window.starts_at <= timezone.now() < window.ends_at
