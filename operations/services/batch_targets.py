"""Which machines a batch goes to, as the person sending it sees them: the API and the admin's
"send to selected machines" both resolve their targets here, and keep what they chose on the batch."""

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from coffeeshop.exceptions import Invalid
from devices.selectors import devices_for
from operations.filters import BatchTargetFilter

SHOWN_MISSING = 20


@dataclass(frozen=True)
class BatchTargets:
    devices: QuerySet
    target: dict  # kept on the batch: what was asked for, not only what it matched


def machines_by_id(user, device_ids) -> BatchTargets:
    """Exactly these machines; one the user may not see is refused like one that does not exist."""
    wanted = set(device_ids)
    devices = devices_for(user).filter(pk__in=wanted)
    missing = wanted - set(devices.values_list("pk", flat=True))
    if missing:
        message = _("unknown devices: %(ids)s") % {"ids": sorted(missing)[:SHOWN_MISSING]}
        raise Invalid(message, details={"fields": {"device_ids": [message]}})
    return BatchTargets(devices=devices, target={"device_ids": sorted(wanted)})


def machines_by_filter(user, criteria: dict) -> BatchTargets:
    """The machines the device list would show the user with these filters."""
    chosen = BatchTargetFilter(criteria, queryset=devices_for(user))
    if not chosen.is_valid():
        raise Invalid(_("The filter is not valid."), details={"fields": {"filter": chosen.errors}})
    return BatchTargets(devices=chosen.qs, target={"filter": criteria})
