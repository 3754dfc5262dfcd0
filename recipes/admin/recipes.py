"""Recipes and their versions in the admin: drafts edited with the schema's errors inline, diffs,
publishing.

Everything goes through `recipes.services.authoring`, the functions the staff API calls. A published
version's page is read-only for everyone; a change to it is a new draft, cloned from it.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action, display

from accounts.models import Capability
from coffeeshop.admin_base import (
    MerchantOwnedAdmin,
    ScopedModelAdmin,
    ScopedRelatedFilter,
    ScopedTabularInline,
)
from coffeeshop.exceptions import DomainError
from recipes import selectors
from recipes.forms import CloneForm, RecipeDialogForm, RecipeVersionForm, VersionDialogForm
from recipes.models import Recipe, RecipeVersion
from recipes.services import authoring

STATUS_COLOURS = {RecipeVersion.Status.DRAFT: "info", RecipeVersion.Status.PUBLISHED: "success"}
RETIRE_DIALOG = {
    "title": _("Retire this recipe"),
    "description": _("It is no longer sold: new packages leave it out. Its versions and orders stay."),
    "form_class": RecipeDialogForm,
    "form_submit_text": _("Retire"),
}
UNRETIRE_DIALOG = {
    "title": _("Put this recipe back on sale"),
    "description": _("New packages take its newest published version again."),
    "form_class": RecipeDialogForm,
    "form_submit_text": _("Put back on sale"),
}
PUBLISH_DIALOG = {
    "title": _("Publish this version"),
    "description": _(
        "Its definition is checked against the schema and the catalogue once more. Once published it never "
        "changes: packages and orders name it. A change is a new draft, cloned from it."
    ),
    "form_class": VersionDialogForm,
    "form_submit_text": _("Publish"),
}
CLONE_DIALOG = {
    "title": _("Clone into a new draft"),
    "description": _("The new draft starts as a copy of this version's definition. A recipe has one draft."),
    "form_class": CloneForm,
    "form_submit_text": _("Create the draft"),
}


def version_label(number) -> str:
    return "–" if number is None else f"v{number}"


class RecipeVersionInline(ScopedTabularInline):
    """The recipe's versions, newest first; each opens its own page."""

    model = RecipeVersion
    extra = 0
    can_delete = False
    hide_title = True
    ordering = ["-number"]
    fields = ["version", "status", "notes", "created_by", "created_at", "published_by", "published_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recipe", "created_by", "published_by")

    @display(description=_("version"))
    def version(self, version):
        url = reverse("admin:recipes_recipeversion_change", args=[version.pk])
        return format_html('<a href="{}" class="text-primary-600">v{}</a>', url, version.number)


