"""The material catalogue: Ops and Admins keep their merchants' own, by hand or as a CSV/XLSX import."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV, XLSX
from unfold.contrib.filters.admin import DropdownFilter
from unfold.contrib.import_export.forms import ExportForm, ImportForm
from unfold.decorators import action, display
from unfold.widgets import UnfoldAdminSelectWidget

from accounts.models import Capability
from accounts.selectors import merchants_for
from coffeeshop.admin_base import MerchantOwnedAdmin, ScopedModelAdmin, ScopedRelatedFilter
from coffeeshop.exceptions import Invalid
from devices.admin import bin_level_element
from inventory import services
from inventory.admin_import import MaterialImportJobsMixin
from inventory.forms import PickListForm, RefillForm, ThresholdForm
from inventory.models import BIN_URGENCY, EDITABLE_FIELDS, Bin, Consumption, Material, Refill
from inventory.resources import MaterialResource
from inventory.services.forecast import days_to_empty
from inventory.services.picklist import csv_filename, default_visit_date, pick_list, pick_list_csv


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


@admin.register(Material)
class MaterialAdmin(MaterialImportJobsMixin, MerchantOwnedAdmin, ImportExportModelAdmin):
    """Each merchant's catalogue: machines name its codes in their bin reports. Never deleted, disabled."""

    write_capability = Capability.MANAGE_MATERIALS
    delete_capability = None
    resource_classes = [MaterialResource]
    import_formats = [CSV, XLSX]
    export_formats = [CSV, XLSX]
    import_form_class = MaterialImportForm
    export_form_class = ExportForm
    list_display = ["code", "name", "kind", "unit", "low_threshold_pct", "supplier", "is_enabled"]
    list_select_related = ["merchant"]
    list_filter = ["is_enabled", "kind", "unit"]
    list_filter_submit = True
    search_fields = ["code", "name", "supplier"]
    fields = ["merchant", "code", *EDITABLE_FIELDS, "is_enabled", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]
    actions = ["disable_materials", "enable_materials"]

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

    def get_export_resource_kwargs(self, request, **kwargs):
        return {}

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)


# --- The fleet's bins ---------------------------------------------------------------------------------

REFILL_DIALOG = {
    "title": _("Record a refill"),
    "description": _(
        "What staff put into the bin. It clears the bin's low-stock alarms once it is above its threshold."
    ),
    "form_class": RefillForm,
    "form_submit_text": _("Record refill"),
}
THRESHOLD_DIALOG = {
    "title": _("Change the low threshold"),
    "description": _("The level at or under which this bin is low and raises an alarm."),
    "form_class": ThresholdForm,
    "form_submit_text": _("Save threshold"),
}
STATE_LABELS = {"empty": _("Empty"), "low": _("Low"), "ok": _("OK")}
PICK_LINE_HEADERS = [
    _("bin"),
    _("material"),
    _("remaining now"),
    _("expected at the visit"),
    _("to fill"),
    _("packs"),
    _("left in the last pack"),
]
PICK_TOTAL_HEADERS = [_("material"), _("bins"), _("to fill"), _("to load"), _("left over")]


