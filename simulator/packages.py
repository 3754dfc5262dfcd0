"""Recipe packages as a machine sees them (protocol: Recipe packages): the offer of one (`PackageOffer`,
from a heartbeat reply's `desired_package` or an `upgrade` command), the checks its bytes must pass
before it is installed (`read_package`), what an installed one holds (`InstalledPackage`: the menu the
machine then sells, each drink made by its recipe's steps), and when a failed one is tried again
(`FailedInstall`, `retry_delay_s`)."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from simulator.errors import ProtocolViolation
from simulator.physics import WATER_MATERIAL
from simulator.sales import MENU_BY_ID, Product

# The steps a package's recipes may take, and what each takes from the bins: grind and add draw their
# material, brew and pour draw water (from the machine's WATER bin, if it has one).
MATERIAL_ACTIONS = frozenset({"grind", "add"})
WATER_ACTIONS = frozenset({"brew", "pour"})
# A package says nothing about how popular a drink is: one the built-in menu knows keeps its share of
# sales, any other sells as often as an average built-in drink.
UNKNOWN_PRODUCT_WEIGHT = sum(product.weight for product in MENU_BY_ID.values()) / len(MENU_BY_ID)
# A failed install is tried again after this many heartbeat intervals, doubling with each failure of
# the same package (times 1 to 1.5, so a fleet does not come back at once), up to the cap.
RETRY_FIRST_INTERVALS = 2.0
RETRY_CAP_INTERVALS = 64.0


class PackageRefused(ValueError):
    """The downloaded bytes are not the package offered (size, SHA-256) or not a package the machine can
    run (not the protocol's format): it is not installed, and the machine keeps the one it has."""


@dataclass(frozen=True)
class PackageOffer:
    """A package the server wants the machine to run: where to get it and what its bytes must be.

    `size` is None for an `upgrade` command, whose payload does not carry it.
    """

    package_id: str
    version: str
    url: str
    sha256: str
    size: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.package_id, self.version, self.sha256

    @classmethod
    def desired(cls, data: dict[str, Any]) -> PackageOffer:
        """A heartbeat reply's `desired_package`; a field missing or mistyped is a ProtocolViolation."""
        fields = {"package_id": str, "version": str, "url": str, "sha256": str, "size": int}
        for name, kind in fields.items():
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool) or value == "":
                raise ProtocolViolation(f"desired_package.{name} missing or not {kind.__name__}")
        return cls(data["package_id"], data["version"], data["url"], data["sha256"].lower(), data["size"])

    @classmethod
    def commanded(cls, payload: dict[str, Any]) -> PackageOffer:
        """An `upgrade` command's payload (already checked against PAYLOAD_FIELDS)."""
        return cls(payload["package_id"], payload["version"], payload["url"], payload["sha256"].lower())


@dataclass(frozen=True)
class InstalledPackage:
    """A package the machine runs: its recipes, as the products it sells (`menu`)."""

    package_id: str
    version: str
    sha256: str
    menu: tuple[Product, ...]


@dataclass(frozen=True)
class FailedInstall:
    """A package that failed to install: how often in a row, what went wrong last, and from when (on the
    machine's monotonic clock) the machine tries it again when the server still offers it."""

    failures: int
    error: str
    retry_at: float


def retry_delay_s(failures: int, interval_s: float, rng: random.Random) -> float:
    """Seconds until a package that failed `failures` times in a row is tried again."""
    intervals = min(RETRY_CAP_INTERVALS, RETRY_FIRST_INTERVALS * 2 ** (failures - 1))
    return intervals * interval_s * rng.uniform(1.0, 1.5)


def read_package(content: bytes, offer: PackageOffer) -> InstalledPackage:
    """The package in `content`, if its bytes are the ones offered and it is the protocol's format."""
    if offer.size is not None and len(content) != offer.size:
        raise PackageRefused(f"the package is {len(content)} bytes, not the {offer.size} offered")
    digest = hashlib.sha256(content).hexdigest()
    if digest != offer.sha256:
        raise PackageRefused(f"the package's SHA-256 is {digest}, not {offer.sha256}")
    try:
        package = json.loads(content)
    except ValueError as error:
        raise PackageRefused(f"the package is not JSON: {error}") from error
    if not isinstance(package, dict):
        raise PackageRefused("the package is not a JSON object")
    for name in ("package_id", "version"):
        if package.get(name) != getattr(offer, name):
            raise PackageRefused(
                f"the package's {name} is {package.get(name)!r}, not {getattr(offer, name)!r}"
            )
    recipes = package.get("recipes")
    if not isinstance(recipes, list):
        raise PackageRefused("recipes: not a list")
    menu = tuple(_product(recipe, f"recipes.{position}") for position, recipe in enumerate(recipes))
    seen: set[str] = set()
    for position, product in enumerate(menu):
        if product.product_id in seen:
            raise PackageRefused(f"recipes.{position}.product_id: {product.product_id!r} appears twice")
        seen.add(product.product_id)
    return InstalledPackage(offer.package_id, offer.version, offer.sha256, menu)


def _product(recipe: Any, where: str) -> Product:
    """One recipe as a product on the menu: its price, its version and what one cup takes."""
    if not isinstance(recipe, dict):
        raise PackageRefused(f"{where}: not an object")
    for name in ("product_id", "name", "recipe_version", "price"):
        if not isinstance(recipe.get(name), str) or not recipe[name]:
            raise PackageRefused(f"{where}.{name}: missing or not a string")
    try:
        price = Decimal(recipe["price"])
    except InvalidOperation as error:
        raise PackageRefused(f"{where}.price: {recipe['price']!r} is not money") from error
    if not price.is_finite() or price < 0:
        raise PackageRefused(f"{where}.price: {recipe['price']!r} is not money")
    steps = recipe.get("steps")
    if not isinstance(steps, list) or not steps:
        raise PackageRefused(f"{where}.steps: not a list of steps")
    known = MENU_BY_ID.get(recipe["product_id"])
    return Product(
        recipe["product_id"],
        recipe["name"],
        price,
        known.weight if known else UNKNOWN_PRODUCT_WEIGHT,
        recipe["recipe_version"],
        cup_materials(steps, f"{where}.steps"),
        takes_options=False,
    )


def cup_materials(steps: list[Any], where: str = "steps") -> dict[str, float]:
    """What one cup made by `steps` takes from the bins, by material code."""
    materials: dict[str, float] = {}
    for position, step in enumerate(steps):
        action = step.get("action") if isinstance(step, dict) else None
        if action in MATERIAL_ACTIONS:
            material, amount = step.get("material"), _amount(step, "amount", f"{where}.{position}")
            if not isinstance(material, str) or not material:
                raise PackageRefused(f"{where}.{position}.material: missing or not a string")
        elif action in WATER_ACTIONS:
            material, amount = WATER_MATERIAL, _amount(step, "water_ml", f"{where}.{position}")
        else:
            raise PackageRefused(f"{where}.{position}.action: {action!r} is not a step this machine knows")
        materials[material] = materials.get(material, 0.0) + amount
    return materials


def _amount(step: dict[str, Any], name: str, where: str) -> float:
    value = step.get(name)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise PackageRefused(f"{where}.{name}: missing or not a positive number")
    return float(value)
