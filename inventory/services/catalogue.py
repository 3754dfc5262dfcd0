"""Every write to the material catalogue that carries a rule. The admin, the API and the import share them."""

import io

import tablib
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import Merchant
from audit import services as audit
from coffeeshop.exceptions import Invalid, unique_or_conflict
from inventory.models import EDITABLE_FIELDS, Material
from inventory.resources import MaterialResource, row_report
from inventory.selectors import forget_material_codes
from inventory.services.bins import follow_material_threshold


def _checked(material: Material) -> None:
    """The model's own rules (choices, ranges), as field errors; uniqueness is the database's."""
    try:
        material.full_clean(exclude=["merchant"], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        fields = {name: [str(m) for m in messages] for name, messages in error.message_dict.items()}
        raise Invalid(_("The material is not valid."), details={"fields": fields}) from None


def _codes_changed(material: Material) -> None:
    """Machines of this process see a disabled or new code at once, not after the memo's minute (forgotten
    now, and again once committed, in case a report read the old codes meanwhile)."""
    forget_material_codes(material.merchant_id)
    transaction.on_commit(lambda: forget_material_codes(material.merchant_id))


@transaction.atomic
def create_material(*, merchant: Merchant, code: str, **fields) -> Material:
    unknown = set(fields) - {*EDITABLE_FIELDS, "is_enabled"}
    if unknown:
        raise ValueError(f"not a material field: {sorted(unknown)}")
    material = Material(merchant=merchant, code=code, **fields)
    _checked(material)
    with unique_or_conflict("code", _("This merchant already has a material with this code.")):
        material.save()
    audit.record(
        "material.created",
        material,
        changes={"code": code, **{k: audit.as_text(v) for k, v in fields.items()}},
    )
    _codes_changed(material)
    return material


@transaction.atomic
def update_material(material: Material, **changes) -> Material:
    """Change what may change. The code may not: machines report it, and their bins would be orphaned."""
    if "code" in changes and changes["code"] != material.code:
        message = _("The code of a material cannot change: machines report it.")
        raise Invalid(message, details={"fields": {"code": [message]}})
    changes.pop("code", None)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    for field, value in changes.items():
        setattr(material, field, value)
    _checked(material)
    material.refresh_from_db(fields=list(changes))
    changed = audit.save_changes(material, changes)
    if changed:
        audit.record("material.updated", material, changes=changed)
    if "low_threshold_pct" in changed:
        follow_material_threshold(material)
        _codes_changed(material)
    return material


@transaction.atomic
def set_enabled(material: Material, enabled: bool) -> Material:
    """Disabled materials stay in the catalogue (bins name them) but machines may no longer report them."""
    if material.is_enabled != enabled:
        audit.save_changes(material, {"is_enabled": enabled}, update_fields=["is_enabled", "updated_at"])
        audit.record("material.enabled" if enabled else "material.disabled", material)
        _codes_changed(material)
    return material


# --- Import: a spreadsheet of one merchant's materials ------------------------------------------------

XLSX_MAGIC = b"PK\x03\x04"


def _file_error(message) -> Invalid:
    return Invalid(message, details={"fields": {"file": [message]}})


def read_sheet(content: bytes) -> tablib.Dataset:
    """A CSV (UTF-8, with or without Excel's BOM) or XLSX file as a dataset; rows left empty are dropped."""
    try:
        if content.startswith(XLSX_MAGIC):
            dataset = tablib.Dataset().load(io.BytesIO(content), format="xlsx")
        else:
            dataset = tablib.Dataset().load(content.decode("utf-8-sig"), format="csv")
    except UnicodeDecodeError:
        raise _file_error(_("The file is not UTF-8 text: save the CSV as UTF-8, or send an XLSX.")) from None
    except Exception:  # tablib and openpyxl raise many kinds for a damaged file
        raise _file_error(_("The file is neither a CSV nor an XLSX spreadsheet.")) from None
    if not dataset.headers or "code" not in [str(h).strip() for h in dataset.headers]:
        raise _file_error(_("The first row must name the columns, code among them."))
    dataset.headers = [str(h or "").strip() for h in dataset.headers]
    blank = [i for i, row in enumerate(dataset) if all(v is None or str(v).strip() == "" for v in row)]
    for index in reversed(blank):
        del dataset[index]
    return dataset


def import_materials(
    merchant: Merchant, dataset: tablib.Dataset, *, dry_run: bool, on_row=None
) -> list[dict]:
    """Import a sheet into `merchant`'s catalogue, all or nothing: the rows as `row_report` gives them.
    Any invalid row raises Invalid with every row in its details, and nothing is written; so does a
    dry run never write. `on_row()` is called after each row (it may raise to stop the import, which
    then writes nothing)."""
    with transaction.atomic():
        thresholds_before = dict(merchant.materials.values_list("code", "low_threshold_pct"))
        result = MaterialResource(merchant=merchant, on_row=on_row).import_data(
            dataset,
            dry_run=dry_run,
            use_transactions=True,
            rollback_on_validation_errors=True,
            retain_instance_in_row_result=True,
        )
        report = row_report(result)
        if any(row["status"] == "error" for row in report):
            raise Invalid(
                _("The file has rows in error; nothing was imported."),
                details={"rows": [row for row in report if row["status"] == "error"], "all_rows": report},
            )
        if not dry_run:
            for row, reported in zip(result.rows, report, strict=True):
                if reported["status"] in ("new", "updated"):
                    audit.record(
                        "material.imported",
                        row.instance,
                        changes={"row": reported["row"], "status": reported["status"]},
                    )
                before = thresholds_before.get(row.instance.code)
                if reported["status"] == "updated" and before != row.instance.low_threshold_pct:
                    follow_material_threshold(row.instance)
            transaction.on_commit(lambda: forget_material_codes(merchant.pk))
    return report
