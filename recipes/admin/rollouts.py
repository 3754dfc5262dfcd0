"""Rollouts in the admin: started from the device list's selection, followed stage by stage (live),
approved, paused, resumed, aborted and rolled back through the same services as the API."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action, display
from unfold.views import ChangeList

from accounts.models import Capability
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter
from coffeeshop.exceptions import DomainError
from devices.admin import plug_into_device_admin
from recipes.models import Rollout, RolloutMachine
from recipes.rollout_forms import StartRolloutForm
from recipes.services import rollouts
from recipes.services.rollout_health import health_of


def rollout_url(rollout: Rollout) -> str:
    return reverse("admin:recipes_rollout_change", args=[rollout.pk])


class RolloutChangeList(ChangeList):
    """A page of rollouts reads every row's stage progress in one query, not one per row."""

    def get_results(self, request):
        super().get_results(request)
        progress = rollouts.progress_of([r.pk for r in self.result_list])
        for rollout in self.result_list:
            rollout.progress_stages = progress[rollout.pk]


@admin.register(Rollout)
class RolloutAdmin(ScopedModelAdmin):
    """Started from *Machines* ("Roll out a package to selected machines"); never edited by hand."""

    write_capability = None
    add_capability = None
    delete_capability = None
    list_display = ["rollout", "status", "progress", "created_by", "created_at"]
    list_filter = [("merchant", ScopedRelatedFilter), "status"]
    list_select_related = ["package", "merchant", "created_by"]
    fields = [
        "package",
        "status",
        "halted_reason",
        "progress",
        "health",
        "previous_package",
        "rollback_of",
        "success_threshold_pct",
        "failure_threshold_pct",
        "auto_advance",
        "send_upgrade_command",
        "created_by",
        "created_at",
        "finished_at",
        "machines",
    ]
    readonly_fields = fields
    actions_detail = ["approve", "pause", "resume", "abort", "roll_back"]

    def has_operate_permission(self, request, obj=None):
        return self.has_capability(request, Capability.OPERATE_DEVICES)

    def get_changelist(self, request, **kwargs):
        return RolloutChangeList

    def get_actions_detail(self, request, object_id):
        """Offer what fits the rollout's state; the services still decide when an action is posted."""
        actions = super().get_actions_detail(request, object_id)
        rollout = self.get_object(request, str(object_id)) if actions else None
        if rollout is None:
            return actions
        fitting = {
            Rollout.Status.RUNNING: {"pause", "abort", "roll_back"},
            Rollout.Status.AWAITING_APPROVAL: {"approve", "pause", "abort", "roll_back"},
            Rollout.Status.PAUSED: {"resume", "abort", "roll_back"},
            Rollout.Status.HALTED: {"resume", "abort", "roll_back"},
        }.get(rollout.status, {"roll_back"} if rollout.status == Rollout.Status.ABORTED else set())
        return [a for a in actions if a.action_name.removeprefix("recipes_rollout_") in fitting]

    @display(description=_("rollout"), header=True)
    def rollout(self, rollout):
        return [rollout.package.version, str(rollout.merchant)]

    @display(description=_("progress"))
    def progress(self, rollout):
        return render_to_string(
            "admin/recipes/rollout/progress.html",
            {"rollout": rollout, "stages": self._stages(rollout)},
        )

    @display(description=_("health per package"))
    def health(self, rollout):
        return render_to_string(
            "admin/recipes/rollout/health.html", {"rollout": rollout, "versions": health_of(rollout)}
        )

    @staticmethod
    def _stages(rollout) -> list[dict]:
        stages = getattr(rollout, "progress_stages", None)
        return stages if stages is not None else rollouts.progress_of([rollout.pk])[rollout.pk]

    @display(description=_("machines"))
    def machines(self, rollout):
        return render_to_string(
            "admin/recipes/rollout/machines_link.html",
            {"url": reverse("admin:recipes_rolloutmachine_changelist") + f"?rollout__id__exact={rollout.pk}"},
        )

    def _act(self, request, object_id, call, done):
        rollout = self.object_for_action(request, object_id)
        try:
            outcome = call(rollout)
        except DomainError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(rollout_url(rollout))
        messages.success(request, done)
        return HttpResponseRedirect(rollout_url(outcome))

    @action(description=_("Approve the next stage"), icon="check", permissions=["operate"])
    def approve(self, request, object_id):
        return self._act(
            request,
            object_id,
            lambda r: rollouts.approve_next_stage(r, user=request.user),
            _("Next stage offered."),
        )

    @action(description=_("Pause"), icon="pause", permissions=["operate"])
    def pause(self, request, object_id):
        return self._act(
            request, object_id, rollouts.pause_rollout, _("Paused: no further stage is offered.")
        )

    @action(description=_("Resume"), icon="play_arrow", permissions=["operate"])
    def resume(self, request, object_id):
        return self._act(request, object_id, rollouts.resume_rollout, _("Resumed."))

    @action(description=_("Abort"), icon="cancel", permissions=["operate"])
    def abort(self, request, object_id):
        return self._act(
            request, object_id, rollouts.abort_rollout, _("Aborted: offers not taken are withdrawn.")
        )

    @action(description=_("Roll back"), icon="undo", permissions=["operate"])
    def roll_back(self, request, object_id):
        return self._act(
            request,
            object_id,
            lambda r: rollouts.roll_back(r, user=request.user),
            _("Rolling the previous package back out to the machines that took this one."),
        )


@admin.register(RolloutMachine)
class RolloutMachineAdmin(ScopedModelAdmin):
    write_capability = None
    add_capability = None
    delete_capability = None
    list_display = [
        "device",
        "rollout",
        "stage",
        "status",
        "previous_version",
        "offered_at",
        "finished_at",
        "error",
    ]
    list_filter = ["status", "stage__index"]
    list_select_related = ["device", "rollout__package", "rollout__merchant", "stage"]
    search_fields = ["=device__serial"]
    show_full_result_count = False

    def lookup_allowed(self, lookup, value, request=None):
        return lookup == "rollout__id__exact" or super().lookup_allowed(lookup, value, request)


class DeviceRolloutActions:
    """Start a rollout from the machine list's selection (plugged into devices' admin)."""

    device_actions = ["roll_out_to_selected"]

    @action(
        description=_("Roll out a package to selected machines"),
        icon="system_update",
        permissions=["operate"],
    )
    def roll_out_to_selected(self, request, queryset):
        submitted = "_form_submitted" in request.POST
        form = StartRolloutForm(request=request, data=request.POST if submitted else None)
        if submitted and form.is_valid():
            try:
                rollout = rollouts.start_rollout(
                    devices=queryset, user=request.user, **form.rollout_options()
                )
            except DomainError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, _("The canary is offered the package."))
                return HttpResponseRedirect(rollout_url(rollout))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Roll out a package"),
            "intro": _("The package goes to those of these machines whose model and firmware it supports:"),
            "submit_label": _("Start the rollout"),
            "opts": self.opts,
            "form": form,
            "devices": list(queryset),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "roll_out_to_selected",
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/operations/send_command_to_selected.html", context)


plug_into_device_admin(DeviceRolloutActions)
