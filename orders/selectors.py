from django.db.models import OuterRef, Prefetch, Subquery

from orders.models import BUILT_IN_PAYMENT_METHODS, Order, OrderItem, PaymentMethod, Refund


def orders_for(user):
    return Order.objects.for_user(user).select_related("merchant", "location", "device")


def order_with_details_for(user):
    return orders_for(user).prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("position")),
        Prefetch("refunds", queryset=Refund.objects.select_related("created_by").order_by("created_at")),
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
