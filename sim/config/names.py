"""Names chosen from a registry (profiles, strategies, background shapes, ...): one check and one
message for every table, so that a new name slots in and a typo is named the same way."""

from __future__ import annotations

from typing import Iterable

from sim.errors import shown


def one_of(value: str, names: Iterable[str], field: str) -> str:
    """``value`` when it is one of ``names``, else ValueError naming ``field`` and the choices."""
    names = list(names)
    if value not in names:
        raise ValueError(f"unknown {field} {shown(value)}; choose one of {', '.join(names)}")
    return value
