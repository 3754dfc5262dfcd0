"""Staff changes to machines (API and admin share these)."""

from django.db import transaction
from django.utils.translation import gettext as _

from coffeeshop import audit
from coffeeshop.exceptions import Invalid
from devices.models import Device, Location

EDITABLE_FIELDS = ("alias", "location", "offline_timeout_s")


@transaction.atomic
def update_device_settings(device: Device, **changes) -> Device:
    """Change what staff may change; a location must belong to the machine's merchant."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    location = changes.get("location")
    if isinstance(location, Location) and location.merchant_id != device.merchant_id:
        raise Invalid(
            _("The location belongs to another merchant."),
            details={"fields": {"location": [_("not a location of this machine's merchant")]}},
        )
    before = {field: getattr(device, field) for field in changes}
    for field, value in changes.items():
        setattr(device, field, value)
    device.save(update_fields=list(changes))
    audit.record(
        "device.updated",
        device,
        changes={
            field: [
                str(before[field]) if before[field] is not None else None,
                str(value) if value is not None else None,
            ]
            for field, value in changes.items()
            if before[field] != value
        },
    )
    return device
