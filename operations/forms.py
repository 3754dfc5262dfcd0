"""Forms of the operations admin pages, and the base of every admin dialog form that calls a service.

A dialog form checks shape only (a number, a JSON object, a required text). The rule that decides
lives in the service the admin action calls; when the service refuses, `add_service_error` puts its
message on the form, where the person who filled it in reads it.
"""

import json

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from unfold.forms import BaseDialogForm
from unfold.widgets import (
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldBooleanSwitchWidget,
)

from coffeeshop.exceptions import DomainError
from operations.models import CommandType, MaintenanceWindow, NotificationChannel
from operations.payloads import validated_payload

DIALOG_ERRORS_TEMPLATE = "admin/operations/dialog_errors.html"

# What each command type carries (operations/payloads.py), shown under the payload field.
PAYLOAD_EXAMPLES = {
    CommandType.MAKE_PRODUCT: {"product_id": "latte", "options": {"size": "large"}},
    CommandType.OPEN_DOOR: {"duration_s": 30},
    CommandType.UPGRADE: {"package_id": "pkg-1", "version": "3", "url": "https://…", "sha256": "…"},
    CommandType.SYNC: {"what": ["status", "materials"]},
    CommandType.SET_PARAMS: {"params": {"brew_temperature_c": 92}},
    CommandType.RESTART: {"reason": "stuck grinder"},
    CommandType.CLEAN: {"program": "rinse"},
    CommandType.LOCK: {"reason": "maintenance"},
    CommandType.UNLOCK: {},
}


class ServiceDialogForm(BaseDialogForm):
    """An unfold dialog form for one object (or none, on a changelist) whose action calls a service.

    `target_queryset(user)` names the scoped rows the dialog may act on: a dialog for an object the user
    cannot see answers 404, like its change page.
    """

    form_before_template = DIALOG_ERRORS_TEMPLATE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.target = None
        if self.object_id is not None:
            try:
                self.target = self.target_queryset(self.request.user).filter(pk=self.object_id).first()
            except (ValueError, ValidationError):
                self.target = None  # not even an id: as missing as any other
            if self.target is None:
                raise Http404

    def target_queryset(self, user):
        raise NotImplementedError

    def get_before_template_context(self, request, object_id=None):
        return {"errors": self.non_field_errors(), "form": self}

    def add_service_error(self, error: DomainError) -> None:
        """Show a service's refusal: on the field it names (`payload.duration_s` → payload), else above."""
        placed = False
        for name, messages in (error.details.get("fields") or {}).items():
            field, _dot, detail = name.partition(".")
            if field in self.fields:
                for message in messages:
                    self.add_error(field, f"{detail}: {message}" if detail else message)
                placed = True
        if not placed:
            self.add_error(None, error.message)

    def dialog_response(self, request, dialog: dict):
        """The dialog again, with this form's errors (htmx swaps it into the open dialog)."""
        return render(
            request,
            "unfold/helpers/dialog.html",
            {"dialog": dialog, "form": self, "form_submit_text": dialog.get("form_submit_text", "")},
        )


# --- Commands ---------------------------------------------------------------------------------------


def payload_help_text() -> str:
    examples = "; ".join(
        f"{CommandType(kind).label}: {json.dumps(example, ensure_ascii=False)}"
        for kind, example in PAYLOAD_EXAMPLES.items()
    )
    return str(_("A JSON object, by type. %(examples)s")) % {"examples": examples}


class SendCommandForm(ServiceDialogForm):
    """A command for one machine (the device page) or for the machines chosen on the device list."""

    type = forms.ChoiceField(label=_("Command"), choices=CommandType.choices, widget=UnfoldAdminSelectWidget)
    payload = forms.JSONField(
        label=_("Payload"),
        required=False,
        initial=dict,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 4, "class": "font-mono"}),
    )
    expires_in_min = forms.IntegerField(
        label=_("Expires in (minutes)"),
        initial=60,
        min_value=1,
        max_value=7 * 24 * 60,
        widget=UnfoldAdminIntegerFieldWidget,
        help_text=_("A command the machine has not collected by then expires."),
    )
    max_attempts = forms.IntegerField(
        label=_("Maximum attempts"),
        initial=3,
        min_value=1,
        max_value=20,
        widget=UnfoldAdminIntegerFieldWidget,
    )
    run_when_idle = forms.BooleanField(
        label=_("Run when idle"),
        required=False,
        widget=UnfoldBooleanSwitchWidget,
        help_text=_("Held until the machine reports that it is idle."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payload"].help_text = payload_help_text()

    def target_queryset(self, user):
        from devices.selectors import devices_for

        return devices_for(user)

    def clean(self):
        cleaned = super().clean()
        command_type, payload = cleaned.get("type"), cleaned.get("payload")
        if command_type and "payload" in cleaned:
            clean_payload, errors = validated_payload(command_type, {} if payload is None else payload)
            for name, messages in errors.items():
                detail = name.partition(".")[2]
                for message in messages:
                    self.add_error("payload", f"{detail}: {message}" if detail else message)
            if not errors:
                cleaned["payload"] = clean_payload
        return cleaned

    def command_options(self) -> dict:
        """The keyword arguments send_command and create_batch take."""
        data = self.cleaned_data
        return {
            "command_type": data["type"],
            "payload": data["payload"],
            "expires_in_s": data["expires_in_min"] * 60,
            "max_attempts": data["max_attempts"],
            "run_when_idle": data["run_when_idle"],
        }


# --- Alarms -----------------------------------------------------------------------------------------


class ClearAlarmForm(ServiceDialogForm):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=255,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text=_("Optional: why it is no longer a problem."),
    )

    def target_queryset(self, user):
        from operations.selectors import alarms_for

        return alarms_for(user)


# --- Notification channels and maintenance windows ---------------------------------------------------


class NotificationChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ["merchant", "kind", "target", "min_severity", "language", "secret", "is_active"]

    def clean(self):
        cleaned = super().clean()
        kind, target = cleaned.get("kind"), cleaned.get("target")
        if kind and target:
            try:
                if kind == NotificationChannel.Kind.EMAIL:
                    validate_email(target)
                else:
                    URLValidator(schemes=["http", "https"])(target)
            except ValidationError:
                message = (
                    _("Enter a valid e-mail address.")
                    if kind == NotificationChannel.Kind.EMAIL
                    else _("Enter a valid http(s) URL.")
                )
                self.add_error("target", message)
        return cleaned


class MaintenanceWindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = ["device", "starts_at", "ends_at", "reason"]

    def clean(self):
        cleaned = super().clean()
        starts, ends = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", _("The window must end after it starts."))
        return cleaned
