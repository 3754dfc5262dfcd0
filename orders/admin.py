"""Sales in the back office: the order list (with its exception queue and CSV export), an order with its
items and refunds, and the actions Ops take on it (refund, mark or resolve an exception).

Orders are what the machines reported: nobody edits them. Every change goes through the services the
staff API uses (`orders.services`), so the admin and the API can never disagree on a rule.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action, display

from accounts.models import Capability
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter, ScopedTabularInline
from coffeeshop.exceptions import DomainError
from devices.admin import plug_into_device_admin, story_section
from orders import selectors
from orders.admin_filters import (
    DATE_FIELD,
    PaymentMethodFilter,
    ReceivedRangeFilter,
    UnexportableFilter,
    export_params,
)
from orders.forms import MarkExceptionForm, RefundForm, ResolveExceptionForm
from orders.models import (
    Order,
    OrderItem,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from orders.services import mark_exception, refund_order, resolve_exception, start_orders_export
from orders.tasks import export_orders

PAYMENT_STATUS_COLOURS = {
    PaymentStatus.UNPAID: "info",
    PaymentStatus.PAID: "success",
    PaymentStatus.FAILED: "danger",
    PaymentStatus.PARTIALLY_REFUNDED: "warning",
    PaymentStatus.REFUNDED: "primary",
    PaymentStatus.REFUND_FAILED: "danger",
}

# --- Inlines ----------------------------------------------------------------------------------------


class OrderItemInline(ScopedTabularInline):
    """What was sold, as sold. Scoped through its order (an item has no merchant of its own)."""

    model = OrderItem
    tenant_scoped = False
    extra = 0
    can_delete = False
    hide_title = True
    ordering = ["position"]
    fields = [
        "position",
        "product_id",
        "name",
        "qty",
        "unit_price",
        "line_total",
        "recipe_version",
        "options",
    ]
    readonly_fields = fields

    @display(description=_("line total"))
    def line_total(self, item):
        return item.line_total


class RefundInline(ScopedTabularInline):
    model = Refund
    extra = 0
    can_delete = False
    hide_title = True
    ordering = ["created_at"]
    fields = [
        "created_at",
        "amount",
        "status_label",
        "reason",
        "created_by",
        "provider_refund_id",
        "failure_reason",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    @display(description=_("status"))
    def status_label(self, refund):
        colour = "success" if refund.status == RefundStatus.SUCCEEDED else "danger"
        return render_to_string(
            "unfold/helpers/label.html", {"text": refund.get_status_display(), "type": colour}
        )


# --- Orders -----------------------------------------------------------------------------------------

REFUND_DIALOG = {
    "title": _("Refund this order"),
    "description": _("The refund goes back through the payment provider; who and why are recorded."),
    "form_class": RefundForm,
    "form_submit_text": _("Refund"),
}
MARK_EXCEPTION_DIALOG = {
    "title": _("Mark this order as an exception"),
    "description": _("It joins the exception queue until someone resolves it."),
    "form_class": MarkExceptionForm,
    "form_submit_text": _("Mark as exception"),
}
RESOLVE_EXCEPTION_DIALOG = {
    "title": _("Resolve this exception"),
    "description": _("It leaves the exception queue; the resolution is kept with the order."),
    "form_class": ResolveExceptionForm,
    "form_submit_text": _("Resolve exception"),
}


@admin.register(Order)
class OrderAdmin(ScopedModelAdmin):
    """Read-only for everyone; Ops and Admins act on an order through its actions."""

    write_capability = None
    date_hierarchy = DATE_FIELD
    list_display = [
        "order",
        "received_at",
        "device",
        "location",
        "total_amount",
        "payment_method_label",
        "payment_status_label",
        "is_exception",
        "is_test",
    ]
    list_select_related = ["merchant", "location", "device"]
    list_filter = [
        ("merchant", ScopedRelatedFilter),
        ("location", ScopedRelatedFilter),
        ("device", ScopedRelatedFilter),
        (DATE_FIELD, ReceivedRangeFilter),
        PaymentMethodFilter,
        ("payment_status", ChoicesDropdownFilter),
        "is_exception",
        "is_test",
    ]
    list_filter_submit = True
    search_fields = ["=machine_order_id", "=transaction_id", "=device__serial"]
    search_help_text = _("Order id, provider transaction id or machine serial")

    def get_search_results(self, request, queryset, search_term):
        return selectors.search_orders(queryset, search_term), False

    list_before_template = "admin/orders/order/export_bar.html"
    ordering = ["-received_at", "-pk"]
    show_full_result_count = False  # a second COUNT over millions of orders on every page
    fieldsets = [
        (
            _("Sale"),
            {
                "fields": [
                    "machine_order_id",
                    "merchant",
                    "location",
                    "device",
                    "device_created_at",
                    "received_at",
                    "is_test",
                ]
            },
        ),
        (
            _("Payment"),
            {
                "fields": [
                    "total",
                    "currency",
                    "payment_method_label",
                    "transaction_id",
                    "payment_status",
                    "refunded_total",
                    "refundable_amount",
                ]
            },
        ),
        (
            _("Exception"),
            {
                "fields": [
                    "is_exception",
                    "exception_reason",
                    "exception_marked_at",
                    "exception_marked_by",
                    "exception_resolution",
                    "exception_resolved_at",
                    "exception_resolved_by",
                ]
            },
        ),
    ]
    readonly_fields = ["refundable_amount", "payment_method_label"]
    inlines = [OrderItemInline, RefundInline]
    actions_detail = ["refund", "mark_as_exception", "resolve_the_exception"]

    def get_queryset(self, request):
        orders = super().get_queryset(request).select_related("merchant", "location", "device")
        return selectors.with_payment_method_names(orders)

    def has_refund_permission(self, request, obj=None):
        return self.has_capability(request, Capability.REFUND)

    def get_actions_detail(self, request, object_id):
        """Offer what fits the order's state; the services still decide when an action is posted."""
        actions = super().get_actions_detail(request, object_id)
        order = self.get_object(request, unquote(str(object_id))) if actions else None
        if order is None:
            return actions
        unfit = set()
        if not order.refundable_amount:
            unfit.add("refund")
        unfit.add("resolve_the_exception" if not order.is_exception else "mark_as_exception")
        return [a for a in actions if a.action_name.removeprefix("orders_order_") not in unfit]

    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name="orders_order_export")
        return [export, *super().get_urls()]

    # --- the list ---

    @display(description=_("order"), ordering="machine_order_id", header=True)
    def order(self, order):
        return [order.machine_order_id, order.transaction_id or "\u2013"]

    @display(description=_("total"), ordering="total")
    def total_amount(self, order):
        if order.refunded_total:
            return format_html(
                '{} {} <span class="text-subtle">(−{})</span>',
                order.total,
                order.currency,
                order.refunded_total,
            )
        return f"{order.total} {order.currency}"

    @display(description=_("payment method"), ordering="payment_method")
    def payment_method_label(self, order):
        return selectors.payment_method_name(order)

    @display(description=_("payment status"), ordering="payment_status", label=PAYMENT_STATUS_COLOURS)
    def payment_status_label(self, order):
        return order.payment_status, order.get_payment_status_display()

    @display(description=_("left to refund"))
    def refundable_amount(self, order):
        return f"{order.refundable_amount} {order.currency}"

    # --- the export of the filtered list ---

    @staticmethod
    def changelist_url(query: str = "") -> str:
        return reverse("admin:orders_order_changelist") + (f"?{query}" if query else "")

    def export_view(self, request):
        return require_POST(self._export)(request)

    def _export(self, request):
        """Export exactly the rows the list shows for the posted query string (all pages of it)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        back = HttpResponseRedirect(self.changelist_url(request.GET.urlencode()))
        try:
            params = export_params(request.GET)
        except UnexportableFilter:
            messages.error(
                request,
                _(
                    "The export follows the list's filters and dates only: "
                    "clear the search (or the empty-location filter) to export."
                ),
            )
            return back
        try:
            job = start_orders_export(request.user, params, enqueue=export_orders.delay)
        except DomainError as error:
            messages.error(request, error.message)
            return back
        messages.success(
            request,
            _("The export has started; this page shows its progress and offers the file when it is ready."),
        )
        return HttpResponseRedirect(reverse("admin:operations_taskjob_change", args=[job.pk]))

    def changelist_view(self, request, extra_context=None):
        extra = {"export_url": reverse("admin:orders_order_export"), **(extra_context or {})}
        return super().changelist_view(request, extra)

    # --- the actions on one order ---

    @action(description=_("Refund"), icon="currency_exchange", permissions=["refund"], dialog=REFUND_DIALOG)
    def refund(self, request, form, object_id):
        order = form.target
        try:
            refund = refund_order(
                order.pk,
                user=request.user,
                reason=form.cleaned_data["reason"],
                amount=form.cleaned_data["amount"],
            )
        except DomainError as error:
            form.add_service_error(error)
            return form.dialog_response(request, REFUND_DIALOG)
        if refund.status == RefundStatus.SUCCEEDED:
            messages.success(
                request,
                _("Refunded %(amount)s %(currency)s of order %(order)s.")
                % {"amount": refund.amount, "currency": order.currency, "order": order},
            )
        else:
            messages.warning(
                request,
                _("The payment provider refused the refund of %(amount)s %(currency)s: %(why)s")
                % {
                    "amount": refund.amount,
                    "currency": order.currency,
                    "why": refund.failure_reason or "\u2013",
                },
            )
        return self.back_to_change_page(request, order)

    @action(
        description=_("Mark as exception"),
        icon="report",
        permissions=["refund"],
        dialog=MARK_EXCEPTION_DIALOG,
    )
    def mark_as_exception(self, request, form, object_id):
        order = form.target
        return self.submit_dialog(
            request,
            form,
            MARK_EXCEPTION_DIALOG,
            lambda: mark_exception(order.pk, user=request.user, reason=form.cleaned_data["reason"]),
            lambda _outcome: _("Order %(order)s is in the exception queue.") % {"order": order},
        )

    @action(
        description=_("Resolve exception"),
        icon="task_alt",
        permissions=["refund"],
        dialog=RESOLVE_EXCEPTION_DIALOG,
    )
    def resolve_the_exception(self, request, form, object_id):
        order = form.target
        return self.submit_dialog(
            request,
            form,
            RESOLVE_EXCEPTION_DIALOG,
            lambda: resolve_exception(
                order.pk, user=request.user, resolution=form.cleaned_data["resolution"]
            ),
            lambda _outcome: _("The exception of order %(order)s is resolved.") % {"order": order},
        )


# --- Payment methods --------------------------------------------------------------------------------


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ScopedModelAdmin):
    """The methods a merchant takes beyond the built-in ones (wechat, alipay, card, corp, cash). A sale
    with a method its merchant has not defined is still taken, and opens an exception."""

    write_capability = Capability.MANAGE_MERCHANTS
    list_display = ["code", "name", "merchant", "created_at"]
    list_select_related = ["merchant"]
    list_filter = [("merchant", ScopedRelatedFilter)]
    search_fields = ["code", "name"]
    fields = ["merchant", "code", "name", "created_at"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        # Past orders name the code: renaming it would orphan them; a new code is a new method.
        return [*self.readonly_fields, "merchant", "code"] if obj else self.readonly_fields


# --- The machine's page: its last orders (plugged into devices' admin, which must not import orders) ---

STORY_ROWS = 10


def last_orders(device, request) -> dict:
    orders = selectors.with_payment_method_names(
        Order.objects.for_user(request.user).filter(device=device).order_by("-received_at", "-pk")
    )
    return story_section(
        title=_("Last orders"),
        link=f"{reverse('admin:orders_order_changelist')}?device__id__exact={device.pk}",
        link_label=_("All of this machine's orders"),
        headers=[_("order"), _("received"), _("total"), _("payment method"), _("payment status")],
        rows=[
            [
                format_html(
                    '<a class="text-primary-600" href="{}">{}</a>',
                    reverse("admin:orders_order_change", args=[order.pk]),
                    order.machine_order_id,
                ),
                date_format(timezone.localtime(order.received_at), "DATETIME_FORMAT"),
                f"{order.total} {order.currency}",
                selectors.payment_method_name(order),
                order.get_payment_status_display(),
            ]
            for order in orders[:STORY_ROWS]
        ],
        empty=_("This machine has sold nothing yet."),
    )


class DeviceOrdersStory:
    device_story = [last_orders]


plug_into_device_admin(DeviceOrdersStory)