@admin.register(Recipe)
class RecipeAdmin(MerchantOwnedAdmin):
    """A product a merchant sells. The product id never changes once created (machines put it in their
    orders); a recipe is retired, never deleted."""

    write_capability = Capability.MANAGE_RECIPES
    delete_capability = None
    list_display = ["recipe", "category", "price", "published", "draft", "is_retired", "updated_at"]
    list_select_related = ["merchant"]
    list_filter = ["is_retired", "category"]
    list_filter_submit = True
    search_fields = ["product_id", "name", "category"]
    search_help_text = _("Product id, name or category")
    fields = [
        "merchant",
        "product_id",
        "name",
        "category",
        "price",
        "is_retired",
        "retired_since",
        "created_at",
    ]
    readonly_fields = ["is_retired", "retired_since", "created_at"]
    inlines = [RecipeVersionInline]
    actions = ["retire_recipes", "unretire_recipes"]
    actions_detail = ["new_draft", "retire", "unretire"]

    def get_queryset(self, request):
        return selectors.with_version_summary(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "merchant", "product_id"] if obj else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def save_model(self, request, obj, form, change):
        values = {
            name: form.cleaned_data[name] for name in authoring.RECIPE_FIELDS if name in form.cleaned_data
        }
        if change:
            authoring.update_recipe(Recipe.objects.get(pk=obj.pk), **values)
        else:
            created = authoring.create_recipe(
                merchant=form.cleaned_data["merchant"], product_id=form.cleaned_data["product_id"], **values
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    def get_actions_detail(self, request, object_id):
        """Offer what fits: a new draft when there is none, retiring or putting back on sale."""
        actions = super().get_actions_detail(request, object_id)
        recipe = self.get_object(request, unquote(str(object_id))) if actions else None
        if recipe is None:
            return actions
        unfit = {"retire" if recipe.is_retired else "unretire"}
        if recipe.draft_version_id is not None:
            unfit.add("new_draft")
        return [a for a in actions if a.action_name.removeprefix("recipes_recipe_") not in unfit]

    # --- the list ---

    @display(description=_("recipe"), ordering="product_id", header=True)
    def recipe(self, recipe):
        return [recipe.name, recipe.product_id]

    @display(description=_("published"), ordering="published_version_number")
    def published(self, recipe):
        return version_label(recipe.published_version_number)

    @display(description=_("draft"), ordering="draft_version_number")
    def draft(self, recipe):
        return version_label(recipe.draft_version_number)

    @display(description=_("retired since"))
    def retired_since(self, recipe):
        return recipe.retired_at or "–"

    # --- the actions ---

    @admin.action(description=_("Retire the selected recipes"), permissions=["change"])
    def retire_recipes(self, request, queryset):
        for recipe in queryset:
            authoring.set_retired(recipe, True)

    @admin.action(description=_("Put the selected recipes back on sale"), permissions=["change"])
    def unretire_recipes(self, request, queryset):
        for recipe in queryset:
            authoring.set_retired(recipe, False)

    @action(description=_("New draft"), icon="edit_note", permissions=["change"])
    def new_draft(self, request, object_id):
        """The new version's page, for this recipe (a link: nothing is written until it is saved)."""
        recipe = self.object_for_action(request, object_id)
        return HttpResponseRedirect(f"{reverse('admin:recipes_recipeversion_add')}?recipe={recipe.pk}")

    @action(description=_("Retire"), icon="block", permissions=["change"], dialog=RETIRE_DIALOG)
    def retire(self, request, form, object_id):
        return self._set_retired(request, form, RETIRE_DIALOG, True)

    @action(description=_("Put back on sale"), icon="replay", permissions=["change"], dialog=UNRETIRE_DIALOG)
    def unretire(self, request, form, object_id):
        return self._set_retired(request, form, UNRETIRE_DIALOG, False)

    def _set_retired(self, request, form, dialog, retired: bool):
        done = _("%(recipe)s is retired.") if retired else _("%(recipe)s is on sale again.")
        return self.submit_dialog(
            request,
            form,
            dialog,
            lambda: authoring.set_retired(form.target, retired),
            lambda recipe: done % {"recipe": recipe},
        )


@admin.register(RecipeVersion)
class RecipeVersionAdmin(ScopedModelAdmin):
    """A draft's definition is edited here as JSON, its errors shown on the field; the diff against the
    previous published version is under the form. A published version's page is read-only."""

    form = RecipeVersionForm
    write_capability = Capability.MANAGE_RECIPES
    delete_capability = None
    list_display = ["version", "status_label", "notes", "created_by", "created_at", "published_at"]
    list_select_related = ["recipe__merchant", "created_by"]
    list_filter = ["status", ("recipe__merchant", ScopedRelatedFilter)]
    list_filter_submit = True
    search_fields = ["recipe__product_id", "recipe__name"]
    search_help_text = _("Product id or recipe name")
    ordering = ["recipe__product_id", "-number"]
    change_form_outer_after_template = "admin/recipes/recipeversion/diff.html"
    fields = [
        "recipe",
        "number",
        "status",
        "definition",
        "notes",
        "cloned_from",
        "created_by",
        "created_at",
        "published_by",
        "published_at",
    ]
    readonly_fields = [
        "number",
        "status",
        "cloned_from",
        "created_by",
        "created_at",
        "published_by",
        "published_at",
    ]
    actions_detail = ["publish", "clone"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recipe__merchant", "created_by", "published_by")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["recipe", "definition", "notes"]
        if not self.has_change_permission(request, obj):
            return [("definition_text" if name == "definition" else name) for name in self.fields]
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "recipe", "definition_text"] if obj else []

    def has_change_permission(self, request, obj=None):
        is_published = isinstance(obj, RecipeVersion) and obj.is_published
        return super().has_change_permission(request, obj) and not is_published

    def has_authoring_permission(self, request, obj=None):
        """Publishing and cloning are allowed whatever the version's own page allows (a published one)."""
        return self.has_capability(request, Capability.MANAGE_RECIPES)

    def get_actions_detail(self, request, object_id):
        """Publish a draft; clone a published version when its recipe has no draft."""
        actions = super().get_actions_detail(request, object_id)
        version = self.get_object(request, unquote(str(object_id))) if actions else None
        if version is None:
            return actions
        unfit = {"publish"} if version.is_published else {"clone"}
        if (
            version.is_published
            and version.recipe.versions.filter(status=RecipeVersion.Status.DRAFT).exists()
        ):
            unfit.add("clone")
        return [a for a in actions if a.action_name.removeprefix("recipes_recipeversion_") not in unfit]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """A rule the form could not see coming (published, or a second draft, a moment ago) is a message
        on the page, not an error page."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(request.get_full_path())

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            previous, diff = selectors.definition_diff(obj)
            context.update(
                {"previous_version": previous, "diff_lines": diff_lines(diff), "recipe_version": obj}
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            authoring.update_draft(
                RecipeVersion.objects.get(pk=obj.pk), definition=data["definition"], notes=data["notes"]
            )
        else:
            created = authoring.create_draft(
                data["recipe"], definition=data["definition"], notes=data["notes"], user=request.user
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    # --- the list ---

    @display(description=_("version"), ordering="number", header=True)
    def version(self, version):
        return [f"{version.recipe.name} v{version.number}", version.recipe.product_id]

    @display(description=_("status"), ordering="status", label=STATUS_COLOURS)
    def status_label(self, version):
        return version.status, version.get_status_display()

    @display(description=_("definition"))
    def definition_text(self, version):
        return format_html(
            '<pre class="text-xs overflow-x-auto">{}</pre>', selectors.pretty_definition(version.definition)
        )

    # --- the actions ---

    @action(description=_("Publish"), icon="publish", permissions=["authoring"], dialog=PUBLISH_DIALOG)
    def publish(self, request, form, object_id):
        return self.submit_dialog(
            request,
            form,
            PUBLISH_DIALOG,
            lambda: authoring.publish_version(form.target, user=request.user),
            lambda version: _("%(version)s is published.") % {"version": version},
        )

    @action(
        description=_("Clone into a new draft"),
        icon="content_copy",
        permissions=["authoring"],
        dialog=CLONE_DIALOG,
    )
    def clone(self, request, form, object_id):
        source = form.target
        try:
            draft = authoring.create_draft(
                source.recipe, clone_from=source, notes=form.cleaned_data["notes"], user=request.user
            )
        except DomainError as error:
            form.add_service_error(error)
            return form.dialog_response(request, CLONE_DIALOG)
        messages.success(
            request,
            _("%(draft)s is a new draft, cloned from v%(number)d.")
            % {"draft": draft, "number": source.number},
        )
        return self.back_to_change_page(request, draft)


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines, each with its kind for the page's colours: added, removed, hunk or same."""
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "added"
        elif line.startswith("-"):
            kind = "removed"
        else:
            kind = "same"
        lines.append((kind, line))
    return lines
