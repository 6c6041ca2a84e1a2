"""Config overrides from the command line: ``--set auction.increment=2 --set seed=7``.

An override names a field by its path in the TOML file (tables by dots, array entries by
``[index]``: ``bidders[0].values.firm@3=40``) and gives a TOML value (``2``, ``0.5``, ``true``,
``[0.05, 0.1]``, ``"text"``); a value that is not valid TOML is taken as a string, so
``network.case=ieee37`` needs no quotes. Overrides are applied to the file's table before
validation, so they are checked like the file and land in the effective config.toml. The same
overrides drive a sweep's runs (sim/studies/sweep.py).

``--unset KEY`` removes a table or a field (``--unset price`` runs a config without its study
after the auction); --set and --unset apply in the order given.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


class OverrideError(ValueError):
    """An override that does not fit the config's tables (sim.config.schema turns it into a ConfigError)."""


# How deep lists and tables may nest in a config, a sweep file or a --set value. The deepest
# field a config has is about five levels down (plan.travel.minutes.<hub>.<bus>); Python's TOML
# reader recurses once per level and would crash on a file nested thousands deep.
MAX_NESTING = 32


class NestingError(ValueError):
    """TOML nested deeper than MAX_NESTING; the message says where."""


def load_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads``, refusing lists and tables nested more than MAX_NESTING deep (a
    NestingError); other faults are tomllib's TOMLDecodeError."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise NestingError(f"lists or tables are nested more than {MAX_NESTING} deep (the ceiling); "
                           "flatten them") from None
    # Dotted keys ([a.b.c...]) nest without recursion in the reader: measure what came out.
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_NESTING:
            shown = where if len(where) <= 60 else where[:57] + "..."
            raise NestingError(f"{shown}: lists or tables are nested more than {MAX_NESTING} deep (the "
                               "ceiling); flatten them")
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            if isinstance(child, (dict, list)):
                step = f"[{key}]" if isinstance(key, int) else (f".{key}" if where else str(key))
                stack.append((child, where + step if len(where) < 60 else where, depth + 1))
    return data


_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


@dataclass(frozen=True)
class Override:
    """One field's new value: ``path`` as table keys and list indices, and the text it came from;
    ``unset``: the field is removed instead."""

    path: tuple[str | int, ...]
    value: Any
    text: str
    unset: bool = False

    @property
    def key(self) -> str:
        """The path as written (``bidders[0].values.firm@3``)."""
        return self.text.split("=", 1)[0].strip()

    @property
    def option(self) -> str:
        """How the command line wrote it, for messages."""
        return f"--unset {self.text}" if self.unset else f"--set {self.text}"


def parse_path(key: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` -> ("a", "b", 0, "c"); a ValueError says what is wrong."""
    path: list[str | int] = []
    for part in key.split("."):
        match = _PART.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"{key!r} is not a field path; write table.field, or list[index].field")
        path.append(match.group(1))
        path.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(path)


def parse_value(text: str) -> Any:
    """A TOML value, or the text itself when it is not one (``ieee37`` -> "ieee37")."""
    try:
        return load_toml(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(text: str) -> Override:
    """``KEY=VALUE`` as an Override; a ValueError names the problem (argparse shows it)."""
    if "=" not in text:
        raise ValueError(f"{text!r} has no '='; write KEY=VALUE, e.g. auction.increment=2")
    key, value = text.split("=", 1)
    if not key.strip():
        raise ValueError(f"{text!r} names no field; write KEY=VALUE, e.g. auction.increment=2")
    return Override(parse_path(key), parse_value(value.strip()), text)


def parse_unset(text: str) -> Override:
    """``KEY`` of ``--unset KEY`` as an Override that removes the field."""
    if not text.strip() or "=" in text:
        raise ValueError(f"{text!r}: --unset takes a field path without a value, e.g. --unset price")
    return Override(parse_path(text), None, text.strip(), unset=True)


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of the config table ``raw`` with each override set in turn (missing tables are
    created; a path through a value that is not a table or list is an error naming it)."""
    out = copy.deepcopy(dict(raw))
    for override in overrides:
        node: Any = out
        for depth, part in enumerate(override.path[:-1]):
            if override.unset and not _holds(node, part):
                raise OverrideError(f"{override.option}: {_where(override, depth)} is not in the config; "
                                    "check the path")
            node = _step(node, part, override.path[depth + 1], override, depth)
        if override.unset:
            _remove(node, override.path[-1], override)
        else:
            _assign(node, override.path[-1], override.value, override)
    return out


def _holds(node: Any, part: str | int) -> bool:
    if isinstance(part, int):
        return isinstance(node, list) and part < len(node)
    return isinstance(node, dict) and part in node


def _remove(node: Any, part: str | int, override: Override) -> None:
    if not _holds(node, part):
        raise OverrideError(f"{override.option}: {_where(override, len(override.path) - 1)} is not in the config; "
                            "check the path")
    del node[part]


def _where(override: Override, depth: int) -> str:
    shown = ""
    for part in override.path[: depth + 1]:
        shown += f"[{part}]" if isinstance(part, int) else (f".{part}" if shown else part)
    return shown


def _step(node: Any, part: str | int, following: str | int, override: Override, depth: int) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            raise OverrideError(f"{override.option}: {_where(override, depth)} does not exist "
                              f"(the list has {len(node) if isinstance(node, list) else 0} entries)")
        return node[part]
    if not isinstance(node, dict):
        raise OverrideError(f"{override.option}: {_where(override, depth - 1)} is not a table")
    if part not in node:
        node[part] = [] if isinstance(following, int) else {}
    child = node[part]
    if isinstance(following, int) and not isinstance(child, list):
        raise OverrideError(f"{override.option}: {_where(override, depth)} is not a list; drop the [index]")
    if isinstance(following, str) and not isinstance(child, dict):
        kind = "a list; index it as " + _where(override, depth) + "[0]" if isinstance(child, list) else "not a table"
        raise OverrideError(f"{override.option}: {_where(override, depth)} is {kind}")
    return child


def _assign(node: Any, part: str | int, value: Any, override: Override) -> None:
    depth = len(override.path) - 1
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            raise OverrideError(f"{override.option}: {_where(override, depth)} does not exist")
        node[part] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise OverrideError(f"{override.option}: {_where(override, depth - 1)} is not a table")
