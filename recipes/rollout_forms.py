"""The admin's form to start a rollout on the machines chosen in the device list. Shape only: which
machines can take the package, and how stages are cut, is `recipes.services.rollouts`'."""

from django import forms
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminIntegerFieldWidget, UnfoldAdminSelectWidget, UnfoldBooleanSwitchWidget

from recipes.models import RecipePackage

SIZE_KINDS = [
    ("count", _("machines")),
    # A percent sign, not a placeholder: without this xgettext flags the string python-format.
    # xgettext:no-python-format
    ("percent", _("% of the machines")),
]


class StartRolloutForm(forms.Form):
    # What tells the action's second post (the form sent) from its first (machines just selected).
    _form_submitted = forms.BooleanField(required=True, initial=True, widget=forms.HiddenInput)
    package = forms.ModelChoiceField(queryset=RecipePackage.objects.none(), widget=UnfoldAdminSelectWidget)
    canary = forms.IntegerField(
        label=_("Canary"), min_value=1, initial=1, widget=UnfoldAdminIntegerFieldWidget
    )
    canary_kind = forms.ChoiceField(
        choices=SIZE_KINDS, initial="count", widget=UnfoldAdminSelectWidget, label=""
    )
    wave = forms.IntegerField(
        label=_("Each wave after it"), min_value=1, required=False, widget=UnfoldAdminIntegerFieldWidget,
        help_text=_("Empty: all the others in one wave."),
    )  # fmt: skip
    wave_kind = forms.ChoiceField(
        choices=SIZE_KINDS, initial="percent", widget=UnfoldAdminSelectWidget, label=""
    )
    success_threshold_pct = forms.IntegerField(
        label=_("Success threshold (%)"),
        min_value=1,
        max_value=100,
        initial=90,
        widget=UnfoldAdminIntegerFieldWidget,
    )
    failure_threshold_pct = forms.IntegerField(
        label=_("Failure threshold (%)"),
        min_value=1,
        max_value=100,
        initial=20,
        widget=UnfoldAdminIntegerFieldWidget,
    )
    auto_advance = forms.BooleanField(
        label=_("Advance by itself"), required=False, initial=True, widget=UnfoldBooleanSwitchWidget
    )
    send_upgrade_command = forms.BooleanField(
        label=_("Also send an upgrade command"), required=False, widget=UnfoldBooleanSwitchWidget
    )

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["package"].queryset = RecipePackage.objects.for_user(request.user).filter(
            status=RecipePackage.Status.READY
        )

    def rollout_options(self) -> dict:
        data = self.cleaned_data
        wave = {data["wave_kind"]: data["wave"]} if data.get("wave") else None
        return {
            "package": data["package"],
            "canary": {data["canary_kind"]: data["canary"]},
            "wave": wave,
            "success_threshold_pct": data["success_threshold_pct"],
            "failure_threshold_pct": data["failure_threshold_pct"],
            "auto_advance": data["auto_advance"],
            "send_upgrade_command": data["send_upgrade_command"],
        }
