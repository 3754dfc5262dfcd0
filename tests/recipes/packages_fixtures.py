"""Published recipe versions made with the ORM, as the authoring services would leave them, and the
protocol's package example; for the tests of recipe packages."""

import json
import re
from decimal import Decimal
from pathlib import Path

from django.test import Client
from django.utils import timezone

from recipes.models import Recipe, RecipePackage, RecipeVersion

ROOT = Path(__file__).resolve().parents[2]

LATTE_STEPS = [
    {"action": "grind", "material": "BEAN-ARABICA", "amount": 18, "unit": "g"},
    {"action": "brew", "water_ml": 40, "temperature_c": 93},
    {"action": "add", "material": "MILK-POWDER", "amount": 12, "unit": "g"},
    {"action": "pour", "water_ml": 180},
]


def recipe_version(
    merchant,
    product_id="latte",
    *,
    number=1,
    name=None,
    price="18.00",
    steps=None,
    published=True,
    retired=False,
) -> RecipeVersion:
    """Version `number` of the merchant's recipe `product_id` (the recipe made on first use)."""
    recipe, _created = Recipe.objects.get_or_create(
        merchant=merchant,
        product_id=product_id,
        defaults={"name": name or product_id.replace("-", " ").title(), "price": Decimal(price)},
    )
    if retired and not recipe.is_retired:
        Recipe.objects.filter(pk=recipe.pk).update(is_retired=True, retired_at=timezone.now())
    return RecipeVersion.objects.create(
        recipe=recipe,
        number=number,
        status=RecipeVersion.Status.PUBLISHED if published else RecipeVersion.Status.DRAFT,
        published_at=timezone.now() if published else None,
        definition={"steps": steps or LATTE_STEPS},
    )


def many_published_versions(merchant, count: int) -> list[RecipeVersion]:
    """`count` recipes of `merchant`, each with one published version, in two bulk inserts."""
    recipes = Recipe.objects.bulk_create(
        Recipe(merchant=merchant, product_id=f"drink-{n:04d}", name=f"Drink {n}", price=Decimal("12.50"))
        for n in range(count)
    )
    now = timezone.now()
    return RecipeVersion.objects.bulk_create(
        RecipeVersion(
            recipe=recipe, number=1, status=RecipeVersion.Status.PUBLISHED, published_at=now,
            definition={"steps": LATTE_STEPS},
        )
        for recipe in recipes
    )  # fmt: skip


def protocol_package_example() -> dict:
    """The package of docs/protocol.md's "Recipe packages" section, parsed."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Recipe packages", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))


def stored_bytes(package: RecipePackage) -> bytes:
    package.refresh_from_db()
    with package.file.open("rb") as stored:
        return stored.read()


def signed_in(user, **client_options) -> Client:
    """An admin client signed in as `user` (force_login: axes refuses login()), with `.user`."""
    client = Client(**client_options)
    client.force_login(user)
    client.user = user
    return client
