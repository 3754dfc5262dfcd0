"""Operations in the back office: background jobs, remote commands and their batches, alarms (with the
live badge in the sidebar), notification channels, maintenance windows and the audit trail.

Every action calls the service the staff API calls (`operations.services`). Elements that change while
a page is open carry `data-live` attributes; static/coffeeshop/live.js updates them from the staff
socket (job.progress, command.updated, batch.updated, alarm.*).
"""

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.contrib.filters.admin import ChoicesDropdownFilter, DropdownFilter
from unfold.decorators import action, display

from accounts.models import Capability
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter, user_can
from coffeeshop.exceptions import Conflict, DomainError
from devices.admin import DeviceAdmin as FleetDeviceAdmin
from devices.models import Device
from operations import selectors
from operations.forms import ClearAlarmForm, MaintenanceWindowForm, NotificationChannelForm, SendCommandForm
from operations.models import (
    NO_BIN,
    Alarm,
    AlarmType,
    CommandBatch,
    CommandStatus,
    MaintenanceWindow,
    NotificationChannel,
    OperationLog,
    RemoteCommand,
    Severity,
    TaskJob,
)
from operations.services import cancel_job, commands, job_payload
from operations.services.alarms import acknowledge_alarm, clear_alarm_by_hand
from operations.services.commands import cancel_command, cancel_pending, retry_failed
from operations.tasks import dispatch_command_batch

EMPTY = "\u2013"
SEVERITY_COLOURS = {Severity.CRITICAL: "danger", Severity.WARNING: "warning", Severity.INFO: "info"}


def labels_of(choices) -> str:
    """A TextChoices' labels as JSON, for live.js to write a status in the page's language."""
    return json.dumps({value: str(label) for value, label in choices.choices}, ensure_ascii=False)


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def object_views(model_admin, **views) -> list:
    """Extra admin pages of one object: `<id>/<name>/`, named `<app>_<model>_<name>` like Django's own."""
    meta = model_admin.model._meta
    return [
        path(
            f"<path:object_id>/{name}/",
            model_admin.admin_site.admin_view(view),
            name=f"{meta.app_label}_{meta.model_name}_{name}",
        )
        for name, view in views.items()
    ]


# --- Sidebar: who sees which entry, and the live alarm badge -----------------------------------------


def can_manage_notifications(request) -> bool:
    return user_can(request.user, Capability.MANAGE_MERCHANTS)


def can_read_audit(request) -> bool:
    return user_can(request.user, Capability.MANAGE_USERS)


