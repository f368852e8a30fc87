"""The layer rules, read from the code itself: every import of every module (ast, no importing).

``app`` -> ``training`` -> ``indexing`` | ``checkpoints`` -> ``models``: a module imports its own package or a
lower layer, never a higher one, and ``indexing`` and ``checkpoints`` (siblings) not each other. Imports inside
functions count (a lazy import is still a dependency), and so do ``if TYPE_CHECKING:`` blocks for circles (a
type-only circle still ties two modules together: one cannot be read or moved without the other); for the layer
order they do not (they never run). No two modules may import each other, directly or round a longer circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER = {"models": 0, "indexing": 1, "checkpoints": 1, "training": 2, "app": 3}
SIBLINGS = {frozenset({"indexing", "checkpoints"})}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, type_only: bool = False) -> set[str]:
    """Our modules that ``path`` imports at run time, and with ``type_only`` also under ``TYPE_CHECKING``
    (absolute names; ``from a import b`` gives ``a.b`` when ``a/b.py`` exists, else ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in (_existing(n) for n in found) if name and name != me}


def _existing(name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    parts = name.split(".")
    if parts[0] not in LAYER:
        return None
    for end in range(len(parts), 0, -1):
        candidate = ROOT.joinpath(*parts[:end])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts[:end])
    return None


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for top in LAYER for p in sorted((ROOT / top).rglob("*.py"))}


GRAPH = {name: imports_of(path) for name, path in our_modules().items()}
TYPED_GRAPH = {name: imports_of(path, type_only=True) for name, path in our_modules().items()}


def test_the_graph_sees_the_modules():
    assert len(GRAPH) > 100 and "app.service" in GRAPH["app.cli"] | set().union(*GRAPH.values())


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_follow_the_layers(module):
    mine = module.split(".")[0]
    for target in sorted(GRAPH[module]):
        theirs = target.split(".")[0]
        if theirs == mine:
            continue
        assert LAYER[theirs] < LAYER[mine] and frozenset({mine, theirs}) not in SIBLINGS, (
            f"{module} imports {target}: {mine} may import only "
            f"{sorted(k for k, v in LAYER.items() if v < LAYER[mine])} (layers: app -> training -> "
            f"indexing | checkpoints -> models)"
        )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exporting its own modules is not a circle: drop edges from a package to its
    own submodules (``app.answering`` -> ``app.answering.search``)."""
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}


def test_no_import_circles():
    circles = _cycles(_without_package_inits(TYPED_GRAPH))
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_finder_finds_circles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
