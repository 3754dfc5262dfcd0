"""A machine's sales in its summary: today and this week, as the merchant's days (see devices.summary)."""

from accounts.time_zones import local_day_start, local_week_start
from devices.summary import summary_part
from orders.models import Order
from orders.selectors import sales_of


@summary_part
def device_sales(device, now) -> dict:
    """By when the machine sold (its `created_at`), so a backlog uploaded today counts on its own day."""
    orders = Order.objects.filter(device=device)
    merchant = device.merchant
    periods = {"today": local_day_start(merchant, now), "this_week": local_week_start(merchant, now)}
    return {
        "sales": {
            "time_zone": device.merchant.time_zone,
            **{
                name: {"since": start, "figures": sales_of(orders.filter(device_created_at__gte=start))}
                for name, start in periods.items()
            },
        }
    }
