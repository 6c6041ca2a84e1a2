"""The AC check step of `dcmarket capacity`: each model's allocation (firm, and the riskiest tier)
in a pandapower AC power flow at the states the DC model found worst (grid/ac/states.py), with
the violations the new load causes told apart from those already there
(docs/models/ac-check.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from grid.ac.check import BackgroundStates, check_allocation
from grid.ac.states import check_states, dense_flows
from grid.capacity.study import CapacityStudy
from grid.errors import GridError
from grid.network.cases import matpower_file
from sim.config.schema import ExperimentConfig
from sim.market.inputs import GridInputs
from sim.output import files as outputs
from sim.report.text import mw

AC_CHECK_FILE = outputs.AC_CHECK
AC_COLUMNS = ("model", "state", "kind", "element", "value", "limit", "value_without", "origin")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AcOutcome:
    """What the step adds to the study: its summary section, the rows of ac_check.csv, its text."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""


def skipped(why: str) -> AcOutcome:
    return AcOutcome({"skipped": why}, [], f"AC check: skipped ({why})")


def ac_check(config: ExperimentConfig, base_dir: Path, grid: GridInputs, study: CapacityStudy, verify: int,
             progress: Progress) -> AcOutcome:
    """The AC check of the firm model and of the riskiest tier, or why it did not run."""
    assert config.network is not None
    if verify <= 0:
        return skipped("--verify 0")
    if not config.ac.check:
        return skipped("[ac] check = false")
    try:
        path = matpower_file(config.network.case, base_dir)
    except GridError:
        return skipped(f"{study.network.name} is not a MATPOWER case; the AC model needs its full data")
    # A built-in name keeps its own rules (the ratings of unrated branches), as the DC study did.
    case = path if (base_dir / config.network.case).exists() else config.network.case
    models = [("firm", study.firm)] + ([(f"flexible {study.tiers[-1].risk:g}", study.tiers[-1])] if study.tiers else [])
    summary: dict[str, Any] = {"power_factor": config.ac.power_factor, "vmin_pu": config.ac.vmin_pu,
                               "vmax_pu": config.ac.vmax_pu, "models": {}}
    rows: list[dict[str, Any]] = []
    lines = []
    dense = dense_flows(study, grid.scenarios)
    if dense is None:
        return skipped(f"{study.network.name} is too large for the AC check's choice of states")
    for name, model in models:
        capacity = model.vector(study.candidates)
        chosen = check_states(study, grid.scenarios, dense, capacity, model.draw, corners=name == "firm",
                              worst=config.ac.states)
        progress(f"AC check ({name}): {len(chosen)} states with pandapower")
        found = _check_model(case, config, study, capacity, chosen)
        summary["models"][name] = {**found["counts"], "states_checked": [state.label for state in chosen]}
        rows += [{"model": name, **row} for row in found["rows"]]
        lines.append(_model_line(name, capacity.sum(), found["counts"], found["failures"]))
    header = (f"AC check (pandapower, new load at power factor {config.ac.power_factor:g}, voltages "
              f"{config.ac.vmin_pu:g}-{config.ac.vmax_pu:g} p.u.; violations in {AC_CHECK_FILE}):")
    return AcOutcome(summary, rows, "\n".join([header, *lines]))


def _check_model(case: str | Path, config: ExperimentConfig, study: CapacityStudy, capacity, chosen) -> dict[str, Any]:
    """Every state with the products it draws: one AC check per draw pattern, counts summed."""
    assert config.network is not None
    groups: dict[bytes, list] = {}
    for state in chosen:
        groups.setdefault(state.drawn.tobytes(), []).append(state)
    counts: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for states in groups.values():
        drawn = states[0].drawn
        allocation = {bus: float(c) if on else 0.0 for bus, c, on in zip(study.candidates.buses, capacity, drawn)}
        background = BackgroundStates.from_net_withdrawals(study.network, [s.label for s in states],
                                                           np.array([s.withdrawal_mw for s in states]))
        result = check_allocation(case, allocation, background, config.ac.settings(),
                                  options=config.network.case_options())
        for key, value in result.summary().items():
            counts[key] = counts.get(key, 0) + value
        rows += [{"state": v.state, "kind": v.kind, "element": v.element, "value": v.value, "limit": v.limit,
                  "value_without": v.value_without, "origin": v.origin} for v in result.violations]
        failures += result.failures()
    return {"counts": counts, "rows": rows, "failures": failures}


def _model_line(name: str, total_mw: float, counts: dict[str, int], failures: list[str]) -> str:
    text = (f"  {name} ({mw(total_mw)} MW): {counts['states']} states, {counts['converged']} converged; caused by "
            f"new load: {counts['caused_overloads']} overload(s), {counts['caused_voltage_violations']} voltage "
            f"violation(s) in {counts['states_with_caused_violations']} state(s); already there without it: "
            f"{counts['pre_existing_overloads']} overload(s), {counts['pre_existing_voltage_violations']} voltage "
            "violation(s)")
    return text + "".join(f"\n    {failure}" for failure in failures[:3])
