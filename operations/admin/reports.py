"""Scheduled reports: a merchant's Admins choose who gets its daily or weekly summary, and when."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display

from accounts.models import Capability
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter
from operations.models import ReportSubscription
from operations.services.reports import keep_schedule, remove_subscription


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(ScopedModelAdmin):
    """Saving keeps the subscription's beat entry in step (a crontab in the merchant's time zone)."""

    view_capability = Capability.MANAGE_MERCHANTS
    write_capability = Capability.MANAGE_MERCHANTS
    list_display = ["email", "merchant", "frequency", "send_at", "language", "is_active", "last_sent_at"]
    list_select_related = ["merchant"]
    list_filter = [("merchant", ScopedRelatedFilter), "frequency", "is_active"]
    search_fields = ["email"]
    fields = [
        "merchant",
        "email",
        "frequency",
        "send_at",
        "weekday",
        "language",
        "is_active",
        "schedule",
        "last_sent_at",
    ]
    readonly_fields = ["schedule", "last_sent_at"]

    @display(description=_("schedule"))
    def schedule(self, subscription):
        task = subscription.periodic_task
        return str(task.crontab) if task and task.crontab else "\u2013"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        keep_schedule(obj)

    def delete_model(self, request, obj):
        remove_subscription(obj)

    def delete_queryset(self, request, queryset):
        for subscription in queryset:
            remove_subscription(subscription)
