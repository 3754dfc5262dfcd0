"""Staff changes to machines and their locations (API and admin share these)."""

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit import services as audit
from coffeeshop.exceptions import Invalid, unique_or_conflict
from devices.models import Device, Location

EDITABLE_FIELDS = ("alias", "location", "offline_timeout_s")
LOCATION_FIELDS = ("name", "address", "city", "latitude", "longitude")

# A merchant's location names are unique (a database constraint).
NAME_TAKEN = gettext_lazy("This merchant already has a location with this name.")


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
    changed = audit.save_changes(device, changes, update_fields=list(changes))
    audit.record("device.updated", device, changes=changed)
    return device


# --- Locations: where machines stand (a merchant's Admins keep them) ---------------------------------


@transaction.atomic
def create_location(**fields) -> Location:
    with unique_or_conflict("name", str(NAME_TAKEN)):
        location = Location.objects.create(**fields)
    audit.record("location.created", location, changes=_described(location, fields))
    return location


@transaction.atomic
def update_location(location: Location, **changes) -> Location:
    with unique_or_conflict("name", str(NAME_TAKEN)):
        changed = audit.save_changes(location, changes)
    audit.record("location.updated", location, changes=changed)
    return location


@transaction.atomic
def delete_location(location: Location) -> None:
    """Machines standing here are left without a location."""
    audit.record("location.deleted", location, changes=_described(location, LOCATION_FIELDS))
    location.delete()


def _described(location: Location, fields) -> dict:
    return {name: audit.as_text(getattr(location, name)) for name in fields if name in LOCATION_FIELDS}
