"""The material catalogue: Ops and Admins keep it, by hand or as a CSV import; everyone reads it."""

from django.contrib import admin
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV
from unfold.contrib.import_export.forms import ExportForm, ImportForm

from accounts.models import Capability
from coffeeshop.admin_base import ScopedModelAdmin
from inventory.models import Material
from inventory.resources import MaterialResource


@admin.register(Material)
class MaterialAdmin(ScopedModelAdmin, ImportExportModelAdmin):
    """One catalogue for every merchant: machines name its codes in their bin reports."""

    tenant_scoped = False
    write_capability = Capability.MANAGE_MATERIALS
    resource_classes = [MaterialResource]
    import_formats = [CSV]
    export_formats = [CSV]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = ["code", "name", "unit", "category", "is_active"]
    list_filter = ["is_active", "category"]
    list_filter_submit = True
    search_fields = ["code", "name", "category"]
    fields = ["code", "name", "unit", "category", "is_active", "created_at"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        # Machines already report this code: renaming it would orphan their bins.
        return [*self.readonly_fields, "code"] if obj else self.readonly_fields

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def _create_log_entry(self, user_pk, rows, import_type, action_flag):
        # import-export writes the history of a multi-row import in one bulk insert, which sends no
        # post_save: row by row, every imported material reaches the audit trail.
        for row in rows:
            super()._create_log_entry(user_pk, [row], import_type, action_flag)
