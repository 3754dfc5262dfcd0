"""Refunds: the refunds of an order never add up to more than was paid.

The rule is held three times over: the order's row is locked while a refund is decided (two operators
refunding at once are serialised), the amount is checked against what is left, and the database refuses
`refunded_total > total` outright.
"""

from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext as _

from audit import services as audit
from coffeeshop.exceptions import Invalid
from coffeeshop.live import broadcast_after_commit
from orders.models import REFUNDABLE_STATUSES, Order, PaymentStatus, Refund, RefundStatus
from orders.payments import payment_gateway
from orders.services import rollups

CENT = Decimal("0.01")


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details={"fields": {field: [message]}})


@transaction.atomic
def refund_order(order_id: int, *, user, reason: str, amount: Decimal | None = None) -> Refund:
    """Refund `amount` (default: everything not yet refunded) of a paid order, recording who and why.

    A refund the provider refuses is recorded as failed and leaves the order in `refund_failed`, from
    which it can be refunded again. Raises Invalid for an unpaid order, a missing reason, or an amount
    that is not positive or exceeds what is left.
    """
    order = Order.objects.select_for_update().get(pk=order_id)
    reason = (reason or "").strip()
    if not reason:
        raise _invalid("reason", _("A reason is required."))
    if order.payment_status not in REFUNDABLE_STATUSES:
        raise _invalid(
            "order",
            _("Only a paid order can be refunded (this one is %(status)s).")
            % {"status": order.get_payment_status_display()},
        )
    left = order.total - order.refunded_total
    amount = left if amount is None else Decimal(amount).quantize(CENT)
    if amount <= 0:
        raise _invalid("amount", _("The amount must be positive."))
    if amount > left:
        raise _invalid("amount", _("Only %(left)s is left to refund.") % {"left": left})

    was_sale = rollups.is_sale(order)
    outcome = payment_gateway().refund(order=order, amount=amount, reason=reason)
    refund = Refund.objects.create(
        order=order,
        amount=amount,
        reason=reason,
        created_by=user,
        status=RefundStatus.SUCCEEDED if outcome.succeeded else RefundStatus.FAILED,
        provider_refund_id=outcome.provider_refund_id,
        failure_reason=outcome.failure_reason,
    )
    if outcome.succeeded:
        order.refunded_total += amount
        fully = order.refunded_total == order.total
        order.payment_status = PaymentStatus.REFUNDED if fully else PaymentStatus.PARTIALLY_REFUNDED
    else:
        order.payment_status = PaymentStatus.REFUND_FAILED
    order.save(update_fields=["refunded_total", "payment_status"])
    rollups.record_refund(order, was_sale=was_sale, refunded=amount if outcome.succeeded else Decimal(0))
    broadcast_after_commit(
        order.merchant_id,
        "order.refunded",
        {
            "id": order.pk,
            "order_id": order.machine_order_id,
            "refund_id": refund.pk,
            "amount": str(amount),
            "status": refund.status,
            "payment_status": order.payment_status,
            "refunded_total": str(order.refunded_total),
        },
    )
    audit.record(
        "order.refunded" if outcome.succeeded else "order.refund_failed",
        order,
        changes={
            "amount": str(amount),
            "reason": reason,
            "refund_id": refund.pk,
            "payment_status": order.payment_status,
        },
    )
    return refund
