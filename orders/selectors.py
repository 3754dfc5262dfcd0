from django.db.models import Prefetch

from orders.models import Order, OrderItem, Refund


def orders_for(user):
    return Order.objects.for_user(user).select_related("merchant", "location", "device")


def order_with_details_for(user):
    return orders_for(user).prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("position")),
        Prefetch("refunds", queryset=Refund.objects.select_related("created_by").order_by("created_at")),
    )
