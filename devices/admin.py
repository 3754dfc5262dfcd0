"""The fleet's admin pages: locations, and machines with their live status, bins and history.

Every element showing a machine's live status carries `data-device-id` and `data-live` (online, state,
temperature, last_seen, bins): static/coffeeshop/live.js updates them in place from the staff socket.
Remote commands are added to these pages by operations' admin (devices knows nothing of operations).
"""

import json
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.decorators import action, display

from accounts.models import Capability
from accounts.time_zones import merchant_zone
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter, ScopedTabularInline, user_can
from devices import history_chart, selectors, services
from devices.models import Device, DeviceBin, DeviceState, Location, StatusEvent
from devices.rules import brewing_range_c, temperature_in_range

HISTORY_ROWS = 20
CHART_HOURS = 24
HISTORY_CHART_DAYS = 7
EMPTY = "\u2013"


# --- Live status elements (the same markup on the changelist and the change page) -----------------


def live_element(device_id: int, field: str, content, tag: str = "span", **attrs) -> str:
    extra = format_html_join(
        "", ' data-{}="{}"', ((name.replace("_", "-"), value) for name, value in attrs.items())
    )
    return format_html(
        '<{} class="cs-live cs-{}" data-device-id="{}" data-live="{}"{}>{}</{}>',
        tag,
        field.replace("_", "-"),
        device_id,
        field,
        extra,
        content,
        tag,
    )


def online_element(device: Device) -> str:
    return live_element(
        device.pk,
        "online",
        _("Online") if device.is_online else _("Offline"),
        online="true" if device.is_online else "false",
        label_online=_("Online"),
        label_offline=_("Offline"),
    )


def state_element(device: Device) -> str:
    return live_element(device.pk, "state", device.get_state_display(), state=device.state)


def temperature_text(value: float | None) -> str:
    return EMPTY if value is None else f"{value:.1f} °C"


def temperature_element(device: Device) -> str:
    """The reading, marked (and kept marked by live.js) when it is outside the brewing range."""
    low, high = brewing_range_c()
    return live_element(
        device.pk,
        "temperature",
        temperature_text(device.temperature_c),
        in_range="true" if temperature_in_range(device.temperature_c) else "false",
        range_min=low,
        range_max=high,
        out_of_range_title=_("Outside the brewing range (%(low)s–%(high)s °C)") % {"low": low, "high": high},
    )


def last_seen_element(device: Device) -> str:
    if device.last_seen_at is None:
        return live_element(device.pk, "last_seen", _("never"), tag="time")
    return format_html(
        '<time class="cs-live cs-last-seen" data-device-id="{}" data-live="last_seen" datetime="{}" '
        'title="{}">{}</time>',
        device.pk,
        device.last_seen_at.isoformat(),
        date_format(timezone.localtime(device.last_seen_at), "DATETIME_FORMAT"),
        naturaltime(device.last_seen_at),
    )


def bin_title(bin_: DeviceBin) -> str:
    """Language-neutral on purpose: live.js writes the same text when a report arrives."""
    return (
        f"#{bin_.index} {bin_.material_code} {round(bin_.level_pct)}% "
        f"({bin_.remaining:g}/{bin_.capacity:g} {bin_.unit})"
    )


def bins_element(device: Device, bins) -> str:
    bars = format_html_join(
        "",
        '<span class="cs-bin" data-low="{}" title="{}">'
        '<span class="cs-bin-fill" style="height: {}%"></span></span>',
        (("true" if b.is_low else "false", bin_title(b), round(b.level_pct)) for b in bins),
    )
    return live_element(device.pk, "bins", bars or EMPTY)


def bin_level_element(bin_) -> str:
    """A bin's level as a bar and a percentage, red when it is low."""
    return format_html(
        '<span class="cs-bin-row" data-low="{}">'
        '<span class="cs-bin-bar"><span style="width: {}%"></span></span> {}%</span>',
        "true" if bin_.is_low else "false",
        round(bin_.level_pct),
        round(bin_.level_pct),
    )


def live_labels() -> dict:
    """What live.js needs to write a state in the page's language."""
    return {"states": {state.value: str(state.label) for state in DeviceState}}


