"""django-unfold configuration: the admin's title, navigation and the live-update script."""

from django.templatetags.static import static
from django.urls import reverse_lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _


def settings_item(title, icon: str, changelist: str) -> dict:
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(f"admin:{changelist}_changelist"),
        "permission": "coffeeshop.admin_base.can_manage_settings",
    }


UNFOLD = {
    "SITE_TITLE": _("coffeeshop"),
    "SITE_HEADER": _("coffeeshop back office"),
    "SITE_SYMBOL": "coffee",
    "SITE_FAVICONS": [
        {"rel": "icon", "type": "image/svg+xml", "href": lambda request: static("coffeeshop/favicon.svg")}
    ],
    "SHOW_HISTORY": True,
    # The home page is the dashboard (operations/admin/dashboard.py, templates/admin/index.html).
    "DASHBOARD_CALLBACK": "operations.admin.dashboard.dashboard_callback",
    "SHOW_VIEW_ON_SITE": False,
    # The user menu offers settings.LANGUAGES; the choice posts to Django's set_language (i18n/).
    "SHOW_LANGUAGES": True,
    "SCRIPTS": [lambda request: static("coffeeshop/live.js")],
    "STYLES": [lambda request: static("coffeeshop/admin.css")],
    # The header's live fleet counter ("3 / 5 online"), kept current by live.js.
    "ENVIRONMENT": "devices.admin.fleet_counter",
    "SIDEBAR": {
        "show_search": True,
        # Everything an operator uses is above; the framework's pages are under Settings.
        "show_all_applications": False,
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
                ],
            },
            {
                "title": _("Inventory"),
                "items": [
                    {
                        "title": _("Bins"),
                        "icon": "propane_tank",
                        "link": reverse_lazy("admin:inventory_bin_changelist"),
                    },
                    {
                        "title": _("Refills"),
                        "icon": "water_full",
                        "link": reverse_lazy("admin:inventory_refill_changelist"),
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
                    {
                        "title": _("Recipe packages"),
                        "icon": "package_2",
                        "link": reverse_lazy("admin:recipes_recipepackage_changelist"),
                    },
                    {
                        "title": _("Rollouts"),
                        "icon": "rocket_launch",
                        "link": reverse_lazy("admin:recipes_rollout_changelist"),
                    },
                ],
            },
            {
                "title": _("Operations"),
                "items": [
                    {
                        # Sales by merchant, location, machine, product, payment method, hour and weekday.
                        "title": _("Analytics"),
                        "icon": "analytics",
                        "link": reverse_lazy("analytics"),
                    },
                    {
                        # Active alarms; the badge counts critical and warning ones, kept live by live.js.
                        "title": _("Alarms"),
                        "icon": "notifications_active",
                        "link": reverse_lazy("admin:operations_alarm_changelist"),
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
                        "title": _("Scheduled reports"),
                        "icon": "forward_to_inbox",
                        "link": reverse_lazy("admin:operations_reportsubscription_changelist"),
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
                # The framework's own pages, for platform staff: schedules as stored, sign-in lockouts.
                "title": _("Settings"),
                "items": [
                    settings_item(_("Periodic tasks"), "schedule", "django_celery_beat_periodictask"),
                    settings_item(_("Intervals"), "timer", "django_celery_beat_intervalschedule"),
                    settings_item(_("Crontabs"), "calendar_month", "django_celery_beat_crontabschedule"),
                    settings_item(_("Clocked schedules"), "alarm", "django_celery_beat_clockedschedule"),
                    settings_item(_("Solar schedules"), "wb_twilight", "django_celery_beat_solarschedule"),
                    settings_item(_("Sign-in lockouts"), "lock_person", "axes_accessattempt"),
                    settings_item(_("Sign-in failures"), "person_alert", "axes_accessfailurelog"),
                    settings_item(_("Sign-ins"), "login", "axes_accesslog"),
                ],
            },
        ],
    },
}
