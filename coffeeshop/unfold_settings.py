"""django-unfold configuration: the admin's title, navigation and the live-update script."""

from django.templatetags.static import static
from django.urls import reverse_lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

UNFOLD = {
    "SITE_TITLE": _("coffeeshop"),
    "SITE_HEADER": _("coffeeshop back office"),
    "SITE_SYMBOL": "coffee",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SCRIPTS": [lambda request: static("coffeeshop/live.js")],
    "STYLES": [lambda request: static("coffeeshop/admin.css")],
    # The header's live fleet counter ("3 / 5 online"), kept current by live.js.
    "ENVIRONMENT": "devices.admin.fleet_counter",
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": [
            {
                "title": _("Fleet"),
                "items": [
                    {
                        "title": _("Devices"),
                        "icon": "coffee_maker",
                        "link": reverse_lazy("admin:devices_device_changelist"),
                    },
                    {
                        "title": _("Locations"),
                        "icon": "location_on",
                        "link": reverse_lazy("admin:devices_location_changelist"),
                    },
                    {
                        "title": _("Materials"),
                        "icon": "inventory_2",
                        "link": reverse_lazy("admin:inventory_material_changelist"),
                    },
                    {
                        "title": _("Pick list"),
                        "icon": "local_shipping",
                        "link": reverse_lazy("admin:inventory_bin_picklist"),
                    },
                ],
            },
            {
                "title": _("Sales"),
                "items": [
                    {
                        "title": _("Orders"),
                        "icon": "receipt_long",
                        "link": reverse_lazy("admin:orders_order_changelist"),
                    },
                    {
                        # The order list filtered to open exceptions (orders.admin).
                        "title": _("Exception queue"),
                        "icon": "report",
                        "link": format_lazy(
                            "{}?is_exception__exact=1", reverse_lazy("admin:orders_order_changelist")
                        ),
                    },
                    {
                        "title": _("Payment methods"),
                        "icon": "payments",
                        "link": reverse_lazy("admin:orders_paymentmethod_changelist"),
                    },
                ],
            },
            {
                "title": _("Recipes"),
                "items": [
                    {
                        "title": _("Recipes"),
                        "icon": "menu_book",
                        "link": reverse_lazy("admin:recipes_recipe_changelist"),
                    },
                    {
                        "title": _("Recipe versions"),
                        "icon": "history_edu",
                        "link": reverse_lazy("admin:recipes_recipeversion_changelist"),
                    },
                ],
            },
            {
                "title": _("Operations"),
                "items": [
                    {
                        # Active alarms; the badge counts critical and warning ones, kept live by live.js.
                        "title": _("Alarms"),
                        "icon": "notifications_active",
                        "link": format_lazy(
                            "{}?is_active__exact=1", reverse_lazy("admin:operations_alarm_changelist")
                        ),
                        "badge": "operations.admin.sidebar.alarm_badge",
                    },
                    {
                        "title": _("Remote commands"),
                        "icon": "send",
                        "link": reverse_lazy("admin:operations_remotecommand_changelist"),
                    },
                    {
                        "title": _("Command batches"),
                        "icon": "dynamic_feed",
                        "link": reverse_lazy("admin:operations_commandbatch_changelist"),
                    },
                    {
                        "title": _("Maintenance windows"),
                        "icon": "construction",
                        "link": reverse_lazy("admin:operations_maintenancewindow_changelist"),
                    },
                    {
                        "title": _("Notification channels"),
                        "icon": "campaign",
                        "link": reverse_lazy("admin:operations_notificationchannel_changelist"),
                        "permission": "operations.admin.sidebar.can_manage_notifications",
                    },
                    {
                        "title": _("Background jobs"),
                        "icon": "hourglass_top",
                        "link": reverse_lazy("admin:operations_taskjob_changelist"),
                    },
                    {
                        "title": _("Operation log"),
                        "icon": "history",
                        "link": reverse_lazy("admin:audit_operationlog_changelist"),
                        "permission": "audit.admin.can_read_audit",
                    },
                ],
            },
            {
                "title": _("Accounts"),
                "items": [
                    {
                        "title": _("Merchants"),
                        "icon": "storefront",
                        "link": reverse_lazy("admin:accounts_merchant_changelist"),
                    },
                    {
                        "title": _("Users"),
                        "icon": "person",
                        "link": reverse_lazy("admin:accounts_user_changelist"),
                    },
                ],
            },
            {
                "title": _("Settings"),
                "items": [
                    {
                        "title": _("Periodic tasks"),
                        "icon": "schedule",
                        "link": reverse_lazy("admin:django_celery_beat_periodictask_changelist"),
                        "permission": "coffeeshop.admin_base.can_manage_settings",
                    },
                ],
            },
        ],
    },
}
