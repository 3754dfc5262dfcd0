"""Periodic tasks and their schedules (django-celery-beat) on unfold, for platform-level Admins only.

Schedules are global: they run the fleet's jobs for every merchant, so a merchant's own Admin neither
sees nor changes them.
"""

from django.contrib import admin
from django.utils.translation import gettext
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget

from accounts.models import Capability
from coffeeshop.admin_base import ScopedModelAdmin, ScopedTabularInline

for model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    admin.site.unregister(model)


class SettingsAccess:
    view_capability = Capability.MANAGE_SETTINGS
    write_capability = Capability.MANAGE_SETTINGS
    platform_only = True
    tenant_scoped = False


class TaskSelectWidget(UnfoldAdminSelectWidget, beat_admin.TaskSelectWidget):
    pass


class PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = UnfoldAdminTextInputWidget()
        self.fields["regtask"].widget = TaskSelectWidget()


class PeriodicTaskInline(SettingsAccess, ScopedTabularInline, beat_admin.PeriodicTaskInline):
    add_capability = None
    delete_capability = None


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(SettingsAccess, beat_admin.PeriodicTaskAdmin, ScopedModelAdmin):
    """celery-beat's list actions change tasks with a bulk UPDATE and write no history: here each task
    they touch gets a history entry, so they reach the audit trail like an edit does."""

    form = PeriodicTaskForm

    def log_each(self, request, queryset, message) -> None:
        for task in queryset:
            self.log_change(request, task, message(task) if callable(message) else message)

    @admin.action(description=beat_admin.PeriodicTaskAdmin.enable_tasks.short_description)
    def enable_tasks(self, request, queryset):
        self.log_each(request, queryset, gettext("Enabled."))
        return super().enable_tasks(request, queryset)

    @admin.action(description=beat_admin.PeriodicTaskAdmin.disable_tasks.short_description)
    def disable_tasks(self, request, queryset):
        self.log_each(request, queryset, gettext("Disabled."))
        return super().disable_tasks(request, queryset)

    @admin.action(description=beat_admin.PeriodicTaskAdmin.toggle_tasks.short_description)
    def toggle_tasks(self, request, queryset):
        self.log_each(request, queryset, lambda t: gettext("Disabled.") if t.enabled else gettext("Enabled."))
        return super().toggle_tasks(request, queryset)

    @admin.action(description=beat_admin.PeriodicTaskAdmin.run_tasks.short_description)
    def run_tasks(self, request, queryset):
        self.log_each(request, queryset, gettext("Run by hand."))
        return super().run_tasks(request, queryset)


class ScheduleAdmin(SettingsAccess, ScopedModelAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(ScheduleAdmin):
    pass


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(ScheduleAdmin):
    list_display = ["__str__", "human_readable"]
    fields = ["human_readable", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone"]
    readonly_fields = ["human_readable"]


@admin.register(SolarSchedule)
class SolarScheduleAdmin(ScheduleAdmin):
    pass


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(ScheduleAdmin):
    fields = ["clocked_time"]
    list_display = ["clocked_time"]