class BinStateFilter(DropdownFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return list(STATE_LABELS.items())

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() in STATE_LABELS else queryset


class BinMaterialFilter(DropdownFilter):
    """The codes of the user's catalogues (not every merchant's)."""

    title = _("material")
    parameter_name = "material"

    def lookups(self, request, model_admin):
        codes = Material.objects.for_user(request.user).order_by("code").values_list("code", flat=True)
        chosen = self.value()
        choices = dict.fromkeys(codes)
        if chosen:
            choices.setdefault(chosen)  # a filter without this choice would be silently dropped
        return [(code, code) for code in choices]

    def queryset(self, request, queryset):
        return queryset.filter(material_code=self.value()) if self.value() else queryset


@admin.register(Bin)
class BinAdmin(ScopedModelAdmin):
    """Every bin of the fleet, most urgent first. The levels are the machines'; staff record refills and
    change thresholds here, through the same services as the API."""

    write_capability = None  # no form edits: refills and thresholds are the dialogs' actions
    add_capability = None
    delete_capability = None
    list_display = [
        "bin_of_device",
        "location",
        "material_code",
        "level",
        "state_label",
        "days_left",
        "variance",
        "low_threshold_pct",
        "last_refilled_at",
        "reported_at",
    ]
    list_filter = [
        ("device__merchant", ScopedRelatedFilter),
        ("device__location", ScopedRelatedFilter),
        BinMaterialFilter,
        BinStateFilter,
        "is_variance_flagged",
    ]
    list_filter_submit = True
    search_fields = ["=device__serial", "device__alias", "material_code"]
    search_help_text = _("Machine serial or alias, or material code")
    show_full_result_count = False
    list_per_page = 50
    actions = ["fill_to_the_top"]
    actions_detail = ["refill", "change_threshold"]
    fields = [
        "device",
        "index",
        "material_code",
        "level",
        "remaining",
        "capacity",
        "unit",
        "state_label",
        "low_threshold_pct",
        "threshold_follows_material",
        "days_left",
        "drain_per_day",
        "use_by_hour",
        "variance",
        "variance_since",
        "expected_use",
        "reported_drop",
        "last_refilled_at",
        "reported_at",
    ]
    readonly_fields = fields
    inlines = []

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("device__location", "device__merchant")

    def get_ordering(self, request):
        return BIN_URGENCY

    def has_stock_permission(self, request, obj=None):
        return self.has_capability(request, Capability.MANAGE_MATERIALS)

    def get_urls(self):
        page = path(
            "pick-list/", self.admin_site.admin_view(self.pick_list_view), name="inventory_bin_picklist"
        )
        return [page, *super().get_urls()]

    def pick_list_view(self, request):
        """Inventory → Pick list: choose locations and a day, read the trip by machine and its totals,
        download it as CSV (`download=csv`). Everyone who may read the bins may read it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        asked = "locations" in request.GET
        form = PickListForm(
            request.GET if asked else None, user=request.user, initial={"date": default_visit_date()}
        )
        picks = None
        if asked and form.is_valid():
            try:
                picks = pick_list(
                    request.user,
                    location_ids=[location.pk for location in form.cleaned_data["locations"]],
                    visit_date=form.cleaned_data["date"],
                )
            except Invalid as error:
                for name, problems in error.details.get("fields", {}).items():
                    form.add_error(name if name in form.fields else None, problems)
        if picks is not None and request.GET.get("download") == "csv":
            response = HttpResponse(pick_list_csv(picks), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{csv_filename(picks)}"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Pick list"),
            "form": form,
            "picks": picks,
            "csv_query": f"{request.GET.urlencode()}&download=csv",
            "line_headers": PICK_LINE_HEADERS,
            "total_headers": PICK_TOTAL_HEADERS,
        }
        return TemplateResponse(request, "admin/inventory/pick_list.html", context)

    @display(description=_("bin"), header=True)
    def bin_of_device(self, bin_):
        device = bin_.device
        return [f"{device.alias or device.serial} #{bin_.index}", device.serial if device.alias else ""]

    @display(description=_("location"), ordering="device__location__name")
    def location(self, bin_):
        return bin_.device.location.name if bin_.device.location else "–"

    @display(description=_("level"), ordering="level_pct")
    def level(self, bin_):
        return bin_level_element(bin_)

    @display(description=_("state"), label={"empty": "danger", "low": "warning", "ok": "success"})
    def state_label(self, bin_):
        state = getattr(bin_, "state", None) or ("empty" if bin_.is_empty else "low" if bin_.is_low else "ok")
        return state, STATE_LABELS[state]

    @display(description=_("days to empty"), ordering="empty_at")
    def days_left(self, bin_):
        days = days_to_empty(bin_)
        return "–" if days is None else days

    @display(description=_("variance"), ordering="variance_pct", label={"flagged": "danger", "ok": "success"})
    def variance(self, bin_):
        if bin_.variance_pct is None:
            return "–"
        if bin_.is_variance_flagged:
            flagged = _("%(pct)+g%%: leak, grinder drift or unrecorded sales")
            return "flagged", flagged % {"pct": bin_.variance_pct}
        return "ok", f"{bin_.variance_pct:+g}%"

    @admin.action(description=_("Fill the selected bins to the top"), permissions=["stock"])
    def fill_to_the_top(self, request, queryset):
        filled = 0
        for bin_ in queryset:
            if bin_.capacity - bin_.remaining > 0:
                services.refill_bin(bin_, amount=bin_.capacity - bin_.remaining, user=request.user)
                filled += 1
        messages.success(request, _("%(count)d bins recorded as filled to the top.") % {"count": filled})

    @action(description=_("Record a refill"), icon="water_full", permissions=["stock"], dialog=REFILL_DIALOG)
    def refill(self, request, form, object_id):
        return self.submit_dialog(
            request,
            form,
            REFILL_DIALOG,
            lambda: services.refill_bin(form.target, amount=form.cleaned_data["amount"], user=request.user),
            lambda refill: (
                _("Recorded %(amount)g %(unit)s into bin %(index)s.")
                % {"amount": refill.amount, "unit": refill.unit, "index": refill.bin_index}
            ),
        )

    @action(description=_("Change threshold"), icon="tune", permissions=["stock"], dialog=THRESHOLD_DIALOG)
    def change_threshold(self, request, form, object_id):
        return self.submit_dialog(
            request,
            form,
            THRESHOLD_DIALOG,
            lambda: services.set_bin_threshold(form.target, form.chosen_threshold),
            lambda bin_: (
                _("Bin %(index)s is low at or under %(pct)g%%.")
                % {"index": bin_.index, "pct": bin_.low_threshold_pct}
            ),
        )


@admin.register(Refill)
class RefillAdmin(ScopedModelAdmin):
    """Every refill: by machines (reported, or seen in the level) and by staff. A record, never edited."""

    write_capability = None
    add_capability = None
    delete_capability = None
    list_display = ["refilled_at", "device", "bin_index", "material_code", "amount_put_in", "source", "user"]
    list_select_related = ["device", "user"]
    list_filter = [("device__merchant", ScopedRelatedFilter), "source", "material_code"]
    list_filter_submit = True
    search_fields = ["=device__serial", "material_code"]
    ordering = ["-refilled_at", "-pk"]
    show_full_result_count = False
    readonly_fields = [f.name for f in Refill._meta.fields]

    @display(description=_("amount"))
    def amount_put_in(self, refill):
        return "–" if refill.amount is None else f"{refill.amount:g} {refill.unit}"


@admin.register(Consumption)
class ConsumptionAdmin(ScopedModelAdmin):
    """The consumption ledger: what each sold item took from each bin. Items it could not book against a
    bin (no recipe, unknown version, no bin of the material, a unit that does not convert) are rows
    without a bin, filtered by why."""

    write_capability = None
    add_capability = None
    delete_capability = None
    list_display = [
        "occurred_at", "device", "bin_index", "material_code", "amount_taken", "order", "unmatched"
    ]  # fmt: skip
    list_select_related = ["device", "bin", "order_item__order"]
    list_filter = [("device__merchant", ScopedRelatedFilter), "unmatched", "material_code"]
    list_filter_submit = True
    search_fields = ["=device__serial", "=order_item__order__machine_order_id", "material_code"]
    ordering = ["-occurred_at", "-pk"]
    show_full_result_count = False
    readonly_fields = [f.name for f in Consumption._meta.fields]

    @display(description=_("bin"))
    def bin_index(self, row):
        return row.bin.index if row.bin else "–"

    @display(description=_("amount"))
    def amount_taken(self, row):
        return f"{row.amount:g} {row.unit}" if row.unit else "–"

    @display(description=_("order"))
    def order(self, row):
        item = row.order_item
        return f"{item.order.machine_order_id} · {item.product_id} v{item.recipe_version}"
