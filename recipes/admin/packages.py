"""Recipe packages in the admin: building one (a background job with progress) and downloading it.

A package is built, never edited: its page is read-only for everyone, the add page is a form that
starts the build (`recipes.services.packages`, as the staff API does) and leads to the package's page,
where the build's progress stays live and the file downloads once it is ready.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action, display
from unfold.widgets import (
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from accounts.selectors import merchants_for
from accounts.tenancy import sees_all_merchants
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter
from coffeeshop.exceptions import DomainError
from operations.admin.common import EMPTY, admin_url, object_views
from operations.admin.jobs import job_element, job_status_response
from operations.forms import ServiceDialogForm
from operations.models import TaskJob
from recipes.api.packages import PACKAGE_CAPABILITY, package_response
from recipes.models import RecipePackage, RecipeVersion
from recipes.services.packages import build_has_stopped, build_package_again, start_package_build
from recipes.tasks import build_package

STATUS_COLOURS = {
    RecipePackage.Status.BUILDING: "info",
    RecipePackage.Status.READY: "success",
    RecipePackage.Status.FAILED: "danger",
}


class PackagedVersionChoice(forms.ModelMultipleChoiceField):
    def __init__(self, *args, show_merchant: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.show_merchant = show_merchant

    def label_from_instance(self, version):
        label = f"{version.recipe.product_id} v{version.number} · {version.recipe.name}"
        return f"{label} ({version.recipe.merchant.name})" if self.show_merchant else label


class PackageForm(ServiceDialogForm):
    """What a package holds. Shape only: `start_package_build` decides what may go together."""

    merchant = forms.ModelChoiceField(label=_("Merchant"), queryset=None, widget=UnfoldAdminSelectWidget)
    version = forms.CharField(
        label=_("Version"),
        max_length=32,
        widget=UnfoldAdminTextInputWidget,
        help_text=_("Unique per merchant, e.g. 2026.11.4; machines report it once installed."),
    )
    machine_models = forms.CharField(
        label=_("Machine models"),
        max_length=2000,
        widget=UnfoldAdminTextInputWidget,
        help_text=_("The models it may be offered to, separated by commas, e.g. CM-2000, CM-3000."),
    )
    min_firmware = forms.CharField(
        label=_("Minimum firmware"),
        max_length=32,
        required=False,
        widget=UnfoldAdminTextInputWidget,
        help_text=_("Optional, e.g. 1.4.2: older firmware is never offered the package."),
    )
    notes = forms.CharField(
        label=_("Notes"), required=False, widget=UnfoldAdminTextareaWidget(attrs={"rows": 2})
    )
    field_order = ["merchant", "version", "machine_models", "min_firmware", "recipe_versions", "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        user = self.request.user
        merchants = merchants_for(user).order_by("name")
        self.fields["merchant"].queryset = merchants
        if len(merchants[:2]) == 1:
            self.fields["merchant"].initial = merchants[0].pk
        self.fields["recipe_versions"] = PackagedVersionChoice(
            label=_("Recipe versions"),
            queryset=RecipeVersion.objects.for_user(user)
            .filter(status=RecipeVersion.Status.PUBLISHED, recipe__is_retired=False)
            .select_related("recipe__merchant")
            .order_by("recipe__merchant__name", "recipe__product_id", "-number"),
            widget=UnfoldAdminCheckboxSelectMultipleWidget,
            show_merchant=sees_all_merchants(user) or len(merchants[:2]) > 1,
            help_text=_("Published versions of recipes still sold; one version per product."),
        )
        self.order_fields(self.field_order)

    def clean_machine_models(self):
        return [model.strip() for model in self.cleaned_data["machine_models"].split(",") if model.strip()]

    def build_options(self) -> dict:
        data = self.cleaned_data
        return {
            "merchant": data["merchant"],
            "version": data["version"],
            "machine_models": data["machine_models"],
            "min_firmware": data["min_firmware"],
            "recipe_version_ids": [version.pk for version in data["recipe_versions"]],
            "notes": data["notes"],
        }


@admin.register(RecipePackage)
class RecipePackageAdmin(ScopedModelAdmin):
    """Anyone may read packages and download ready ones; Ops and Admins build them. Nobody edits or
    deletes one: machines hold its bytes."""

    write_capability = None
    add_capability = PACKAGE_CAPABILITY
    list_display = ["package", "status_label", "recipe_count", "models", "size", "created_at", "built_at"]
    list_filter = ["status"]
    search_fields = ["version"]
    fieldsets = [
        (None, {"fields": ["merchant", "version", "models", "min_firmware", "status_label"]}),
        (_("Notes"), {"fields": ["notes"]}),
        (_("Build"), {"fields": ["build", "created_by", "created_at", "built_at"]}),
        (_("File"), {"fields": ["sha256", "size", "download"]}),
        (_("Recipes"), {"fields": ["recipes"]}),
    ]
    readonly_fields = ["models", "status_label", "build", "download", "recipes"]
    actions_detail = ["build_again"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("merchant", "job", "created_by")
            .annotate(n_recipes=Count("recipe_versions"))
        )

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        return [("merchant", ScopedRelatedFilter), *filters] if sees_all_merchants(request.user) else filters

    def get_urls(self):
        extra = object_views(self, download=self.download_view, job=self.job_view)
        return [*extra, *super().get_urls()]

    def has_build_permission(self, request, obj=None):
        return self.has_add_permission(request)

    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        package = self.get_object(request, unquote(str(object_id))) if actions else None
        stopped = package is not None and (
            package.status == RecipePackage.Status.FAILED or build_has_stopped(package)
        )
        return actions if stopped else []

    # --- the list and the page ---

    @display(description=_("package"), ordering="version", header=True)
    def package(self, package):
        return [package.version, package.merchant.name]

    @display(description=_("status"), ordering="status")
    def status_label(self, package):
        return render_to_string(
            "unfold/helpers/label.html",
            {"text": package.get_status_display(), "type": STATUS_COLOURS[package.status]},
        )

    @display(description=_("recipes"), ordering="n_recipes")
    def recipe_count(self, package):
        return package.n_recipes

    @display(description=_("machine models"))
    def models(self, package):
        return ", ".join(package.machine_models) or EMPTY

    @display(description=_("build"))
    def build(self, package):
        if package.job is None:
            return EMPTY
        return job_element(package.job, status_url=admin_url(RecipePackage, "job", package.pk))

    @display(description=_("download"))
    def download(self, package):
        if not package.is_ready:
            return EMPTY
        return format_html(
            '<a class="text-primary-600" href="{}">{}</a>',
            admin_url(RecipePackage, "download", package.pk),
            _("Download the package (%(size)s bytes)") % {"size": package.size},
        )

    @display(description=_("recipes"))
    def recipes(self, package):
        versions = sorted(package.recipe_versions.select_related("recipe"), key=lambda v: v.recipe.product_id)
        return format_html(
            '<ul class="cs-package-recipes">{}</ul>',
            format_html_join(
                "",
                "<li>{} v{} · {} · {}</li>",
                ((v.recipe.product_id, v.number, v.recipe.name, v.recipe.price) for v in versions),
            ),
        )

    # --- building one ---

    def add_view(self, request, form_url="", extra_context=None):
        """A form, then the build: the package's page follows, with the build's progress."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        submitted = "_form_submitted" in request.POST
        form = PackageForm(request=request, data=request.POST if submitted else None)
        if submitted and form.is_valid():
            try:
                package = start_package_build(
                    **form.build_options(), user=request.user, enqueue=build_package.delay
                )
            except DomainError as error:
                form.add_service_error(error)
            else:
                messages.success(request, build_started_message(package))
                return HttpResponseRedirect(admin_url(RecipePackage, "change", package.pk))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Build a recipe package"),
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/recipes/recipepackage/build.html", context)

    @action(
        description=_("Build again"),
        icon="replay",
        permissions=["build"],
        dialog={
            "title": _("Build this package again?"),
            "description": _("Its last build failed or was canceled; a new job builds the same file."),
            "form_submit_text": _("Build again"),
        },
    )
    def build_again(self, request, form, object_id):
        package = self.object_for_action(request, object_id)
        try:
            build_package_again(package, user=request.user, enqueue=build_package.delay)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, build_started_message(package))
        return self.back_to_change_page(request, package)

    # --- the file and the build's state ---

    def visible_package(self, request, object_id) -> RecipePackage:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self.object_for_action(request, object_id)

    def download_view(self, request, object_id):
        package = self.visible_package(request, object_id)
        if not package.is_ready:
            raise Http404(_("This package is not ready (yet)."))
        return package_response(package, as_attachment=True)

    def job_view(self, request, object_id):
        """The build's job for live.js: whoever sees the package follows its build (the job page is its
        creator's)."""
        package = self.visible_package(request, object_id)
        if package.job is None:
            raise Http404
        return job_status_response(package.job)


def build_started_message(package: RecipePackage) -> str:
    return format_html(
        '{} <a class="text-primary-600" href="{}">{}</a>',
        _("Package %(version)s is being built; this page shows its progress.") % {"version": package.version},
        admin_url(TaskJob, "change", package.job_id),
        _("Follow the job"),
    )