def fleet_counter(request):
    """UNFOLD["ENVIRONMENT"]: the header's live count of online machines of the user's merchants."""
    if not user_can(request.user, Capability.VIEW):
        return None
    counts = selectors.fleet_counts(request.user)
    template = str(_("%(online)s / %(total)s online"))
    # The counter is on every page live.js runs on, so it also tells live.js where the socket is.
    text = format_html(
        '<span data-live="fleet" data-url="{}" data-socket-origin="{}" data-template="{}">{}</span>'
        ' · <span class="cs-time-zone" title="{}">{}</span>',
        reverse("admin:devices_device_fleet_counts"),
        settings.LIVE_WS_ORIGIN,
        template,
        template % {"online": counts["online"], "total": counts["total"]},
        _("Times on this page are in this time zone"),
        timezone.get_current_timezone_name(),
    )
    return [text, "info"]


# --- Status history: the last day's temperature and the latest records ------------------------------


def temperature_chart(device: Device, now) -> str | None:
    """Chart.js data (unfold's line chart component) for the machine's temperature over the last day."""
    readings = list(
        selectors.status_history_for(device)
        .filter(recorded_at__gte=now - timedelta(hours=CHART_HOURS), temperature_c__isnull=False)
        .order_by("recorded_at")
        .values_list("recorded_at", "temperature_c")
    )
    if not readings:
        return None
    return json.dumps(
        {
            "labels": [date_format(timezone.localtime(at), "H:i") for at, _value in readings],
            "datasets": [
                {
                    "label": str(_("Temperature (°C)")),
                    "data": [round(value, 1) for _at, value in readings],
                    "borderColor": "var(--color-primary-600)",
                    "displayYAxis": True,
                    "suffixYAxis": "°C",
                    "maxTicksXLimit": 8,
                }
            ],
        }
    )


def online_history_chart(device: Device, now) -> str | None:
    """Chart.js data for the last HISTORY_CHART_DAYS, an hour a point, from the folded hours."""
    zone = merchant_zone(device.merchant)
    since = now - timedelta(days=HISTORY_CHART_DAYS)
    start, end, resolution = history_chart.chart_range(since, now, None, now)
    points = history_chart.device_history(device, start, end, resolution, zone)
    if not points:
        return None
    return json.dumps(
        {
            "labels": [date_format(point["at"], "D H:i") for point in points],
            "datasets": [
                {
                    "label": str(_("Online (%)")),
                    "data": [point["online_pct"] for point in points],
                    "borderColor": "var(--color-primary-600)",
                    "displayYAxis": True,
                    "suffixYAxis": "%",
                    "maxTicksXLimit": 8,
                },
                {
                    "label": str(_("Average temperature (°C)")),
                    "data": [point["avg_temperature_c"] for point in points],
                    "borderColor": "var(--color-primary-300)",
                },
            ],
        }
    )


def history_table(device: Device) -> dict:
    events, states = dict(StatusEvent.choices), dict(DeviceState.choices)
    return {
        "headers": [_("recorded"), _("event"), _("state"), _("online"), _("temperature"), _("Wi-Fi signal")],
        "rows": [
            [
                date_format(timezone.localtime(record.recorded_at), "DATETIME_FORMAT"),
                events.get(record.event, record.event),
                states.get(record.state, record.state),
                _("Online") if record.is_online else _("Offline"),
                temperature_text(record.temperature_c),
                EMPTY if record.wifi_rssi_dbm is None else f"{record.wifi_rssi_dbm} dBm",
            ]
            for record in selectors.status_history_for(device)[:HISTORY_ROWS]
        ],
    }


# --- Locations --------------------------------------------------------------------------------------


