"""The package's shape: no import cycle between its files (lazy imports included).

Why a test: a cycle hidden behind an import inside a function or an ``if TYPE_CHECKING``
block still means two modules that cannot be understood (or split, or reused) one
without the other, and such cycles come back quietly. The graph is read from the source
with ``ast``, so every ``import`` statement counts wherever it stands. Importing
``a.b.c`` runs the parents' ``__init__`` files too; those implicit edges are not counted,
only the modules each statement names.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "duchenne"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``module`` names in any import statement."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [
                f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != module:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


#: The layers of CONTRIBUTING.md's map, lowest first: a module may import its own layer and
#: those below, never one above (``train`` only from the ``train`` command).
LAYERS: dict[str, int] = {
    "_version": 0,
    "errors": 0,
    "io": 1,
    "data": 1,
    "models": 2,
    "face": 2,
    "faces": 2,
    "annotate": 3,
    "analysis": 3,
    "evaluation": 3,
    "datasets": 3,
    "batch": 4,
    "server": 4,
    "train": 4,
    "cli": 5,
    "": 6,  # duchenne/__init__: the public face
}


def layer_of(module: str) -> str:
    """``duchenne.face.tracker`` -> ``face``; the package itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer into a higher one (and into ``train`` from outside it
    and the ``train`` command)."""
    found = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            a, b = layer_of(src), layer_of(dst)
            if LAYERS[a] < LAYERS[b] or (
                b == "train" and a != "train" and src != "duchenne.cli.train"
            ):
                found.append(f"{src} -> {dst}")
    return found


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "duchenne.analysis.analyzer" in graph["duchenne.analysis.video.face_stage"]
    assert "duchenne.cli.analyze" in graph["duchenne.cli.main"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_package_files() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles between files of src/duchenne:\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_imports_run_one_way_through_the_layers() -> None:
    graph = import_graph()
    assert set(map(layer_of, graph)) <= set(LAYERS), "a new top-level module: give it a layer"
    assert upward_imports({"duchenne.io.x": {"duchenne.face.y"}}) == [
        "duchenne.io.x -> duchenne.face.y"
    ]
    found = upward_imports(graph)
    assert not found, "imports against the layering (see CONTRIBUTING.md):\n" + "\n".join(found)


MAX_LINES = 600


def test_no_source_file_exceeds_600_lines() -> None:
    root = SRC / PACKAGE
    long = {
        path.relative_to(root).as_posix(): n
        for path in root.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules by concern (over {MAX_LINES} lines): {long}"


def test_every_typed_error_is_public() -> None:
    """Each ``DuchenneError`` subclass is importable from ``duchenne`` (the README tells
    users to catch ``DeviceUnavailableError``; it was only in ``duchenne.errors``)."""
    import inspect

    import duchenne
    from duchenne import errors

    typed = {
        name
        for name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.DuchenneError) and obj.__module__ == errors.__name__
    }
    assert typed - set(duchenne.__all__) == set()
    assert all(getattr(duchenne, name) is getattr(errors, name) for name in typed)
