"""Remote commands and their batches, followed through their lifecycle (kept live by live.js)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.contrib.filters.admin import ChoicesDropdownFilter, DropdownFilter
from unfold.decorators import action, display

from accounts.models import Capability
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter
from coffeeshop.exceptions import Conflict, DomainError
from operations import selectors
from operations.admin.common import EMPTY, admin_url, labels_of, object_views
from operations.admin.jobs import job_element, job_status_response
from operations.models import CommandBatch, CommandStatus, RemoteCommand
from operations.services import commands
from operations.services.commands import cancel_command, cancel_pending, retry_failed


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
