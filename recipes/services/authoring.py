"""Every write to recipes and their versions that carries a rule; the admin and the API share them.

A draft may change until it is published; a published version never does (orders name the version
they were brewed by, packages carry it), and a change to it is a new draft, cloned from it. A recipe has
at most one draft. A definition is checked against the JSON Schema in `recipes/schema/` and the
merchant's catalogue whenever it is written and again when it is published (a material may have been
disabled meanwhile); its errors are named by JSON pointer into the definition (`/steps/0/amount`),
and in the API's field errors by `definition` followed by that pointer (`definition/steps/0/amount`).
"""

import copy
import math
from collections.abc import Iterator
from functools import cache

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from jsonschema import Draft202012Validator

from accounts.models import Merchant
from audit import services as audit
from coffeeshop.exceptions import Conflict, Invalid, unique_or_conflict
from recipes import selectors
from recipes.models import Recipe, RecipeVersion

RECIPE_FIELDS = ("name", "category", "price")
DEFINITION_FIELD = "definition"

# --- The definition: the schema's errors and the catalogue's, by JSON pointer ----------------------------


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(selectors.definition_schema())


def _pointer(path) -> str:
    """RFC 6901: `/steps/0/amount`; "" is the whole definition."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


TYPE_NAMES = {
    "object": gettext_lazy("an object"),
    "array": gettext_lazy("a list"),
    "string": gettext_lazy("a string"),
    "number": gettext_lazy("a number"),
    "integer": gettext_lazy("a whole number"),
    "boolean": gettext_lazy("true or false"),
}


def _schema_errors(error) -> Iterator[tuple[list, str]]:
    """One jsonschema error as (path, message) pairs, in words a person reads; a missing or unexpected
    field is named by its own pointer rather than its object's."""
    path, limit, kind = list(error.absolute_path), error.validator_value, error.validator
    if kind == "required":
        for name in limit:
            if isinstance(error.instance, dict) and name not in error.instance:
                yield [*path, name], _("is required")
    elif kind == "additionalProperties":
        known = error.schema.get("properties", {})
        action = error.instance.get("action") if isinstance(error.instance.get("action"), str) else None
        for name in error.instance:
            if name not in known:
                yield (
                    [*path, name],
                    (
                        _("is not a field of a %(action)s step") % {"action": action}
                        if action
                        else _("is not a field of a recipe definition")
                    ),
                )
    elif kind == "type":
        yield path, _("must be %(type)s") % {"type": TYPE_NAMES.get(limit, limit)}
    elif kind == "enum":
        yield path, _("must be one of %(choices)s") % {"choices": ", ".join(map(str, limit))}
    elif kind in LIMIT_MESSAGES:
        yield path, LIMIT_MESSAGES[kind](limit)
    else:
        yield path, error.message


LIMIT_MESSAGES = {
    "exclusiveMinimum": lambda limit: _("must be more than %(limit)s") % {"limit": limit},
    "minimum": lambda limit: _("must be at least %(limit)s") % {"limit": limit},
    "maximum": lambda limit: _("must be at most %(limit)s") % {"limit": limit},
    "exclusiveMaximum": lambda limit: _("must be less than %(limit)s") % {"limit": limit},
    "minItems": lambda limit: (
        ngettext("must hold at least %(limit)d item", "must hold at least %(limit)d items", limit)
        % {"limit": limit}
    ),
    "maxItems": lambda limit: (
        ngettext("must hold at most %(limit)d item", "must hold at most %(limit)d items", limit)
        % {"limit": limit}
    ),
    "minLength": lambda limit: (
        _("must not be empty")
        if limit == 1
        else ngettext(
            "must be at least %(limit)d character long", "must be at least %(limit)d characters long", limit
        )
        % {"limit": limit}
    ),
    "maxLength": lambda limit: (
        ngettext(
            "must be at most %(limit)d character long", "must be at most %(limit)d characters long", limit
        )
        % {"limit": limit}
    ),
}


def _non_finite_numbers(value, path=()) -> Iterator[list]:
    """NaN passes every bound of the schema (it compares false with all of them) and no database's
    JSON holds it; the admin's JSON parser reads it, the API's does not."""
    if isinstance(value, float) and not math.isfinite(value):
        yield list(path)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _non_finite_numbers(item, (*path, key))


