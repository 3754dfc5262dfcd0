"""Periodic tasks and their schedules (django-celery-beat) on unfold, for platform-level Admins only.

Schedules are global: they run the fleet's jobs for every merchant, so a merchant's own Admin neither
sees nor changes them.
"""

from django.contrib import admin
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
    form = PeriodicTaskForm


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
