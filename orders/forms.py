"""The order page's dialog forms: a refund, marking and resolving an exception.

Shape only: whether an order may be refunded, and how much, is decided by `orders.services.refund_order`.
"""

from django import forms
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminDecimalFieldWidget, UnfoldAdminTextareaWidget

from operations.forms import ServiceDialogForm
from orders.models import MONEY
from orders.selectors import orders_for


class OrderDialogForm(ServiceDialogForm):
    def target_queryset(self, user):
        return orders_for(user)


class RefundForm(OrderDialogForm):
    form_before_template = "admin/orders/order/refund_summary.html"

    amount = forms.DecimalField(
        label=_("Amount"),
        required=False,
        widget=UnfoldAdminDecimalFieldWidget,
        help_text=_("Leave empty to refund everything not refunded yet."),
        **MONEY,
    )
    reason = forms.CharField(label=_("Reason"), widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.target is not None:
            self.fields["amount"].widget.attrs["placeholder"] = self.target.refundable_amount

    def get_before_template_context(self, request, object_id=None):
        return {**super().get_before_template_context(request, object_id), "order": self.target}


class MarkExceptionForm(OrderDialogForm):
    reason = forms.CharField(
        label=_("Reason"),
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text=_("What went wrong: a complaint, a drink not delivered…"),
    )


class ResolveExceptionForm(OrderDialogForm):
    resolution = forms.CharField(
        label=_("Resolution"),
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text=_("How it was settled."),
    )
