"""The material catalogue as a spreadsheet, one merchant's at a time, matched by `code`.

The resource is made for one merchant: it finds existing rows only among that merchant's materials
and gives new ones to it, so a file can neither read nor overwrite another merchant's catalogue. A
`merchant` column, as the export writes it, must name that same merchant.
"""

from decimal import InvalidOperation

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from import_export import fields, resources, widgets
from import_export.instance_loaders import CachedInstanceLoader
from import_export.results import RowResult

from inventory.models import DEFAULT_LOW_THRESHOLD_PCT, EDITABLE_FIELDS, Material

COLUMNS = ["code", *EDITABLE_FIELDS, "enabled"]
COLUMN_OF_FIELD = {"is_enabled": "enabled"}
STATUS_OF_IMPORT_TYPE = {
    RowResult.IMPORT_TYPE_NEW: "new",
    RowResult.IMPORT_TYPE_UPDATE: "updated",
    RowResult.IMPORT_TYPE_SKIP: "unchanged",
}


class TrimmedWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        value = super().clean(value, row, **kwargs)
        return value.strip() if isinstance(value, str) else value


class ChoiceWidget(TrimmedWidget):
    """`Bean`, ` ML ` are bean and ml: spreadsheets are typed by people."""

    def clean(self, value, row=None, **kwargs):
        value = super().clean(value, row, **kwargs)
        return value.lower() if isinstance(value, str) else value


class NumberWidget(widgets.DecimalWidget):
    """A number, or an error naming the cell: import-export's own lets `abc` through as a crash."""

    def __init__(self, whole=False, when_blank=None, **kwargs):
        super().__init__(**kwargs)
        self.whole, self.when_blank = whole, when_blank

    def clean(self, value, row=None, **kwargs):
        try:
            number = super().clean(value, row, **kwargs)
        except (InvalidOperation, ValueError):
            raise ValueError(_("Enter a number.")) from None
        if number is None:
            return self.when_blank
        if self.whole:
            if number != number.to_integral_value():
                raise ValueError(_("Enter a whole number."))
            return int(number)
        return number


class EnabledWidget(widgets.BooleanWidget):
    """An empty cell is enabled: a new material is, unless the sheet says 0, false or no."""

    TRUE_VALUES = [*widgets.BooleanWidget.TRUE_VALUES, "true", "yes", "y"]
    FALSE_VALUES = [*widgets.BooleanWidget.FALSE_VALUES, "false", "no", "n"]

    def clean(self, value, row=None, **kwargs):
        if value is None or (isinstance(value, str) and not value.strip()):
            return True
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in self.TRUE_VALUES and value not in self.FALSE_VALUES:
                raise ValueError(_("Enter 1 or 0 (true or false)."))
        return super().clean(value, row, **kwargs)


class MaterialResource(resources.ModelResource):
    code = fields.Field(attribute="code", column_name="code", widget=TrimmedWidget())
    name = fields.Field(attribute="name", column_name="name", widget=TrimmedWidget())
    kind = fields.Field(attribute="kind", column_name="kind", widget=ChoiceWidget())
    unit = fields.Field(attribute="unit", column_name="unit", widget=ChoiceWidget())
    density = fields.Field(attribute="density", column_name="density", widget=NumberWidget())
    low_threshold_pct = fields.Field(
        attribute="low_threshold_pct",
        column_name="low_threshold_pct",
        widget=NumberWidget(whole=True, when_blank=DEFAULT_LOW_THRESHOLD_PCT),
    )
    cost_per_unit = fields.Field(
        attribute="cost_per_unit", column_name="cost_per_unit", widget=NumberWidget()
    )
    supplier = fields.Field(attribute="supplier", column_name="supplier", widget=TrimmedWidget())
    pack_size = fields.Field(attribute="pack_size", column_name="pack_size", widget=NumberWidget())
    enabled = fields.Field(attribute="is_enabled", column_name="enabled", widget=EnabledWidget())
    merchant = fields.Field(attribute="merchant__name", column_name="merchant", readonly=True)

    class Meta:
        model = Material
        import_id_fields = ["code"]
        fields = [*COLUMNS, "merchant"]
        export_order = [*COLUMNS, "merchant"]
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
        # The file's materials in one query, not one per row.
        instance_loader_class = CachedInstanceLoader

    def __init__(self, merchant=None, on_row=None, **kwargs):
        super().__init__(**kwargs)
        self.merchant = merchant
        self.on_row = on_row  # called after each row: a background import counts its progress
        self._row_of_code: dict[str, int] = {}

    def get_queryset(self):
        queryset = super().get_queryset().select_related("merchant")
        return queryset if self.merchant is None else queryset.filter(merchant=self.merchant)

    def before_import(self, dataset, **kwargs):
        if self.merchant is None:
            raise ValueError("a material import is made for one merchant")
        self._row_of_code = {}

    def before_import_row(self, row, row_number=None, **kwargs):
        errors = {}
        named = str(row.get("merchant") or "").strip()
        if named and named != self.merchant.name:
            errors["merchant"] = _("This file is imported into %(merchant)s, not %(named)s.") % {
                "merchant": self.merchant.name,
                "named": named,
            }
        code = str(row.get("code") or "").strip()
        if code in self._row_of_code:
            errors["code"] = _("%(code)s is already in row %(row)s.") % {
                "code": code,
                "row": self._row_of_code[code],
            }
        elif code:
            self._row_of_code[code] = row_number
        if errors:
            raise ValidationError(errors)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """The fields' own rules, row by row. Not the model's constraints: Django checks each with a query
        (four per row, more than half of a large import's time); codes twice in the file are caught
        above, and the database still enforces every constraint when the rows are saved."""
        errors = dict(import_validation_errors or {})
        try:
            instance.full_clean(
                exclude=[*errors, "merchant"],  # ours, set above: its check would be one more query a row
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def import_row(self, row, instance_loader, **kwargs):
        row_result = super().import_row(row, instance_loader, **kwargs)
        if self.on_row is not None:  # outside import-export's catch-all: a raise here stops the import
            self.on_row()
        return row_result

    def after_init_instance(self, instance, new, row, **kwargs):
        if new:
            instance.merchant = self.merchant


def row_report(result) -> list[dict]:
    """Each row of an import's result as {row, status: new|updated|unchanged|error, errors: {column: [..]}};
    row 1 is the first row under the header, as in the admin's preview."""
    reported = []
    for number, row in enumerate(result.rows, 1):
        errors = {}
        if row.validation_error is not None:
            for name, messages in row.validation_error.message_dict.items():
                errors[COLUMN_OF_FIELD.get(name, name)] = [str(m) for m in messages]
        for error in row.errors:
            errors.setdefault("__all__", []).append(str(error.error))
        status = "error" if errors else STATUS_OF_IMPORT_TYPE.get(row.import_type, "error")
        reported.append({"row": number, "status": status, "errors": errors})
    return reported
