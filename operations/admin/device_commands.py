"""Remote commands from the machine's pages: one machine from its page, a selection from the list.

Plugged into devices' admin through `plug_into_device_admin` (devices must not import operations).
"""

from django.contrib import messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.decorators import action

from coffeeshop.exceptions import DomainError
from devices.admin import plug_into_device_admin
from operations.admin.common import admin_url
from operations.forms import SendCommandForm
from operations.models import CommandBatch, TaskJob
from operations.services import batch_targets, commands
from operations.tasks import dispatch_command_batch


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


def command_queued_message(command, device) -> str:
    return format_html(
        _(
            "{command} is queued for {device}; it rides on the machine's next call. "
            '<a href="{url}">Follow it</a>'
        ),
        command=command.get_type_display(),
        device=device,
        url=reverse("admin:operations_remotecommand_change", args=[command.pk]),
    )


SEND_COMMAND_DIALOG = {
    "title": _("Send a command to this machine"),
    "description": _("It is delivered on the machine's next heartbeat, pull or socket push."),
    "form_class": SendCommandForm,
    "form_submit_text": _("Send command"),
}


class DeviceCommandActions:
    """Remote commands on the machine's pages (the same services as the staff API)."""

    device_actions = ["send_command_to_selected"]
    device_actions_detail = ["send_command"]

    @action(description=_("Send command"), icon="send", permissions=["operate"], dialog=SEND_COMMAND_DIALOG)
    def send_command(self, request, form, object_id):
        return self.submit_dialog(
            request,
            form,
            SEND_COMMAND_DIALOG,
            lambda: commands.send_command(form.target, **form.command_options(), user=request.user),
            lambda command: command_queued_message(command, form.target),
        )

    @action(description=_("Send command to selected machines"), icon="send", permissions=["operate"])
    def send_command_to_selected(self, request, queryset):
        """One command to the chosen machines as a batch: a form page first, then the batch's page."""
        submitted = "_form_submitted" in request.POST
        form = SendCommandForm(request=request, data=request.POST if submitted else None)
        if submitted and form.is_valid():
            try:
                chosen = batch_targets.machines_by_id(request.user, queryset.values_list("pk", flat=True))
                batch = commands.start_batch(
                    chosen.devices,
                    **form.command_options(),
                    user=request.user,
                    target=chosen.target,
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


plug_into_device_admin(DeviceCommandActions)
