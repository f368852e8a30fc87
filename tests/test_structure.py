"""The house's size rules, read from the code (ast, no importing): rooms under 600 lines, functions that hold
one job each under ~80 lines, no mixins, and UI tabs that reach the service only through ``Actions`` (whose
``user_facing`` wrapper turns every failure into one sentence for the page)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "models", "indexing", "checkpoints", "training")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return [p for top in PACKAGES for p in sorted((ROOT / top).rglob("*.py"))]


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None
    ]


def _long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [f"{path.relative_to(ROOT)} {name} ({lines} lines)" for name, lines in _functions(path) if lines > limit]


def test_every_module_is_a_room_of_one_job():
    big = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, "modules past 600 lines: " + ", ".join(big)


def test_no_function_holds_several_jobs():
    long = [line for p in _modules() for line in _long_functions(p)]
    assert not long, "functions past 80 lines: " + "; ".join(long)


def test_the_length_rule_sees_long_functions(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * 90 + "\n\ndef g():\n    return 1\n")
    assert [name for name, lines in _functions(tmp_path / "m.py") if lines > MAX_FUNCTION_LINES] == ["f"]


def test_no_mixins_anywhere():
    mixins = [
        f"{p.relative_to(ROOT)}:{n.lineno} {n.name}"
        for p in _modules()
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(n, ast.ClassDef) and n.name.endswith("Mixin")
    ]
    assert not mixins


@pytest.mark.parametrize("tab", sorted((ROOT / "app" / "ui").glob("*_tab.py")), ids=lambda p: p.name)
def test_tabs_reach_the_service_only_through_actions(tab):
    reaches = [
        f"{tab.name}:{node.lineno}"
        for node in ast.walk(ast.parse(tab.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "service"
    ]
    assert not reaches