@admin.register(Location)
class LocationAdmin(ScopedModelAdmin):
    write_capability = Capability.MANAGE_MERCHANTS
    list_display = ["name", "merchant", "city", "address", "device_count", "map_link"]
    list_select_related = ["merchant"]
    list_filter = [("merchant", ScopedRelatedFilter), "city"]
    list_filter_submit = True
    search_fields = ["name", "city", "address"]
    ordering = ["merchant__name", "name"]  # the count's GROUP BY drops Meta.ordering
    fields = ["merchant", "name", "address", "city", "latitude", "longitude", "map_link", "created_at"]
    readonly_fields = ["map_link", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(device_count=Count("devices"))

    def get_readonly_fields(self, request, obj=None):
        # Machines stand here: moving the place to another merchant would hand them a foreign location.
        return [*self.readonly_fields, "merchant"] if obj else self.readonly_fields

    @display(description=_("machines"), ordering="device_count")
    def device_count(self, location):
        return location.device_count

    @display(description=_("map"))
    def map_link(self, location):
        if location.latitude is None or location.longitude is None:
            return EMPTY
        return format_html(
            '<a href="https://www.openstreetmap.org/?mlat={0}&amp;mlon={1}#map=17/{0}/{1}" target="_blank" '
            'rel="noopener noreferrer" class="text-primary-600">{2}</a>',
            location.latitude,
            location.longitude,
            _("Open map"),
        )


# --- Machines ---------------------------------------------------------------------------------------


class DeviceForm(forms.ModelForm):
    """A machine stands only at a location of its own merchant."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        location = self.fields.get("location")
        if location is not None:
            location.queryset = location.queryset.filter(merchant_id=self.instance.merchant_id)


class DeviceBinInline(ScopedTabularInline):
    """The machine's levels. Refills and thresholds are changed on the bin page (inventory), whose
    services also judge the alarms."""

    model = DeviceBin
    write_capability = None
    add_capability = None
    delete_capability = None
    can_delete = False
    extra = 0
    hide_title = True
    ordering = ["index"]
    fields = [
        "index",
        "material_code",
        "level",
        "remaining",
        "capacity",
        "unit",
        "low_threshold_pct",
        "last_refilled_at",
        "reported_at",
    ]
    readonly_fields = [
        "index",
        "material_code",
        "level",
        "remaining",
        "capacity",
        "unit",
        "low_threshold_pct",
        "last_refilled_at",
        "reported_at",
    ]

    @display(description=_("level"))
    def level(self, bin_):
        return bin_level_element(bin_)


@admin.register(Device)
class DeviceAdmin(ScopedModelAdmin):
    """Machines register themselves: no add page. Ops set alias, location and timeout and manage tokens."""

    write_capability = Capability.OPERATE_DEVICES
    add_capability = None
    delete_capability = Capability.MANAGE_MERCHANTS
    form = DeviceForm
    list_display = [
        "device",
        "merchant",
        "location",
        "online",
        "state_label",
        "temperature",
        "last_seen",
        "bins",
    ]
    list_select_related = ["merchant", "location"]
    list_filter = [
        ("merchant", ScopedRelatedFilter),
        ("location", ScopedRelatedFilter),
        "is_online",
        "state",
        "model",
    ]
    list_filter_submit = True
    search_fields = ["serial", "alias"]
    list_before_template = "admin/devices/device/live_labels.html"
    change_form_outer_before_template = "admin/devices/device/live_status.html"
    change_form_outer_after_template = "admin/devices/device/status_history.html"
    fieldsets = [
        (_("Settings"), {"fields": ["alias", "location", "offline_timeout_s"]}),
        (
            _("Machine"),
            {"fields": ["serial", "merchant", "model", "firmware", "package_version", "registered_at"]},
        ),
        (
            _("Connectivity"),
            {
                "fields": [
                    "ip_address",
                    "wifi_ssid",
                    "wifi_rssi_dbm",
                    "uptime_s",
                    "device_time",
                    "status_changed_at",
                ]
            },
        ),
    ]
    readonly_fields = [
        "serial",
        "merchant",
        "model",
        "firmware",
        "package_version",
        "registered_at",
        "ip_address",
        "wifi_ssid",
        "wifi_rssi_dbm",
        "uptime_s",
        "device_time",
        "status_changed_at",
    ]
    inlines = [DeviceBinInline]
    story = []  # other apps' parts of the machine's page, see plug_into_device_admin
    actions_detail = ["rotate_token", "revoke_token"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("bins")

    def get_urls(self):
        counts = path(
            "fleet-counts/",
            self.admin_site.admin_view(self.fleet_counts_view),
            name="devices_device_fleet_counts",
        )
        return [counts, *super().get_urls()]

    def fleet_counts_view(self, request):
        """The header counter's refresh (live.js): online/offline/fault counts of the user's machines."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(selectors.fleet_counts(request.user))

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "live_labels": live_labels()})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self.status_context(obj))
            context["story"] = [part for tell in self.story if (part := tell(obj, request)) is not None]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def status_context(self, device: Device) -> dict:
        now = timezone.now()
        return {
            "live_labels": live_labels(),
            "live": {
                "online": online_element(device),
                "state": state_element(device),
                "temperature": temperature_element(device),
                "last_seen": last_seen_element(device),
                "bins": bins_element(device, device.bins.all()),
            },
            "summary": selectors.device_summary(device, now, hours=CHART_HOURS),
            "temperature_chart": temperature_chart(device, now),
            "history_chart": online_history_chart(device, now),
            "history_zone": merchant_zone(device.merchant).key,
            "history": history_table(device),
        }

    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if changes:
            # The form has already set the new values on `obj`: the service must see the stored ones to
            # record what changed.
            services.update_device_settings(Device.objects.get(pk=obj.pk), **changes)

    def has_operate_permission(self, request, obj=None):
        return self.has_capability(request, Capability.OPERATE_DEVICES)

    @display(description=_("device"), ordering="serial", header=True)
    def device(self, device):
        return [device.alias or device.serial, device.serial if device.alias else device.model]

    @display(description=_("online"), ordering="is_online")
    def online(self, device):
        return online_element(device)

    @display(description=_("state"), ordering="state")
    def state_label(self, device):
        return state_element(device)

    @display(description=_("temperature"), ordering="temperature_c")
    def temperature(self, device):
        return temperature_element(device)

    @display(description=_("last seen"), ordering="last_seen_at")
    def last_seen(self, device):
        return last_seen_element(device)

    @display(description=_("bins"))
    def bins(self, device):
        return bins_element(device, device.bins.all())

    @action(
        description=_("Rotate token"),
        icon="key",
        permissions=["operate"],
        dialog={
            "title": _("Rotate this machine's token?"),
            "description": _(
                "The current token stops working at once. The new one is shown once: enter it on the machine."
            ),
            "form_submit_text": _("Rotate token"),
        },
    )
    def rotate_token(self, request, form, object_id):
        device = self.object_for_action(request, object_id)
        token = services.rotate_device_token(device)
        messages.success(
            request,
            format_html(
                _("New token for {device}: {token} — it is shown only this once."),
                device=device,
                token=format_html('<code class="cs-secret">{}</code>', token),
            ),
        )
        return self.back_to_change_page(request, device)

    @action(
        description=_("Revoke token"),
        icon="key_off",
        permissions=["operate"],
        dialog={
            "title": _("Revoke this machine's token?"),
            "description": _("The machine can no longer call in until it registers again."),
            "form_submit_text": _("Revoke token"),
        },
    )
    def revoke_token(self, request, form, object_id):
        device = self.object_for_action(request, object_id)
        revoked = services.revoke_device_token(device)
        messages.success(
            request,
            ngettext(
                "Revoked %(count)d token of %(device)s.",
                "Revoked %(count)d tokens of %(device)s.",
                revoked,
            )
            % {"count": revoked, "device": device},
        )
        return self.back_to_change_page(request, device)


