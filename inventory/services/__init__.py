"""Every write to stock that carries a rule. The admin, the API, the import and the machine protocol
share them; callers import from here."""

from inventory.services.bins import (
    follow_material_threshold,
    levels_before_refill,
    record_machine_refills,
    refill_bin,
    set_bin_threshold,
)
from inventory.services.catalogue import (
    create_material,
    import_materials,
    read_sheet,
    set_enabled,
    update_material,
)
from inventory.services.consumption import book_consumption
from inventory.services.forecast import expected_use, forecast_bins
from inventory.services.usage import profile_bins

__all__ = [
    "book_consumption",
    "create_material",
    "expected_use",
    "follow_material_threshold",
    "forecast_bins",
    "import_materials",
    "levels_before_refill",
    "profile_bins",
    "read_sheet",
    "record_machine_refills",
    "refill_bin",
    "set_bin_threshold",
    "set_enabled",
    "update_material",
]
