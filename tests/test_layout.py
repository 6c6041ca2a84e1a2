"""The house: the import graph of the four packages has no circle, between modules or between
the sub-packages of any folder, and no package imports one above it (grid and mechanisms < agents < sim).

Every import counts, the lazy ones inside functions too: a circle closed at run time is still a
circle for a reader. Run alone with `.venv/bin/python -m pytest tests/test_layout.py`.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("grid", "mechanisms", "agents", "sim")
# What each top-level package may import among the four.
ALLOWED = {"grid": set(), "mechanisms": set(), "agents": {"grid", "mechanisms"},
           "sim": {"grid", "mechanisms", "agents"}}
# Libraries a package must not import (mechanisms are pure Python engines and judges).
FORBIDDEN = {"mechanisms": {"mesa", "pyomo", "pandas", "matplotlib"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


@functools.cache
def _imports() -> dict[str, list[tuple[int, str, list[str]]]]:
    """Every module's import statements as (level, module, names): `import a.b` is (0, "", ["a.b"]),
    `from ..c import d` is (2, "c", ["d"]). Read once for all the tests here (the module is one
    xdist group); the syntax trees themselves are not kept, since every garbage collection of the
    worker would walk them for the rest of the run."""
    found = {}
    for name, path in _modules().items():
        statements = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                statements.append((0, "", [alias.name for alias in node.names]))
            elif isinstance(node, ast.ImportFrom):
                statements.append((node.level, node.module or "", [alias.name for alias in node.names]))
        found[name] = statements
    return found


def _imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The known modules that the file imports, by their full names."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for level, module, names in _imports()[name]:
        if not module and not level:  # import a.b
            targets = names
        else:
            base = module
            if level:
                anchor = package.split(".")[: len(package.split(".")) - level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias}" for alias in names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imported(path, name, known) - {name} for name, path in modules.items()}


def _child(folder: str, module: str) -> str | None:
    """The child of ``folder`` (a sub-package or a module) that holds ``module``, or None when the
    module is not inside the folder."""
    if not module.startswith(folder + "."):
        return None
    return folder + "." + module[len(folder) + 1:].split(".")[0]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_circle_between_modules():
    cycle = _cycle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_circle_between_the_children_of_any_folder():
    """In every folder, at every depth, its sub-packages and modules seen as units import each
    other without a loop: grid.capacity's rows/ may use inputs/, but then nothing in inputs/ may
    use rows/, even when no two files close a circle."""
    folders = [name for name, path in _modules().items() if path.name == "__init__.py"]
    for folder in folders:
        units: dict[str, set[str]] = {}
        for module, targets in _graph().items():
            if (unit := _child(folder, module)) is not None:
                units.setdefault(unit, set()).update(
                    other for t in targets if (other := _child(folder, t)) not in (None, unit))
        cycle = _cycle(units)
        assert cycle is None, f"circle between the children of {folder}: " + " -> ".join(cycle)


def test_no_package_imports_one_above_it():
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if target.split(".")[0] != module.split(".")[0] and target.split(".")[0] not in ALLOWED[module.split(".")[0]]
    )
    assert not wrong, "\n".join(wrong)


def test_mechanisms_stay_pure_python():
    wrong = []
    for name, statements in _imports().items():
        for level, module, names in statements:
            imported = names if not module and not level else [module]
            wrong += [f"{name} imports {n}" for n in imported
                      if n.split(".")[0] in FORBIDDEN.get(name.split(".")[0], set())]
    assert not wrong, "\n".join(wrong)


def test_the_checker_finds_a_circle():
    """The search itself: a planted circle is found, a chain is not."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_every_folder_is_a_package():
    """A folder without __init__.py would import as a namespace package and not be installed."""
    missing = [str(folder.relative_to(REPO)) for package in PACKAGES
               for folder in [REPO / package, *(REPO / package).rglob("*")]
               if folder.is_dir() and folder.name not in {"__pycache__", "data"} and not (folder / "__init__.py").exists()]
    assert not missing, missing


def test_the_layout_maps_name_every_module():
    """The maps of the tree in README.md and docs/architecture.md list every folder and module,
    so a newcomer's map cannot fall behind the code."""
    for doc in ("README.md", "docs/architecture.md"):
        text = (REPO / doc).read_text(encoding="utf-8")
        block = text[text.index("```text\nsim/"):]
        block = block[: block.index("```", 8)]
        missing = [str(path.relative_to(REPO)) for package in PACKAGES for path in sorted((REPO / package).rglob("*"))
                   if "__pycache__" not in path.parts and path.parent.name != "data"
                   and ((path.is_dir() and f"{path.name}/" not in block)
                        or (path.suffix == ".py" and path.name != "__init__.py" and path.name not in block))]
        assert not missing, f"{doc} does not name: {', '.join(missing)}"
