"""The material catalogue as a spreadsheet: exported and re-imported by `code`, the machines' name for it."""

from import_export import fields, resources, widgets

from inventory.models import Material


class MaterialResource(resources.ModelResource):
    is_active = fields.Field(attribute="is_active", column_name="is_active", widget=widgets.BooleanWidget())

    class Meta:
        model = Material
        import_id_fields = ["code"]
        fields = ["code", "name", "unit", "category", "is_active"]
        export_order = ["code", "name", "unit", "category", "is_active"]
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
