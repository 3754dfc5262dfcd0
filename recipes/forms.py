"""The recipe admin's forms: a version's definition edited as JSON with the schema's errors on the field,
and the dialogs of the recipe and version pages. Shape only: what is wrong with a definition, and whether
a version may still change, is `recipes.services.authoring`'s to say."""

import json

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminTextareaWidget

from coffeeshop.api.parsers import MAX_JSON_DEPTH, nesting_depth
from coffeeshop.exceptions import DomainError
from operations.forms import ServiceDialogForm
from recipes import selectors
from recipes.models import RecipeVersion
from recipes.services import authoring

EXAMPLE_STEPS = (
    '{"steps": [{"action": "grind", "material": "BEAN-ARABICA", "amount": 18, "unit": "g"}, '
    '{"action": "brew", "water_ml": 40, "temperature_c": 93}, '
    '{"action": "add", "material": "MILK-POWDER", "amount": 12, "unit": "g"}, '
    '{"action": "pour", "water_ml": 180}]}'
)


class DefinitionField(forms.JSONField):
    """JSON in a textarea, shown indented; text nested deeper than the API accepts is refused before it is
    parsed (a parser thousands of levels deep runs out of stack)."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)

    def to_python(self, value):
        if isinstance(value, str) and nesting_depth(value) > MAX_JSON_DEPTH:
            raise forms.ValidationError(
                _("Nested deeper than %(depth)d levels.") % {"depth": MAX_JSON_DEPTH}, code="invalid"
            )
        return super().to_python(value)


def pointed(pointer: str, message: str) -> str:
    return f"{pointer}: {message}" if pointer else message


class RecipeVersionForm(forms.ModelForm):
    """A draft's page (or a new draft's): each error of the definition under the field, with its pointer."""

    definition = DefinitionField(
        label=_("Definition"),
        widget=UnfoldAdminTextareaWidget(
            attrs={"rows": 24, "spellcheck": "false", "style": "font-family: ui-monospace, monospace"}
        ),
        help_text=format_lazy(
            _(
                "The steps as JSON; each error names its place by JSON pointer (/steps/0/amount). Actions: "
                "grind and add (material, amount, unit), brew (water_ml, temperature_c), pour (water_ml). "
                "Every material must be enabled in the catalogue. For example: {example}"
            ),
            example=EXAMPLE_STEPS,
        ),
    )

    class Meta:
        model = RecipeVersion
        fields = ["recipe", "definition", "notes"]
        widgets = {"notes": UnfoldAdminTextareaWidget(attrs={"rows": 3})}

    def clean(self):
        cleaned = super().clean()
        recipe = cleaned.get("recipe") if "recipe" in self.fields else self.instance.recipe
        refusal = authoring.second_draft_refusal(recipe) if recipe and not self.instance.pk else None
        if refusal is not None:
            self.add_error("recipe", refusal.message)
        if recipe is not None and "definition" in cleaned:
            for pointer, messages in authoring.definition_errors(
                recipe.merchant_id, cleaned["definition"]
            ).items():
                for message in messages:
                    self.add_error("definition", pointed(pointer, message))
        return cleaned


class RecipeDialogForm(ServiceDialogForm):
    def target_queryset(self, user):
        return selectors.recipes_for(user)


class VersionDialogForm(ServiceDialogForm):
    def target_queryset(self, user):
        return selectors.versions_for(user)

    def add_service_error(self, error: DomainError) -> None:
        """A definition's errors above the dialog, each with its pointer (`definition/steps/0/material`)."""
        fields = error.details.get("fields") or {}
        for name, messages in fields.items():
            pointer = name.removeprefix(authoring.DEFINITION_FIELD)
            for message in messages:
                self.add_error(None, pointed(pointer, message))
        if not fields:
            self.add_error(None, error.message)


class CloneForm(VersionDialogForm):
    notes = forms.CharField(
        label=_("Notes"),
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text=_("Optional: what the new draft is for."),
    )