def alarm_badge(request):
    """The sidebar's active alarm counts (critical, warning), refreshed by live.js on alarm.* events.

    It also carries what live.js needs to announce a new critical alarm in the page's language.
    """
    if not user_can(request.user, Capability.VIEW):
        return ""
    counts = selectors.active_alarm_counts(request.user)
    return format_html(
        '<span class="cs-alarm-badge" data-live="alarms" data-url="{}" data-alarm-url="{}" '
        'data-toast-title="{}" data-open-label="{}" data-dismiss-label="{}" data-type-labels="{}">'
        '<span class="cs-alarm-count" data-severity="critical" data-count="{}" title="{}">{}</span>'
        '<span class="cs-alarm-count" data-severity="warning" data-count="{}" title="{}">{}</span>'
        "</span>",
        reverse("admin:operations_alarm_counts"),
        admin_url(Alarm, "change", 0),
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


# --- Background jobs --------------------------------------------------------------------------------


def job_element(job: TaskJob, status_url: str | None = None) -> str:
    """The job's status, a progress bar and, once it succeeded, its download link (kept live).

    live.js polls `status_url` (the job's own status page by default) when no socket event comes."""
    download = admin_url(TaskJob, "download", job.pk)
    return format_html(
        '<span class="cs-job" data-live="job" data-job-id="{}" data-status="{}" data-status-url="{}" '
        'data-download-url="{}" data-labels="{}">'
        '<span class="cs-job-status">{}</span>'
        '<span class="cs-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        'aria-valuenow="{}">'
        '<span class="cs-progress-fill" style="width: {}%"></span></span>'
        '<span class="cs-job-percent">{}%</span>'
        '<a class="cs-job-download text-primary-600" href="{}"{}>{}</a>'
        "</span>",
        job.pk,
        job.status,
        status_url or admin_url(TaskJob, "status", job.pk),
        download,
        labels_of(TaskJob.Status),
        job.get_status_display(),
        job.progress,
        job.progress,
        job.progress,
        download,
        "" if job.status == TaskJob.Status.SUCCEEDED and job.result_file else mark_safe(" hidden"),
        _("Download CSV"),
    )


def job_status_response(job: TaskJob) -> JsonResponse:
    payload = job_payload(job)
    payload["download_url"] = admin_url(TaskJob, "download", job.pk) if payload["download_url"] else None
    return JsonResponse(payload)


@admin.register(TaskJob)
class TaskJobAdmin(ScopedModelAdmin):
    """Only the person who started a job sees it (its file holds what they could see); platform staff
    see every job. The file downloads through the admin, never from a public media URL."""

    write_capability = None
    list_display = ["job", "progress_bar", "result_rows", "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["created_by"]
    fields = [
        "kind",
        "progress_bar",
        "params",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "cancel_requested",
        "result_rows",
        "error",
    ]
    readonly_fields = ["progress_bar"]
    actions_detail = ["cancel"]

    def get_urls(self):
        extra = object_views(self, download=self.download_view, status=self.status_view)
        return [*extra, *super().get_urls()]

    def has_cancel_permission(self, request, obj=None):
        return self.has_view_permission(request)  # anyone may cancel a job they can see (as in the API)

    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        job = self.get_object(request, unquote(str(object_id)))
        return [a for a in actions if not (job is not None and job.is_finished)]

    @display(description=_("job"), header=True)
    def job(self, job):
        filters = ", ".join(f"{name}={value}" for name, value in sorted(job.params.items()))
        return [str(job), filters or EMPTY]

    @display(description=_("progress"))
    def progress_bar(self, job):
        return job_element(job)

    def visible_job(self, request, object_id) -> TaskJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self.object_for_action(request, object_id)

    def download_view(self, request, object_id):
        job = self.visible_job(request, object_id)
        if job.status != TaskJob.Status.SUCCEEDED or not job.result_file:
            raise Http404(_("This job has no file (yet)."))
        return FileResponse(
            job.result_file.open("rb"),
            as_attachment=True,
            filename=job.result_file.name.rsplit("/", 1)[-1],
            content_type="text/csv",
        )

    def status_view(self, request, object_id):
        """A job's state for live.js when no socket event reaches the page (no Redis, a worker elsewhere)."""
        return job_status_response(self.visible_job(request, object_id))

    @action(
        description=_("Cancel"),
        icon="cancel",
        permissions=["cancel"],
        dialog={
            "title": _("Cancel this job?"),
            "description": _("A waiting job stops at once; a running one at its next progress report."),
            "form_submit_text": _("Cancel job"),
        },
    )
    def cancel(self, request, form, object_id):
        job = self.object_for_action(request, object_id)
        if job.is_finished:
            messages.warning(request, _("This job has already finished."))
        else:
            cancel_job(job)
            messages.success(request, _("%(job)s will stop.") % {"job": job})
        return self.back_to_change_page(request, job)


# --- Remote commands --------------------------------------------------------------------------------


def command_status_element(command: RemoteCommand) -> str:
    return format_html(
        '<span class="cs-command-status" data-live="command" data-command-id="{}" data-status="{}" '
        'data-labels="{}">{}</span>',
        command.pk,
        command.status,
        labels_of(CommandStatus),
        command.get_status_display(),
    )


class BatchFilter(DropdownFilter):
    """The user's latest batches (a batch shows up here once it has a command on a machine they see)."""

    title = _("batch")
    parameter_name = "batch"
    LATEST = 50

    def lookups(self, request, model_admin):
        visible = CommandBatch.objects.filter(
            pk__in=model_admin.get_queryset(request).exclude(batch=None).values("batch_id")
        )
        batches = list(visible.order_by("-created_at")[: self.LATEST])
        chosen = self.value()
        if chosen and chosen.isdigit() and all(batch.pk != int(chosen) for batch in batches):
            batches += list(visible.filter(pk=chosen))  # an older batch, linked from its page
        return [(str(batch.pk), f"#{batch.pk} {batch.get_type_display()}") for batch in batches]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(batch_id=value) if value.isdigit() else queryset.none()


@admin.register(RemoteCommand)
class RemoteCommandAdmin(ScopedModelAdmin):
    """Commands are sent from a machine's page (or to a selection of machines); here they are followed
    through their lifecycle, and a pending one can be canceled."""

    write_capability = None
    list_display = [
        "command",
        "device",
        "status_label",
        "attempts",
        "batch_link",
        "created_at",
        "finished_at",
    ]
    list_select_related = ["device", "batch"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("type", ChoicesDropdownFilter),
        ("device", ScopedRelatedFilter),
        BatchFilter,
    ]
    list_filter_submit = True
    search_fields = ["device__serial", "device__alias"]
    fieldsets = [
        (
            None,
            {"fields": ["device", "batch", "type", "payload", "run_when_idle", "created_by", "status_label"]},
        ),
        (
            _("Lifecycle"),
            {
                "fields": [
                    "created_at",
                    "next_attempt_at",
                    "sent_at",
                    "delivered_at",
                    "lease_expires_at",
                    "finished_at",
                    "expires_at",
                    "attempt",
                    "max_attempts",
                    "retry_backoff_s",
                    "delivery_channel",
                ]
            },
        ),
        (_("Result"), {"fields": ["reported_status", "result", "error"]}),
    ]
    readonly_fields = ["status_label"]
    actions = ["cancel_selected"]
    actions_detail = ["cancel"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("device", "batch", "created_by")

    def has_operate_permission(self, request, obj=None):
        return self.has_capability(request, Capability.OPERATE_DEVICES)

    @display(description=_("command"), header=True)
    def command(self, command):
        return [command.get_type_display(), str(command.pk)[:8]]

    @display(description=_("status"), ordering="status")
    def status_label(self, command):
        return command_status_element(command)

    @display(description=_("attempts"))
    def attempts(self, command):
        return f"{command.attempt} / {command.max_attempts}"

    @display(description=_("batch"), ordering="batch")
    def batch_link(self, command):
        if command.batch_id is None:
            return EMPTY
        return format_html(
            '<a class="text-primary-600" href="{}">#{}</a>',
            admin_url(CommandBatch, "change", command.batch_id),
            command.batch_id,
        )

    @action(
        description=_("Cancel"),
        icon="cancel",
        permissions=["operate"],
        dialog={
            "title": _("Cancel this command?"),
            "description": _("Only a command the machine has not collected yet can be canceled."),
            "form_submit_text": _("Cancel command"),
        },
    )
    def cancel(self, request, form, object_id):
        command = self.object_for_action(request, object_id)
        try:
            cancel_command(command)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("The command is canceled."))
        return self.back_to_change_page(request, command)

    @action(description=_("Cancel selected pending commands"), icon="cancel", permissions=["operate"])
    def cancel_selected(self, request, queryset):
        canceled = refused = 0
        for command in queryset:
            try:
                cancel_command(command)
            except Conflict:
                refused += 1
            else:
                canceled += 1
        messages.success(
            request,
            ngettext("Canceled %(count)d command.", "Canceled %(count)d commands.", canceled)
            % {"count": canceled},
        )
        if refused:
            messages.warning(
                request,
                ngettext(
                    "%(count)d command was no longer pending and was left as it is.",
                    "%(count)d commands were no longer pending and were left as they are.",
                    refused,
                )
                % {"count": refused},
            )


# --- Command batches --------------------------------------------------------------------------------


def batch_counts_of(batch) -> dict:
    """The per-state counts `operations.selectors.batches_for` annotated (of the user's machines only)."""
    counts = {status: getattr(batch, f"n_{status}", 0) for status in CommandStatus.values}
    return {"id": batch.pk, "total": getattr(batch, "n_total", 0), "counts": counts}


def batch_element(batch) -> str:
    summary = batch_counts_of(batch)
    total = summary["total"] or 1
    segments = format_html_join(
        "",
        '<span class="cs-batch-segment" data-status="{}" style="width: {}%"></span>',
        ((status, round(n * 100 / total, 2)) for status, n in summary["counts"].items()),
    )
    legend = format_html_join(
        "",
        '<span class="cs-batch-count" data-status="{}" data-count="{}"><b>{}</b> {}</span>',
        ((status, n, n, CommandStatus(status).label) for status, n in summary["counts"].items()),
    )
    return format_html(
        '<span class="cs-batch" data-live="batch" data-batch-id="{}" data-url="{}">'
        '<span class="cs-batch-bar">{}</span><span class="cs-batch-legend">{}</span></span>',
        batch.pk,
        admin_url(CommandBatch, "counts", batch.pk),
        segments,
        legend,
    )


@admin.register(CommandBatch)
class CommandBatchAdmin(ScopedModelAdmin):
    """A batch is made from the device list ("Send command to selected machines"). A user sees a batch
    that reached one of their machines, counted over their machines only."""

    write_capability = None
    list_display = ["batch", "progress", "job_progress", "created_by", "created_at"]
    list_filter = [("type", ChoicesDropdownFilter)]
    fields = [
        "type",
        "payload",
        "target",
        "merchant",
        "created_by",
        "created_at",
        "job_progress",
        "progress",
        "commands",
    ]
    readonly_fields = ["job_progress", "progress", "commands"]
    actions_detail = ["retry_failed_commands", "cancel_pending_commands"]

    def get_queryset(self, request):
        # A batch has no merchant of its own (it may span several): the selector scopes it through its
        # commands' machines and counts them per state.
        return selectors.batches_for(request.user).select_related("merchant").order_by("-created_at")

    def get_urls(self):
        return [*object_views(self, counts=self.counts_view, job=self.job_view), *super().get_urls()]

    def has_operate_permission(self, request, obj=None):
        return self.has_capability(request, Capability.OPERATE_DEVICES)

    def counts_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(batch_counts_of(self.object_for_action(request, object_id)))

    def job_view(self, request, object_id):
        """The batch's job for live.js: whoever sees the batch follows its job (the job page is its
        creator's)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch = self.object_for_action(request, object_id)
        if batch.job is None:
            raise Http404
        return job_status_response(batch.job)

    @display(description=_("batch"), header=True)
    def batch(self, batch):
        machines = ngettext("%(n)d machine", "%(n)d machines", batch.n_total) % {"n": batch.n_total}
        return [f"#{batch.pk} {batch.get_type_display()}", machines]

    @display(description=_("progress"))
    def progress(self, batch):
        return batch_element(batch)

    @display(description=_("job"))
    def job_progress(self, batch):
        """The job creating the commands: a batch grows while it runs and stops growing if canceled."""
        if batch.job is None:
            return EMPTY
        return job_element(batch.job, status_url=admin_url(CommandBatch, "job", batch.pk))

    @display(description=_("commands"))
    def commands(self, batch):
        return format_html(
            '<a class="text-primary-600" href="{}?batch={}">{}</a>',
            reverse("admin:operations_remotecommand_changelist"),
            batch.pk,
            _("See each machine's command"),
        )

    def whole_batch(self, request, object_id) -> CommandBatch:
        """Retrying or canceling acts on the whole batch, so only someone who sees all of it may (as in
        the API)."""
        batch = self.object_for_action(request, object_id)
        if not commands.may_act_on_whole_batch(request.user, batch):
            raise PermissionDenied(_("This batch includes machines of other merchants."))
        return batch

    @action(
        description=_("Retry failed"),
        icon="replay",
        permissions=["operate"],
        dialog={
            "title": _("Send the failed commands again?"),
            "description": _("Commands that failed, timed out or expired start again as fresh attempts."),
            "form_submit_text": _("Retry failed"),
        },
    )
    def retry_failed_commands(self, request, form, object_id):
        batch = self.whole_batch(request, object_id)
        count = retry_failed(batch)
        messages.success(
            request,
            ngettext("Sending %(count)d command again.", "Sending %(count)d commands again.", count)
            % {"count": count},
        )
        return self.back_to_change_page(request, batch)

    @action(
        description=_("Cancel pending"),
        icon="cancel",
        permissions=["operate"],
        dialog={
            "title": _("Cancel the pending commands?"),
            "description": _("Machines that have not collected the command yet will not get it."),
            "form_submit_text": _("Cancel pending"),
        },
    )
    def cancel_pending_commands(self, request, form, object_id):
        batch = self.whole_batch(request, object_id)
        count = cancel_pending(batch)
        messages.success(
            request,
            ngettext("Canceled %(count)d pending command.", "Canceled %(count)d pending commands.", count)
            % {"count": count},
        )
        return self.back_to_change_page(request, batch)


# --- Alarms -----------------------------------------------------------------------------------------


class AcknowledgedFilter(admin.SimpleListFilter):
    title = _("acknowledged")
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


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
        "is_active",
        AcknowledgedFilter,
        ("merchant", ScopedRelatedFilter),
    ]
    list_filter_submit = True
    search_fields = ["device__serial", "device__alias", "message"]
    fieldsets = [
        (None, {"fields": ["merchant", "device", "type", "severity_label", "bin", "message", "count"]}),
        (
            _("Lifecycle"),
            {
                "fields": [
                    "is_active",
                    "first_seen_at",
                    "last_seen_at",
                    "acknowledged_at",
                    "acknowledged_by",
                    "cleared_at",
                    "cleared_by",
                    "clear_reason",
                    "notified_at",
                ]
            },
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
        alarm = form.target
        try:
            clear_alarm_by_hand(alarm, user=request.user, reason=form.cleaned_data["reason"])
        except DomainError as error:
            form.add_service_error(error)
            return form.dialog_response(request, CLEAR_ALARM_DIALOG)
        messages.success(request, _("Alarm cleared."))
        return self.back_to_change_page(request, alarm)

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


# --- Notification channels and maintenance windows ---------------------------------------------------


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ScopedModelAdmin):
    """Where a merchant hears about alarms: their Admins keep it (webhook secrets included)."""

    view_capability = Capability.MANAGE_MERCHANTS
    write_capability = Capability.MANAGE_MERCHANTS
    secret_fields = ("secret",)
    form = NotificationChannelForm
    list_display = ["target", "kind", "merchant", "min_severity", "is_active"]
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


# --- The audit trail ---------------------------------------------------------------------------------


@admin.register(OperationLog)
class OperationLogAdmin(ScopedModelAdmin):
    """Who did what. Admins read their merchants' trail; nobody adds, changes or deletes a line."""

    view_capability = Capability.MANAGE_USERS
    write_capability = None
    date_hierarchy = "created_at"
    list_display = [
        "created_at",
        "action",
        "target_repr",
        "actor",
        "source",
        "merchant",
        "device",
        "ip_address",
    ]
    list_select_related = ["actor", "merchant", "device"]
    list_filter = ["source", "action", ("merchant", ScopedRelatedFilter)]
    list_filter_submit = True
    search_fields = ["action", "target_repr", "actor__email"]
    show_full_result_count = False
    fields = [
        "created_at",
        "action",
        "source",
        "actor",
        "merchant",
        "device",
        "ip_address",
        "target_type",
        "target_id",
        "target_repr",
        "changes",
    ]


# --- The device pages get "send command" here: devices must not import operations -----------------


def batch_started_message(batch: CommandBatch) -> str:
    queued = ngettext(
        "A background job is creating the command for %(count)d machine.",
        "A background job is creating the commands for %(count)d machines.",
        batch.machines,
    ) % {"count": batch.machines}
    return format_html(
        '{} <a class="text-primary-600" href="{}">{}</a> · <a class="text-primary-600" href="{}">{}</a>',
        queued,
        admin_url(CommandBatch, "change", batch.pk),
        _("Follow the batch"),
        admin_url(TaskJob, "change", batch.job.pk),
        _("Follow the job"),
    )


SEND_COMMAND_DIALOG = {
    "title": _("Send a command to this machine"),
    "description": _("It is delivered on the machine's next heartbeat, pull or socket push."),
    "form_class": SendCommandForm,
    "form_submit_text": _("Send command"),
}


admin.site.unregister(Device)


@admin.register(Device)
class DeviceAdmin(FleetDeviceAdmin):
    """The fleet's device admin plus remote commands (the same services as the staff API)."""

    actions = [*FleetDeviceAdmin.actions, "send_command_to_selected"]
    actions_detail = [*FleetDeviceAdmin.actions_detail, "send_command"]

    @action(description=_("Send command"), icon="send", permissions=["operate"], dialog=SEND_COMMAND_DIALOG)
    def send_command(self, request, form, object_id):
        device = form.target
        try:
            command = commands.send_command(device, **form.command_options(), user=request.user)
        except DomainError as error:
            form.add_service_error(error)
            return form.dialog_response(request, SEND_COMMAND_DIALOG)
        messages.success(
            request,
            format_html(
                _(
                    "{command} is queued for {device}; it rides on the machine's next call. "
                    '<a href="{url}">Follow it</a>'
                ),
                command=command.get_type_display(),
                device=device,
                url=reverse("admin:operations_remotecommand_change", args=[command.pk]),
            ),
        )
        return self.back_to_change_page(request, device)

    @action(description=_("Send command to selected machines"), icon="send", permissions=["operate"])
    def send_command_to_selected(self, request, queryset):
        """One command to the chosen machines as a batch: a form page first, then the batch's page."""
        submitted = "_form_submitted" in request.POST
        form = SendCommandForm(request=request, data=request.POST if submitted else None)
        if submitted and form.is_valid():
            device_ids = sorted(queryset.values_list("pk", flat=True))
            try:
                batch = commands.start_batch(
                    queryset,
                    **form.command_options(),
                    user=request.user,
                    target={"device_ids": device_ids},
                    enqueue=dispatch_command_batch.delay,
                )
            except DomainError as error:
                form.add_service_error(error)
            else:
                messages.success(request, batch_started_message(batch))
                return HttpResponseRedirect(admin_url(CommandBatch, "change", batch.pk))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Send a command"),
            "opts": self.opts,
            "form": form,
            "devices": list(queryset),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "send_command_to_selected",
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/operations/send_command_to_selected.html", context)
