"""The layering the architecture rests on: no service imports another, `shared/` never imports a
service, and the domain core imports nothing but itself and the standard library's neighbours.
The tools sit on top, each over the ones below it: deploy/ (the local stack) over shared/, the
simulator over deploy/, the benchmarks over all of them. Below means imported; a process started by
module name (`python -m services.intake`) is no import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):  # imports inside functions count too
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


SERVICES = sorted(p.name for p in (REPO / "services").iterdir() if p.is_dir() and (p / "__init__.py").exists())


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = {f"services.{name}" for name in SERVICES if name != service}
    offenders = {
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "services" / service).rglob("*.py")
        for module in imported_modules(path)
        if any(module == other or module.startswith(other + ".") for other in others)
    }
    assert not offenders, sorted(offenders)


def test_shared_never_imports_a_service() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "shared").rglob("*.py")
        for module in imported_modules(path)
        if module == "services" or module.startswith("services.")
    }
    assert not offenders, sorted(offenders)


def test_the_domain_core_does_no_io_through_the_frameworks() -> None:
    frameworks = ("fastapi", "aiokafka", "motor", "pymongo", "httpx", "prometheus_client", "services")
    offenders = {
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "shared" / "domain").rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in frameworks or module.startswith("shared.") and not module.startswith("shared.domain")
    }
    assert not offenders, sorted(offenders)


PACKAGES = ("services", "shared", "deploy", "simulator", "bench", "tests")
# What each tool package may import of the project: the tools below it, never one above.
MAY_IMPORT = {
    "shared": {"shared"},
    "deploy": {"shared", "deploy"},
    "simulator": {"shared", "deploy", "simulator"},
    "bench": {"services", "shared", "deploy", "simulator", "bench"},
}


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_each_tool_imports_only_the_layers_below_it(package: str) -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / package).rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in PACKAGES and module.split(".")[0] not in MAY_IMPORT[package]
    }
    assert not offenders, sorted(offenders)


def test_the_services_import_no_tool() -> None:
    tools = ("deploy", "simulator", "bench", "tests")
    offenders = {
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "services").rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in tools
    }
    assert not offenders, sorted(offenders)
