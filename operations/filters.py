import django_filters

from coffeeshop.api.filtering import IdFilter
from devices.filters import DeviceFilter
from operations.models import Alarm, AlarmType, CommandStatus, CommandType, RemoteCommand, Severity


class CommandFilter(django_filters.FilterSet):
    device_id = IdFilter(field_name="device_id")
    batch_id = IdFilter(field_name="batch_id")
    status = django_filters.ChoiceFilter(choices=CommandStatus.choices)
    type = django_filters.ChoiceFilter(choices=CommandType.choices)

    class Meta:
        model = RemoteCommand
        fields = ["device_id", "batch_id", "status", "type"]


class AlarmFilter(django_filters.FilterSet):
    device_id = IdFilter(field_name="device_id")
    merchant_id = IdFilter(field_name="merchant_id")
    type = django_filters.ChoiceFilter(choices=AlarmType.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    active = django_filters.BooleanFilter(field_name="is_active")
    # What people type for "active alarms": ?status=active (or cleared), beside ?active=true.
    status = django_filters.ChoiceFilter(
        choices=[("active", "active"), ("cleared", "cleared")], method="filter_status"
    )
    acknowledged = django_filters.BooleanFilter(
        field_name="acknowledged_at", lookup_expr="isnull", exclude=True
    )

    class Meta:
        model = Alarm
        fields = ["device_id", "merchant_id", "type", "severity", "active", "status", "acknowledged"]

    def filter_status(self, queryset, name, value):
        return queryset.filter(is_active=value == "active")


# A batch chooses machines with the same filter as the device list.
BatchTargetFilter = DeviceFilter
