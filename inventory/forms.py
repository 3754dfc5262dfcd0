"""The bin page's dialog forms. Shape only: how much fits, and what a threshold does to the alarms, is
decided by `inventory.services.bins`."""

from django import forms
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminDecimalFieldWidget,
    UnfoldAdminSelectMultipleWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanSwitchWidget,
)

from accounts.tenancy import merchant_ids_for
from devices.models import Location
from inventory.models import Bin
from operations.forms import ServiceDialogForm


class BinDialogForm(ServiceDialogForm):
    def target_queryset(self, user):
        return Bin.objects.for_user(user)


class RefillForm(BinDialogForm):
    form_before_template = "admin/inventory/bin/refill_summary.html"

    amount = forms.FloatField(
        label=_("Amount put in"),
        min_value=0,
        widget=UnfoldAdminDecimalFieldWidget,
        help_text=_("In the bin's unit. Prefilled with what fills it to the top."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.target is not None:
            room = round(self.target.capacity - self.target.remaining, 3)
            self.fields["amount"].initial = room
            self.fields["amount"].help_text = _("In %(unit)s; at most %(room)g fit.") % {
                "unit": self.target.unit,
                "room": room,
            }

    def get_before_template_context(self, request, object_id=None):
        return {**super().get_before_template_context(request, object_id), "bin": self.target}


class ThresholdForm(BinDialogForm):
    follow_material = forms.BooleanField(
        label=_("Use the material's default"),
        required=False,
        widget=UnfoldBooleanSwitchWidget,
    )
    low_threshold_pct = forms.FloatField(
        label=_("Low threshold (%)"),
        required=False,
        min_value=0,
        max_value=100,
        widget=UnfoldAdminDecimalFieldWidget,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.target is not None:
            self.fields["follow_material"].initial = self.target.threshold_follows_material
            self.fields["low_threshold_pct"].initial = self.target.low_threshold_pct

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("follow_material") and cleaned.get("low_threshold_pct") is None:
            self.add_error("low_threshold_pct", _("Give a threshold, or use the material's default."))
        return cleaned

    @property
    def chosen_threshold(self) -> float | None:
        """None gives the bin back to its material's default."""
        return None if self.cleaned_data["follow_material"] else self.cleaned_data["low_threshold_pct"]


class PickListForm(forms.Form):
    """The pick list page's question: which locations, which day. Offered only the user's locations."""

    locations = forms.ModelMultipleChoiceField(
        queryset=Location.objects.none(),
        label=_("Locations"),
        widget=UnfoldAdminSelectMultipleWidget(attrs={"size": 8}),
    )
    date = forms.DateField(
        label=_("Visit date"),
        input_formats=["%Y-%m-%d"],
        widget=UnfoldAdminTextInputWidget(attrs={"type": "date"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["locations"].queryset = (
            Location.objects.for_user(user).select_related("merchant").order_by("name", "pk")
        )
        merchants = merchant_ids_for(user)
        if merchants is None or len(merchants) > 1:  # two merchants may each have a "Lobby"
            self.fields["locations"].label_from_instance = lambda loc: f"{loc.name} · {loc.merchant.name}"
