"""Built-in network cases, looked up by name.

The registry maps a case name to a factory so that later cases (a MATPOWER import, IEEE 33-bus)
slot in without touching callers.
"""

from __future__ import annotations

from typing import Callable

from grid.errors import GridError
from grid.network import Bus, Line, Network


def _paper_4bus() -> Network:
    """Spec 5.1: the radial 4-bus case 1 - 2 - {3, 4}, reference bus 1, w-bar = 40 MW everywhere.

    Lines are oriented away from bus 1 so that the path matrix is non-negative. The paper gives no
    reactances (the network is radial, so none are needed) and writes its line limits in "p.u.";
    we read them as MW like every other number in the case study (spec 7.10).
    """
    return Network(
        name="paper-4bus",
        buses=tuple(Bus(number, withdrawal_limit_mw=40.0) for number in (1, 2, 3, 4)),
        lines=(
            Line("1-2", 1, 2, thermal_limit_mw=100.0),
            Line("2-3", 2, 3, thermal_limit_mw=50.0),
            Line("2-4", 2, 4, thermal_limit_mw=50.0),
        ),
        reference_bus=1,
    )


CASES: dict[str, Callable[[], Network]] = {
    "paper-4bus": _paper_4bus,
}


def available_cases() -> tuple[str, ...]:
    return tuple(CASES)


def load_case(name: str) -> Network:
    """Build the named case afresh (GridError naming the known cases on an unknown name)."""
    try:
        factory = CASES[name]
    except (KeyError, TypeError):
        raise GridError(
            f"unknown network case {name!r}; known cases: {', '.join(available_cases())}"
        ) from None
    return factory()