# --- The extension point: other apps add their actions to the machine's pages ---------------------


def story_section(*, title, link: str, link_label, headers: list, rows: list, empty) -> dict:
    """A part of a machine's story on its page: a table of its latest rows, linked to the whole list."""
    return {
        "title": title,
        "link": link,
        "link_label": link_label,
        "table": {"headers": headers, "rows": rows},
        "empty": empty,
    }


def plug_into_device_admin(extension: type) -> None:
    """Adds another app's actions and inlines to the machine's pages; devices imports none of those apps.

    `extension` is a plain class whose methods are the actions, named in its `device_actions` (the
    list's actions) and `device_actions_detail` (the change page's), with `device_inlines` to add and
    `device_story`: functions (device, request) -> a `story_section` (or None) that the machine's page
    shows under its history (its last orders, commands, open alarms). They join the registered
    DeviceAdmin, so every app's additions stay side by side.
    """
    device_admin = type(admin.site.get_model_admin(Device))
    list_actions = list(getattr(extension, "device_actions", []))
    detail_actions = list(getattr(extension, "device_actions_detail", []))
    for name in (*list_actions, *detail_actions):
        setattr(device_admin, name, getattr(extension, name))
    device_admin.actions = [*(device_admin.actions or []), *list_actions]
    device_admin.actions_detail = [*device_admin.actions_detail, *detail_actions]
    device_admin.inlines = [*device_admin.inlines, *getattr(extension, "device_inlines", [])]
    device_admin.story = [*device_admin.story, *getattr(extension, "device_story", [])]
