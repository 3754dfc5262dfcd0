"""The house's floor plan, checked: rooms small enough to read, each app owning its admin pages, no
model reached around an import, and imports that flow one way (no cycle, local imports included)."""

import ast
from pathlib import Path

import pytest
from django.contrib import admin

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "accounts",
    "audit",
    "coffeeshop",
    "devices",
    "inventory",
    "operations",
    "orders",
    "recipes",
    "simulator",
]
OUR_APPS = {"accounts", "audit", "coffeeshop", "devices", "inventory", "operations", "orders", "recipes"}
MAX_LINES = 600


def source_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.relative_to(ROOT).parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports, at the top or inside a function."""
    paths = {module_name(path): path for path in source_files()}

    def known(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else known(base))
        graph[name] = edges - {None, name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_outside_bench_tests_and_migrations_passes_600_lines():
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in source_files()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert too_long == {}


def test_no_import_cycle_between_modules_local_imports_included():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_local_import():
    assert cycles({"a.services": {"a.tasks"}, "a.tasks": {"a.services"}, "b": set()}) == [
        ["a.services", "a.tasks"]
    ]


def test_services_never_import_tasks():
    graph = import_graph()
    offenders = {
        module: sorted(other for other in imported if other.endswith(".tasks"))
        for module, imported in graph.items()
        if ".services" in module and any(other.endswith(".tasks") for other in imported)
    }
    assert offenders == {}


def test_lower_apps_never_import_the_apps_that_build_on_them():
    """accounts and audit are the ground floor, devices stands on them; none imports a higher app."""
    higher = {
        "accounts": {"devices", "inventory", "orders", "recipes", "operations"},
        "audit": {"devices", "inventory", "orders", "recipes", "operations"},
        "devices": {"inventory", "orders", "recipes", "operations"},
    }
    offenders = {
        module: sorted(imported)
        for module, edges in import_graph().items()
        if (
            imported := {
                other for other in edges if other.split(".")[0] in higher.get(module.split(".")[0], ())
            }
        )
    }
    assert offenders == {}


def test_no_model_is_reached_through_apps_get_model_outside_migrations():
    """A migration helper handed the historical `apps` may ask it; nothing may import Django's registry
    to dodge an import."""
    offenders = []
    for path in source_files():
        tree = ast.parse(path.read_text())
        imports_registry = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "django.apps"
            and any(a.name == "apps" for a in node.names)
            for node in ast.walk(tree)
        )
        calls_get_model = any(
            isinstance(node, ast.Attribute) and node.attr == "get_model" for node in ast.walk(tree)
        )
        if imports_registry and calls_get_model:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("app_label", sorted(OUR_APPS))
def test_each_app_owns_the_admin_pages_of_its_models(app_label):
    pages = {
        model._meta.label: type(model_admin).__module__.split(".")[0]
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == app_label
    }
    assert pages == {label: app_label for label in pages}
