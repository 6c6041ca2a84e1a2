"""Mechanisms by name (config ``[mechanism] kind``): each module declares its `MechanismSpec`."""

from __future__ import annotations

from mechanisms.engines import clock, queue, saa, vcg
from mechanisms.errors import MechanismError
from mechanisms.mechanism import MechanismSpec

MECHANISMS: dict[str, MechanismSpec] = {
    spec.kind: spec for spec in (saa.SPEC, queue.SPEC, vcg.SPEC, clock.SPEC)
}
DEFAULT_MECHANISM = "saa"


def mechanism_spec(kind: str) -> MechanismSpec:
    try:
        return MECHANISMS[kind]
    except KeyError:
        raise MechanismError(f"unknown mechanism {kind!r}; choose one of {', '.join(MECHANISMS)}") from None
