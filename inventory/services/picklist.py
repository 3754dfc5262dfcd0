"""The refill pick list: for a visit to some locations on a date, what each machine's bins will take and
what to load into the van. The admin page, the API and the CSV all read `pick_list()`.

A bin is expected to hold, when the filler arrives, its last reading less what `expected_use` says it
gives out from that reading to the visit (never below 0). It takes what then fits, `to_fill`: never more
than its capacity, in whole g / ml / pcs. The filler carries whole packs: a bin takes `packs` (rounded
up), and what is `left_in_pack` goes into the next bin of the same material, so the van is loaded with
the packs the trip's total needs, not one opened pack per bin. A bin that would take less than
`PICK_LIST_MIN_SHARE_PCT` of its capacity is not worth a stop and is left out.
"""

import csv
import io
import math
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.tenancy import can_access_merchant
from coffeeshop.exceptions import Invalid
from devices.models import DeviceBin, Location
from inventory.models import Material
from inventory.services.forecast import expected_use

# A hair under a whole pack is that pack: 0.1 + 0.2 packs must not become 2.
_PACK_EPSILON = 1e-9
BIN_FIELDS = [f.name for f in DeviceBin._meta.concrete_fields]
DEVICE_FIELDS = ("id", "serial", "alias", "merchant", "location")


@dataclass(frozen=True)
class Filling:
    """What goes into a bin (or the trip's bins of a material), in whole packs: how many, what they hold,
    and what is left of the last one opened. Without a pack size, just the amount."""

    to_fill: float
    pack_size: float | None
    packs: int | None
    to_bring: float
    left_in_pack: float

    @staticmethod
    def in_packs(amount: float, pack_size: float | None) -> dict:
        if not pack_size:
            return {
                "to_fill": amount,
                "pack_size": None,
                "packs": None,
                "to_bring": amount,
                "left_in_pack": 0.0,
            }
        packs = math.ceil(amount / pack_size - _PACK_EPSILON) if amount > 0 else 0
        to_bring = round(packs * pack_size, 3)
        return {
            "to_fill": amount,
            "pack_size": pack_size,
            "packs": packs,
            "to_bring": to_bring,
            "left_in_pack": round(to_bring - amount, 3),
        }


@dataclass(frozen=True)
class PickLine(Filling):
    """One bin to fill."""

    bin_id: int
    index: int
    material_code: str
    material_name: str
    unit: str
    capacity: float
    remaining: float
    reported_at: datetime
    expected_at_visit: float


@dataclass
class MachinePicks:
    """One machine of the trip, with the bins it needs filled (by bin number)."""

    device_id: int
    serial: str
    name: str
    location_id: int
    location_name: str
    lines: list[PickLine] = field(default_factory=list)


@dataclass(frozen=True)
class MaterialTotal(Filling):
    """What to load into the van of one material for the whole trip."""

    merchant_id: int
    material_code: str
    material_name: str
    unit: str
    bins: int


@dataclass
class PickList:
    visit_date: date
    visit_at: datetime
    min_share_pct: float
    locations: list[Location]
    machines: list[MachinePicks]
    totals: list[MaterialTotal]

    @property
    def bins(self) -> int:
        return sum(len(machine.lines) for machine in self.machines)


def _invalid(name: str, message: str) -> Invalid:
    return Invalid(message, details={"fields": {name: [message]}})


def visit_time() -> time:
    return time.fromisoformat(settings.PICK_LIST_VISIT_TIME)


def default_visit_date(now: datetime | None = None, zone=None) -> date:
    """Tomorrow, in `zone` (the visited merchant's time zone; the server's without one)."""
    return timezone.localdate(now or timezone.now(), zone) + timedelta(days=1)


def _zone_of(locations: list[Location]):
    """The visit's date and hour are the visited merchant's; one list does not mix time zones."""
    zones = {location.merchant.time_zone for location in locations}
    if len(zones) > 1:
        raise _invalid("location", _("Choose locations in one time zone: their visit dates differ."))
    return zoneinfo.ZoneInfo(zones.pop())


def _visit_locations(user, location_ids: Iterable[int], merchant_id: int | None) -> list[Location]:
    """The named locations the user may see; one they may not is unknown, exactly like one that is not."""
    wanted = set(location_ids)
    if not wanted:
        raise _invalid("location", _("Choose at least one location."))
    if merchant_id is not None and not can_access_merchant(user, merchant_id):
        raise _invalid("merchant_id", _("unknown merchant"))
    locations = Location.objects.for_user(user).filter(pk__in=wanted).select_related("merchant")
    if merchant_id is not None:
        locations = locations.filter(merchant_id=merchant_id)
    found = list(locations.order_by("name", "pk"))
    missing = sorted(wanted - {location.pk for location in found})
    if missing:
        raise _invalid(
            "location",
            _("Unknown location: %(ids)s.") % {"ids": ", ".join(str(pk) for pk in missing)},
        )
    return found


def _line(bin_: DeviceBin, material: Material | None, visit_at: datetime, min_share: float):
    """The bin's line, or None when it needs less than `min_share` of its capacity."""
    # From the reading, not from now: a machine silent since yesterday has been selling meanwhile.
    expected = max(0.0, bin_.remaining - expected_use(bin_, bin_.reported_at, visit_at))
    to_fill = float(math.floor(max(0.0, bin_.capacity - expected)))
    if to_fill <= 0 or to_fill < min_share * bin_.capacity:
        return None
    # A pack holds the material's unit; a bin that reports in another (ml of a powder) is not rounded.
    packed = material is not None and material.pack_size and material.unit == bin_.unit
    pack_size = float(material.pack_size) if packed else None
    return PickLine(
        **Filling.in_packs(to_fill, pack_size),
        bin_id=bin_.pk,
        index=bin_.index,
        material_code=bin_.material_code,
        material_name=material.name if material is not None else "",
        unit=bin_.unit,
        capacity=bin_.capacity,
        remaining=bin_.remaining,
        reported_at=bin_.reported_at,
        expected_at_visit=round(expected, 1),
    )


