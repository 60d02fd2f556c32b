"""The import rules of docs/architecture.md, checked on the source (no module is imported)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

WEB = ("fastapi", "starlette", "uvicorn")
# Where the web framework may be imported: the app factory, the HTTP layer and the CLI.
HTTP_LAYER = (
    "app.main",
    "app.routers",
    "app.deps",
    "app.problems",
    "app.middleware",
    "app.connections",
    "app.cli",
)
ABOVE_SERVICES = ("app.routers", "app.deps", "app.state", "app.main", "app.cli", "app.demo")
STORES = (
    "app.errors",
    "app.layout",
    "app.settings",
    "app.limits",
    "app.database",
    "app.model_index",
    "app.tokenizers",
    "app.registry",
    "app.corpora",
    "app.archive",
    "app.tar_stream",
)


def imports_of_every_module() -> dict[str, set[str]]:
    """Module name → the modules it imports (``from x import y`` counts as ``x``)."""
    found: dict[str, set[str]] = {}
    for package in ("app", "models"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            targets: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets.add(node.module)
                elif isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
            found[name] = targets
    return found


IMPORTS = imports_of_every_module()


def within(module: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(module == package or module.startswith(package + ".") for package in packages)


def offending(importers: tuple[str, ...] | str, forbidden: tuple[str, ...] | str) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if within(module, importers)
        for target in targets
        if within(target, forbidden)
    )


def test_the_source_tree_is_read():
    assert "app.registry" in IMPORTS
    assert "models.lm" in IMPORTS
    assert "app.registry" in IMPORTS["app.jobs.publishing"]


def test_models_imports_nothing_of_the_service_nor_of_the_web():
    assert offending("models", ("app", "pydantic", *WEB)) == []


@pytest.mark.parametrize(
    "module", sorted(module for module in IMPORTS if not within(module, HTTP_LAYER))
)
def test_only_the_http_layer_imports_the_web_framework(module):
    assert [target for target in IMPORTS[module] if within(target, WEB)] == []


def test_services_never_reach_up_to_the_http_layer():
    assert offending("app.services", ABOVE_SERVICES) == []


def test_jobs_run_what_services_prepared_and_never_import_them():
    assert offending("app.jobs", ("app.services", "app.schemas", *ABOVE_SERVICES)) == []


def test_stores_know_nothing_of_requests_jobs_or_services():
    forbidden = ("app.schemas", "app.services", "app.jobs", "app.inline", *ABOVE_SERVICES)
    assert offending(STORES, forbidden) == []


def test_the_layout_is_the_only_module_naming_the_data_dir_files():
    # A path joined by hand (`data_dir / "models"`) is what this rule is about.
    names = ("registry.sqlite3", '/ "models"', '/ "jobs"', '/ "corpora"', '/ "cache"')
    for path in sorted((REPO_ROOT / "app").rglob("*.py")):
        if path.name == "layout.py":
            continue
        source = path.read_text(encoding="utf-8")
        assert [name for name in names if name in source] == [], path


def test_the_architecture_document_names_every_package_it_rules():
    document = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for package in ("app/routers", "app/services", "app/jobs", "app/schemas", "models/"):
        assert package in document
