"""Order exceptions: a sale someone must look at (a complaint, a drink not delivered), and its resolution."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit import services as audit
from coffeeshop.exceptions import Invalid
from orders.models import Order


def _required(field: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        message = _("This field is required.")
        raise Invalid(message, details={"fields": {field: [message]}})
    return value


@transaction.atomic
def mark_exception(order_id: int, *, user, reason: str) -> Order:
    reason = _required("reason", reason)
    order = Order.objects.select_for_update().get(pk=order_id)
    order.is_exception = True
    order.exception_reason = reason
    order.exception_marked_at = timezone.now()
    order.exception_marked_by = user
    order.exception_resolution = ""
    order.exception_resolved_at = None
    order.exception_resolved_by = None
    order.save()
    audit.record("order.exception_marked", order, changes={"reason": reason})
    return order


@transaction.atomic
def resolve_exception(order_id: int, *, user, resolution: str) -> Order:
    resolution = _required("resolution", resolution)
    order = Order.objects.select_for_update().get(pk=order_id)
    if not order.is_exception:
        raise Invalid(
            _("This order is not an open exception."),
            details={"fields": {"order": [_("not an open exception")]}},
        )
    order.is_exception = False
    order.exception_resolution = resolution
    order.exception_resolved_at = timezone.now()
    order.exception_resolved_by = user
    order.save()
    audit.record("order.exception_resolved", order, changes={"resolution": resolution})
    return order