def _totals(machines: list[MachinePicks], merchant_of: dict[int, int]) -> list[MaterialTotal]:
    """Per material (of a merchant: two merchants may use one code), the trip's packs rounded once."""
    grouped: dict[tuple[int, str, str], list[PickLine]] = {}
    for machine in machines:
        for line in machine.lines:
            key = (merchant_of[machine.device_id], line.material_code, line.unit)
            grouped.setdefault(key, []).append(line)
    totals = []
    by_code = sorted(grouped.items(), key=lambda item: (item[0][1], item[0][2], item[0][0]))
    for (merchant_id, code, unit), lines in by_code:
        totals.append(
            MaterialTotal(
                **Filling.in_packs(sum(line.to_fill for line in lines), lines[0].pack_size),
                merchant_id=merchant_id,
                material_code=code,
                material_name=lines[0].material_name,
                unit=unit,
                bins=len(lines),
            )
        )
    return totals


def pick_list(
    user,
    *,
    location_ids: Iterable[int],
    visit_date: date | None = None,
    merchant_id: int | None = None,
    now: datetime | None = None,
) -> PickList:
    """The pick list of a visit to `location_ids` on `visit_date` (default tomorrow) at
    PICK_LIST_VISIT_TIME, of the machines `user` may see there. Three queries, however many machines.
    Raises Invalid naming `location`, `date` or `merchant_id`."""
    now = now or timezone.now()
    locations = _visit_locations(user, location_ids, merchant_id)
    zone = _zone_of(locations)
    visit_date = visit_date or default_visit_date(now, zone)
    if visit_date < timezone.localdate(now, zone):
        raise _invalid("date", _("The visit date is in the past."))
    visit_at = datetime.combine(visit_date, visit_time(), tzinfo=zone)
    bins = DeviceBin.objects.for_user(user).filter(device__location__in=[loc.pk for loc in locations])
    if merchant_id is not None:
        bins = bins.filter(device__merchant_id=merchant_id)
    # The bin whole (expected_use may read any of its fields), of its machine only what the list shows:
    # a machine's other timestamps cost more to read than the rest of the list to work out.
    bins = list(
        bins.select_related("device")
        .only(*BIN_FIELDS, *(f"device__{name}" for name in DEVICE_FIELDS))
        .order_by("device__location_id", "device__serial", "index")
    )
    catalogue = {
        (material.merchant_id, material.code): material
        for material in Material.objects.filter(
            merchant_id__in={bin_.device.merchant_id for bin_ in bins},
            code__in={bin_.material_code for bin_ in bins},
        )
    }
    location_of = {location.pk: location for location in locations}
    min_share = settings.PICK_LIST_MIN_SHARE_PCT / 100
    machines: dict[int, MachinePicks] = {}
    merchant_of: dict[int, int] = {}
    for bin_ in bins:
        device = bin_.device
        line = _line(bin_, catalogue.get((device.merchant_id, bin_.material_code)), visit_at, min_share)
        if line is None:
            continue
        if device.pk not in machines:
            location = location_of[device.location_id]
            machines[device.pk] = MachinePicks(
                device.pk, device.serial, device.alias or device.serial, location.pk, location.name
            )
            merchant_of[device.pk] = device.merchant_id
        machines[device.pk].lines.append(line)
    ordered = sorted(machines.values(), key=lambda m: (m.location_name, m.location_id, m.name, m.serial))
    return PickList(
        visit_date=visit_date,
        visit_at=visit_at,
        min_share_pct=settings.PICK_LIST_MIN_SHARE_PCT,
        locations=locations,
        machines=ordered,
        totals=_totals(ordered, merchant_of),
    )


# --- CSV ------------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "row",
    "location",
    "machine_serial",
    "machine",
    "bin",
    "material_code",
    "material",
    "unit",
    "capacity",
    "remaining",
    "expected_at_visit",
    "to_fill",
    "pack_size",
    "packs",
    "to_bring",
    "left_in_pack",
]


def _number(value) -> str:
    return "" if value is None else f"{value:g}"


def pick_list_csv(picks: PickList) -> str:
    """The pick list as CSV (UTF-8 with a BOM, so that Excel reads Chinese names): a `bin` row per bin to
    fill, machine by machine, then a `total` row per material, what to load into the van."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for machine in picks.machines:
        for line in machine.lines:
            writer.writerow(
                [
                    "bin",
                    machine.location_name,
                    machine.serial,
                    machine.name,
                    line.index,
                    line.material_code,
                    line.material_name,
                    line.unit,
                    _number(line.capacity),
                    _number(line.remaining),
                    _number(line.expected_at_visit),
                    _number(line.to_fill),
                    _number(line.pack_size),
                    _number(line.packs),
                    _number(line.to_bring),
                    _number(line.left_in_pack),
                ]
            )
    for total in picks.totals:
        writer.writerow(
            [
                "total",
                "",
                "",
                "",
                "",
                total.material_code,
                total.material_name,
                total.unit,
                "",
                "",
                "",
                _number(total.to_fill),
                _number(total.pack_size),
                _number(total.packs),
                _number(total.to_bring),
                _number(total.left_in_pack),
            ]
        )
    return out.getvalue()


def csv_filename(picks: PickList) -> str:
    return f"pick-list-{picks.visit_date.isoformat()}.csv"
