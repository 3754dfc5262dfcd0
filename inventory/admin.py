"""The material catalogue: Ops and Admins keep their merchants' own, by hand or as a CSV/XLSX import."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV, XLSX
from unfold.contrib.import_export.forms import ExportForm, ImportForm
from unfold.widgets import UnfoldAdminSelectWidget

from accounts.models import Capability
from accounts.selectors import merchants_for
from accounts.tenancy import sees_all_merchants
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter
from inventory import services
from inventory.models import EDITABLE_FIELDS, Material
from inventory.resources import MaterialResource


class MaterialImportForm(ImportForm):
    """The upload, and the merchant it goes to: one of the user's own, chosen for them if they have one."""

    merchant = forms.ModelChoiceField(queryset=None, label=_("Merchant"), widget=UnfoldAdminSelectWidget)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["merchant"]
        field.queryset = merchants_for(user).order_by("name")
        own = list(field.queryset[:2])
        self.only_merchant = own[0] if len(own) == 1 else None
        if self.only_merchant is not None:
            field.required, field.widget = False, forms.HiddenInput()

    def clean_merchant(self):
        return self.cleaned_data.get("merchant") or self.only_merchant


class MaterialConfirmImportForm(forms.Form):
    import_file_name = forms.CharField(widget=forms.HiddenInput())
    original_file_name = forms.CharField(widget=forms.HiddenInput())
    format = forms.CharField(widget=forms.HiddenInput())
    resource = forms.CharField(widget=forms.HiddenInput(), required=False)
    merchant = forms.ModelChoiceField(queryset=None, widget=forms.HiddenInput())

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["merchant"].queryset = merchants_for(user)

    def clean_import_file_name(self):
        from os.path import basename

        return basename(self.cleaned_data["import_file_name"])


@admin.register(Material)
class MaterialAdmin(ScopedModelAdmin, ImportExportModelAdmin):
    """Each merchant's catalogue: machines name its codes in their bin reports. Never deleted, disabled."""

    write_capability = Capability.MANAGE_MATERIALS
    delete_capability = None
    resource_classes = [MaterialResource]
    import_formats = [CSV, XLSX]
    export_formats = [CSV, XLSX]
    import_form_class = MaterialImportForm
    confirm_form_class = MaterialConfirmImportForm
    export_form_class = ExportForm
    list_display = ["code", "name", "kind", "unit", "low_threshold_pct", "supplier", "is_enabled"]
    list_select_related = ["merchant"]
    list_filter = ["is_enabled", "kind", "unit"]
    list_filter_submit = True
    search_fields = ["code", "name", "supplier"]
    fields = ["merchant", "code", *EDITABLE_FIELDS, "is_enabled", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]
    actions = ["disable_materials", "enable_materials"]

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return [*shown, "merchant"] if sees_all_merchants(request.user) else shown

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        return [("merchant", ScopedRelatedFilter), *filters] if sees_all_merchants(request.user) else filters

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        own = list(merchants_for(request.user)[:2])
        if len(own) == 1:
            initial.setdefault("merchant", own[0].pk)
        return initial

    def get_readonly_fields(self, request, obj=None):
        # Machines already report this code: renaming it, or moving it, would orphan their bins.
        return [*self.readonly_fields, "merchant", "code"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.cleaned_data}
        enabled = form.cleaned_data.get("is_enabled", obj.is_enabled)
        if change:
            services.update_material(Material.objects.get(pk=obj.pk), **values)
            services.set_enabled(Material.objects.get(pk=obj.pk), enabled)
        else:
            created = services.create_material(
                merchant=form.cleaned_data["merchant"],
                code=form.cleaned_data["code"],
                is_enabled=enabled,
                **values,
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    @admin.action(description=_("Disable the selected materials"), permissions=["change"])
    def disable_materials(self, request, queryset):
        for material in queryset:
            services.set_enabled(material, False)

    @admin.action(description=_("Enable the selected materials"), permissions=["change"])
    def enable_materials(self, request, queryset):
        for material in queryset:
            services.set_enabled(material, True)

    def get_import_form_kwargs(self, request):
        return {**super().get_import_form_kwargs(request), "user": request.user}

    def get_confirm_form_kwargs(self, request, import_form=None):
        return {**super().get_confirm_form_kwargs(request, import_form), "user": request.user}

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["merchant"] = import_form.cleaned_data["merchant"].pk
        return initial

    def get_import_resource_kwargs(self, request, **kwargs):
        form = kwargs.get("form")
        merchant = (
            form.cleaned_data.get("merchant")
            if form is not None and form.is_bound and form.is_valid()
            else None
        )
        return {"merchant": merchant}

    def get_export_resource_kwargs(self, request, **kwargs):
        return {}

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def _create_log_entry(self, user_pk, rows, import_type, action_flag):
        # import-export writes the history of a multi-row import in one bulk insert, which sends no
        # post_save: row by row, every imported material reaches the audit trail.
        for row in rows:
            super()._create_log_entry(user_pk, [row], import_type, action_flag)