def _material_errors(merchant_id: int, definition) -> Iterator[tuple[list, str]]:
    """Every material a step names must be an enabled material of the merchant's own catalogue."""
    steps = definition.get("steps") if isinstance(definition, dict) else None
    named = [
        (index, step["material"])
        for index, step in enumerate(steps if isinstance(steps, list) else [])
        if isinstance(step, dict) and isinstance(step.get("material"), str) and step["material"]
    ]
    states = selectors.material_states(merchant_id, {code for _index, code in named})
    for index, code in named:
        if code not in states:
            yield (
                ["steps", index, "material"],
                _("%(code)s is not in the merchant's catalogue") % {"code": code},
            )
        elif not states[code]:
            yield ["steps", index, "material"], _("%(code)s is disabled in the catalogue") % {"code": code}


def _path_order(path: list) -> list:
    return [(0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in path]


def definition_errors(merchant_id: int, definition) -> dict[str, list[str]]:
    """What is wrong with `definition` for this merchant, `{pointer: [message, ...]}` in the order of the
    definition (step 0 before step 1); empty when it may be published."""
    found: list[tuple[list, str]] = []
    for error in _validator().iter_errors(definition):
        found.extend(_schema_errors(error))
    found.extend((path, _("must be a finite number")) for path in _non_finite_numbers(definition))
    found.extend(_material_errors(merchant_id, definition))
    errors: dict[str, list[str]] = {}
    for path, message in sorted(found, key=lambda item: _path_order(item[0])):
        messages = errors.setdefault(_pointer(path), [])
        if message not in messages:
            messages.append(message)
    return errors


def check_definition(merchant_id: int, definition) -> None:
    """Invalid (400) naming each error as `definition` + its pointer, unless the definition is good."""
    errors = definition_errors(merchant_id, definition)
    if not errors:
        return
    fields = {f"{DEFINITION_FIELD}{pointer}": messages for pointer, messages in errors.items()}
    if len(fields) == 1:
        name, messages = next(iter(fields.items()))
        message = f"{name}: {messages[0]}"
    else:
        message = ngettext(
            "The definition has %(count)d error.", "The definition has %(count)d errors.", len(fields)
        ) % {"count": len(fields)}
    raise Invalid(message, details={"fields": fields})


# --- Recipes ---------------------------------------------------------------------------------------------


def _checked(recipe: Recipe) -> None:
    """The model's own rules (lengths, a price of at least 0), as field errors; uniqueness is the
    database's."""
    try:
        recipe.full_clean(exclude=["merchant"], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        fields = {name: [str(m) for m in messages] for name, messages in error.message_dict.items()}
        raise Invalid(_("The recipe is not valid."), details={"fields": fields}) from None


def _only_recipe_fields(fields: dict) -> None:
    unknown = set(fields) - set(RECIPE_FIELDS)
    if unknown:
        raise ValueError(f"not a recipe field one may set: {sorted(unknown)}")


@transaction.atomic
def create_recipe(*, merchant: Merchant, product_id: str, **fields) -> Recipe:
    _only_recipe_fields(fields)
    recipe = Recipe(merchant=merchant, product_id=product_id, **fields)
    _checked(recipe)
    with unique_or_conflict("product_id", _("This merchant already has a recipe for this product id.")):
        recipe.save()
    audit.record(
        "recipe.created",
        recipe,
        changes={"product_id": product_id, **{k: audit.as_text(v) for k, v in fields.items()}},
    )
    return recipe


@transaction.atomic
def update_recipe(recipe: Recipe, **changes) -> Recipe:
    """Change name, category or price. Not the product id: machines put it in their orders, and the
    orders sold under the old one would lose their recipe."""
    if changes.pop("product_id", recipe.product_id) != recipe.product_id:
        message = _("The product id of a recipe cannot change: machines put it in their orders.")
        raise Invalid(message, details={"fields": {"product_id": [message]}})
    _only_recipe_fields(changes)
    stored = Recipe.objects.select_for_update().get(pk=recipe.pk)
    candidate = copy.copy(stored)
    for field, value in changes.items():
        setattr(candidate, field, value)
    _checked(candidate)
    changed = audit.save_changes(stored, changes)
    if changed:
        audit.record("recipe.updated", stored, changes=changed)
    return stored


@transaction.atomic
def set_retired(recipe: Recipe, retired: bool) -> Recipe:
    """A retired recipe is no longer sold: new packages leave it out. Its versions stay, as do the orders
    and packages that name them; un-retiring puts it back on sale."""
    recipe = Recipe.objects.select_for_update().get(pk=recipe.pk)
    if recipe.is_retired != retired:
        values = {"is_retired": retired, "retired_at": timezone.now() if retired else None}
        audit.save_changes(recipe, values, update_fields=[*values, "updated_at"])
        audit.record("recipe.retired" if retired else "recipe.unretired", recipe)
    return recipe


# --- Versions --------------------------------------------------------------------------------------------


def _refuse_if_published(version: RecipeVersion) -> None:
    if version.is_published:
        raise Conflict(
            _("Version %(number)d is published and never changes: clone it into a new draft.")
            % {"number": version.number},
            details={"status": version.status},
        )


def second_draft_refusal(recipe: Recipe) -> Conflict | None:
    """The 409 a new draft of `recipe` meets while it has one (None when it has none): the admin's form
    shows it before anything is written."""
    draft = recipe.versions.filter(status=RecipeVersion.Status.DRAFT).first()
    if draft is None:
        return None
    return Conflict(
        _("This recipe already has a draft, version %(number)d: edit it, or publish it first.")
        % {"number": draft.number},
        details={"draft_version_id": draft.pk},
    )


@transaction.atomic
def create_draft(
    recipe: Recipe,
    *,
    definition=None,
    clone_from: RecipeVersion | None = None,
    notes: str = "",
    user=None,
) -> RecipeVersion:
    """The recipe's next version, a draft: the `definition` given (checked like any write of one), or a
    copy of `clone_from` (a version of the same recipe, copied as it is, so that a draft can be started
    from a version whose material has been disabled since, and fixed). A recipe with a draft already
    gets a 409: edit that one, or publish it first."""
    recipe = Recipe.objects.select_for_update().get(pk=recipe.pk)  # numbers and the one draft, in turn
    refusal = second_draft_refusal(recipe)
    if refusal is not None:
        raise refusal
    if clone_from is not None:
        if clone_from.recipe_id != recipe.pk:
            message = _("Not a version of this recipe.")
            raise Invalid(message, details={"fields": {"clone_from": [message]}})
        definition = copy.deepcopy(clone_from.definition)
    else:
        check_definition(recipe.merchant_id, definition)
    number = (recipe.versions.aggregate(last=Max("number"))["last"] or 0) + 1
    version = RecipeVersion(
        recipe=recipe,
        number=number,
        definition=definition,
        notes=notes,
        cloned_from=clone_from,
        created_by=user,
    )
    with unique_or_conflict("recipe", _("This recipe already has a draft.")):
        version.save()
    if clone_from is not None:
        audit.record(
            "recipe_version.cloned",
            version,
            changes={"from_version": clone_from.number},
            merchant_id=version.recipe.merchant_id,
        )
    else:
        audit.record("recipe_version.created", version, merchant_id=version.recipe.merchant_id)
    return version


UNCHANGED = object()


@transaction.atomic
def update_draft(version: RecipeVersion, *, definition=UNCHANGED, notes=UNCHANGED) -> RecipeVersion:
    """Change a draft's definition (checked) or notes; a published version is a 409."""
    version = RecipeVersion.objects.select_for_update().select_related("recipe").get(pk=version.pk)
    _refuse_if_published(version)
    changes = {}
    if definition is not UNCHANGED:
        check_definition(version.recipe.merchant_id, definition)
        if definition != version.definition:
            changes["definition"] = [
                selectors.pretty_definition(version.definition),
                selectors.pretty_definition(definition),
            ]
            version.definition = definition
    if notes is not UNCHANGED and notes != version.notes:
        changes["notes"] = [version.notes, notes]
        version.notes = notes
    if changes:
        version.save(update_fields=list(changes))
        audit.record(
            "recipe_version.updated", version, changes=changes, merchant_id=version.recipe.merchant_id
        )
    return version


@transaction.atomic
def publish_version(version: RecipeVersion, *, user=None) -> RecipeVersion:
    """Publish a draft, once its definition passes the schema and the catalogue as they are now. From then
    on it never changes; publishing it again is a 409."""
    version = RecipeVersion.objects.select_for_update().select_related("recipe").get(pk=version.pk)
    if version.is_published:
        raise Conflict(
            _("Version %(number)d is published already.") % {"number": version.number},
            details={"status": version.status},
        )
    check_definition(version.recipe.merchant_id, version.definition)
    version.status = RecipeVersion.Status.PUBLISHED
    version.published_at = timezone.now()
    version.published_by = user
    version.save(update_fields=["status", "published_at", "published_by"])
    audit.record("recipe_version.published", version, merchant_id=version.recipe.merchant_id)
    return version
