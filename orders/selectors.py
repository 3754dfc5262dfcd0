from decimal import Decimal

from django.db.models import Count, DecimalField, ExpressionWrapper, F, OuterRef, Prefetch, Q, Subquery, Sum

from devices.models import Device
from orders.models import (
    BUILT_IN_PAYMENT_METHODS,
    MONEY,
    Order,
    OrderItem,
    PaymentMethod,
    PaymentStatus,
    Refund,
)


def orders_for(user):
    return Order.objects.for_user(user).select_related("merchant", "location", "device")


def order_with_details_for(user):
    return orders_for(user).prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("position")),
        Prefetch("refunds", queryset=Refund.objects.select_related("created_by").order_by("created_at")),
    )


def search_orders(orders, term: str):
    """The orders whose id, provider transaction id or machine serial is `term`, whole, in any case (a
    customer reads an id out). The serial is resolved to its machines first, so every test is on an
    indexed column of the orders and PostgreSQL combines three index look-ups; a join to the machines
    inside the OR made it scan every order."""
    term = term.strip()
    if not term:
        return orders
    machines = list(Device.objects.filter(serial__iexact=term).values_list("pk", flat=True))
    return orders.filter(
        Q(machine_order_id__iexact=term) | Q(transaction_id__iexact=term) | Q(device_id__in=machines)
    )


def with_payment_method_names(orders):
    """Orders with `defined_payment_method_name`: the name their merchant gave the method, if it did."""
    defined = PaymentMethod.objects.filter(merchant=OuterRef("merchant_id"), code=OuterRef("payment_method"))
    return orders.annotate(defined_payment_method_name=Subquery(defined.values("name")[:1]))


def payment_method_name(order) -> str:
    """What a person reads for the method: a built-in's name, the merchant's own name for it, or the
    code as the machine sent it when the merchant never defined it."""
    built_in = BUILT_IN_PAYMENT_METHODS.get(order.payment_method)
    if built_in is not None:
        return str(built_in)
    return getattr(order, "defined_payment_method_name", None) or order.payment_method


CENT = Decimal("0.01")


def money_text(amount) -> str:
    """An amount as the API and the pages write it: to the cent, nothing as 0.00."""
    return str(Decimal(amount or 0).quantize(CENT))


# Orders that are sales: paid, and not refunded whole (a partial refund is taken off the amount).
SOLD_STATUSES = (PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUND_FAILED)


def net_amount():
    """An order's amount net of what was refunded of it, as an expression."""
    return ExpressionWrapper(F("total") - F("refunded_total"), output_field=DecimalField(**MONEY))


def sales_of(orders) -> list[dict]:
    """Sales as the business counts them, one entry per currency (sums never mix currencies):
    `{"currency", "orders", "amount"}` of the sold orders, net of refunds, test orders left out."""
    rows = (
        orders.filter(is_test=False, payment_status__in=SOLD_STATUSES)
        .order_by()
        .values("currency")
        .annotate(orders=Count("pk"), amount=Sum(net_amount()))
        .order_by("currency")
    )
    return [
        {"currency": r["currency"], "orders": r["orders"], "amount": money_text(r["amount"])} for r in rows
    ]
