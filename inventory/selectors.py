"""Reads of the material catalogue worth naming."""

import time

from django.utils.translation import gettext as _

from accounts.models import Merchant
from accounts.tenancy import merchant_ids_for
from coffeeshop.exceptions import Invalid
from inventory.models import BIN_URGENCY, Bin, Material

_CATALOGUE_TTL_S = 60.0
_catalogue_by_merchant: dict[int, tuple[float, dict[str, int]]] = {}


def materials_for(user):
    return Material.objects.for_user(user).select_related("merchant")


def enabled_materials(merchant_id: int) -> dict[str, int]:
    """A merchant's enabled codes with their default low thresholds, memoised per process for a minute:
    they are read on every bin report and change a few times a year, so a material disabled a moment
    ago may be accepted (and a threshold changed a moment ago given to a new bin) for up to a minute."""
    loaded_at, materials = _catalogue_by_merchant.get(merchant_id, (0.0, {}))
    if time.monotonic() - loaded_at > _CATALOGUE_TTL_S:
        materials = dict(
            Material.objects.filter(merchant_id=merchant_id, is_enabled=True).values_list(
                "code", "low_threshold_pct"
            )
        )
        _catalogue_by_merchant[merchant_id] = (time.monotonic(), materials)
    return materials


def default_low_threshold(merchant_id: int, code: str) -> int | None:
    """The catalogue's threshold for a new bin of `code` (None for a code the catalogue lacks)."""
    return enabled_materials(merchant_id).get(code)


def forget_material_codes(merchant_id: int | None = None) -> None:
    if merchant_id is None:
        _catalogue_by_merchant.clear()
    else:
        _catalogue_by_merchant.pop(merchant_id, None)


def unknown_material_codes(merchant_id: int, codes) -> set[str]:
    """The codes among `codes` that are not an enabled material of the merchant's catalogue."""
    wanted = set(codes)
    if not wanted:
        return set()
    unknown = wanted - enabled_materials(merchant_id).keys()
    if unknown:  # maybe just added: look once more before refusing
        forget_material_codes(merchant_id)
        unknown = wanted - enabled_materials(merchant_id).keys()
    return unknown


def merchant_to_write_for(user, merchant_id: int | None):
    """The merchant a new material or an import goes to: the one named (already checked to be the user's),
    or the user's only merchant. Platform staff, and users of several merchants, must name one."""
    if merchant_id is not None:
        return Merchant.objects.get(pk=merchant_id)
    ids = merchant_ids_for(user)
    if ids is not None and len(ids) == 1:
        return Merchant.objects.get(pk=next(iter(ids)))
    message = _("Say which merchant: merchant_id.")
    raise Invalid(message, details={"fields": {"merchant_id": [message]}})


# --- The fleet's bins ------------------------------------------------------------------------------------


def bins_for(user):
    """Every bin the user may see, with its state, most urgent first."""
    return (
        Bin.objects.for_user(user)
        .select_related("device__location", "device__merchant")
        .order_by(*BIN_URGENCY)
    )
