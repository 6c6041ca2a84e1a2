"""The house rule "split a function when it no longer fits a screen", checked.

A function's length is what a reader scrolls through: from its first decorator (or ``def``) to
its last line, docstring, comments and blank lines included; a method or a nested function
counts on its own, and inside the function around it. No function in the four packages may
exceed CEILING lines, except those in ALLOWED, each with its length when it was listed (it may
shrink, not grow) and the reason it is not split yet. Run alone with
`.venv/bin/python -m pytest tests/test_function_length.py`.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("grid", "mechanisms", "agents", "sim")
# About a screen, with room for a signature and a docstring; the aim when splitting is 60.
CEILING = 80
# "path::qualified name": (lines when listed, why it is not split yet).
ALLOWED: dict[str, tuple[int, str]] = {}


def _lengths(source: str, path: str) -> dict[str, int]:
    """Lines of every function and method in ``source``, by "path::qualified name"."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                found[f"{path}::{prefix}{child.name}"] = child.end_lineno - first + 1
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)  # functions defined under an if or a try

    visit(ast.parse(source), "")
    return found


@functools.cache  # read once for both tests (the module is one xdist group)
def _all_lengths() -> dict[str, int]:
    lengths: dict[str, int] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            lengths.update(_lengths(path.read_text(encoding="utf-8"), path.relative_to(REPO).as_posix()))
    return lengths


def test_no_function_exceeds_the_ceiling():
    too_long = sorted(((lines, name) for name, lines in _all_lengths().items()
                       if lines > CEILING and name not in ALLOWED), reverse=True)
    assert not too_long, (
        f"functions longer than {CEILING} lines; split them along their seams (the house rule):\n"
        + "\n".join(f"  {name}: {lines} lines" for lines, name in too_long))


def test_allowed_functions_do_not_grow():
    lengths = _all_lengths()
    wrong = []
    for name, (listed, _reason) in ALLOWED.items():
        lines = lengths.get(name)
        if lines is None:
            wrong.append(f"  {name}: no such function any more; remove it from ALLOWED")
        elif lines > listed:
            wrong.append(f"  {name}: {lines} lines, {listed} when it was allowed; split it rather than grow it")
        elif lines <= CEILING:
            wrong.append(f"  {name}: {lines} lines, within the ceiling now; remove it from ALLOWED")
    assert not wrong, "ALLOWED is out of date:\n" + "\n".join(wrong)


def test_the_count_includes_decorators_docstrings_and_nested_functions():
    source = '''
@decorated
def outer(a):
    """Doc."""

    def inner():
        return a
    return inner


class Box:
    def method(self):
        pass


if True:
    def conditional():
        pass
'''
    assert _lengths(source, "m.py") == {"m.py::outer": 7, "m.py::outer.inner": 2, "m.py::Box.method": 2,
                                        "m.py::conditional": 2}
