"""The layering the architecture rests on: no service imports another, `shared/` never imports a
service, and the domain core imports nothing but itself and the standard library's neighbours."""

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
