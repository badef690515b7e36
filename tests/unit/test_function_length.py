"""No function in services/ or shared/ longer than about a screen: one a reader can hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "shared")
MAX_LINES = 60  # a screen, with its docstring


def long_functions(root: Path, packages: tuple[str, ...] = PACKAGES, limit: int = MAX_LINES) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > limit:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_longer_than_a_screen() -> None:
    assert long_functions(ROOT) == []


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "long.py").write_text(f"def long():\n{body}\n")
    assert long_functions(tmp_path, ("shared",)) == [f"shared/long.py:1 long ({MAX_LINES + 1} lines)"]
