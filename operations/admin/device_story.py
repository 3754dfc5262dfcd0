"""The machine's page tells its story: its open alarms and its latest commands, each linked to its list.

Plugged into devices' admin through `plug_into_device_admin` (devices must not import operations).
"""

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from devices.admin import plug_into_device_admin, story_section
from operations.admin.common import admin_url
from operations.models import Alarm, RemoteCommand

STORY_ROWS = 10


def local_time(moment) -> str:
    return "\u2013" if moment is None else date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def linked(model, obj, text) -> str:
    url = admin_url(model, "change", obj.pk)
    return format_html('<a class="text-primary-600" href="{}">{}</a>', url, text)


def open_alarms(device, request) -> dict:
    alarms = Alarm.objects.for_user(request.user).filter(device=device, is_active=True)
    alarms = alarms.order_by("-last_seen_at")
    return story_section(
        title=_("Open alarms"),
        link=f"{admin_url(Alarm, 'changelist')}?device__id__exact={device.pk}",
        link_label=_("All of this machine's alarms"),
        headers=[_("alarm"), _("severity"), _("message"), _("last seen"), _("acknowledged")],
        rows=[
            [
                linked(Alarm, alarm, alarm.get_type_display()),
                alarm.get_severity_display(),
                alarm.message,
                local_time(alarm.last_seen_at),
                _("Yes") if alarm.acknowledged_at else _("No"),
            ]
            for alarm in alarms[:STORY_ROWS]
        ],
        empty=_("Nothing is wrong with this machine."),
    )


def latest_commands(device, request) -> dict:
    commands = RemoteCommand.objects.for_user(request.user).filter(device=device).order_by("-created_at")
    return story_section(
        title=_("Latest commands"),
        link=f"{admin_url(RemoteCommand, 'changelist')}?device__id__exact={device.pk}",
        link_label=_("All of this machine's commands"),
        headers=[_("command"), _("status"), _("created"), _("attempts")],
        rows=[
            [
                linked(RemoteCommand, command, command.get_type_display()),
                command.get_status_display(),
                local_time(command.created_at),
                f"{command.attempt} / {command.max_attempts}",
            ]
            for command in commands[:STORY_ROWS]
        ],
        empty=_("No command has been sent to this machine."),
    )


class DeviceOperationsStory:
    device_story = [open_alarms, latest_commands]


plug_into_device_admin(DeviceOperationsStory)
