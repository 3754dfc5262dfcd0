import time

from inventory.models import Material

_CODES_TTL_S = 60.0
_codes_cache: tuple[float, frozenset[str]] = (0.0, frozenset())


def active_material_codes() -> frozenset[str]:
    """The catalogue's active codes, memoised per process for a minute: it is read on every bin report
    and changes a few times a year, so a new material may be refused for up to a minute."""
    global _codes_cache
    loaded_at, codes = _codes_cache
    if time.monotonic() - loaded_at > _CODES_TTL_S:
        codes = frozenset(Material.objects.filter(is_active=True).values_list("code", flat=True))
        _codes_cache = (time.monotonic(), codes)
    return codes


def forget_material_codes() -> None:
    global _codes_cache
    _codes_cache = (0.0, frozenset())


def unknown_material_codes(codes) -> set[str]:
    """The codes among `codes` that are not an active material of the catalogue."""
    wanted = set(codes)
    if not wanted:
        return set()
    unknown = wanted - active_material_codes()
    if unknown:  # maybe just added: look once more before refusing
        forget_material_codes()
        unknown = wanted - active_material_codes()
    return unknown
