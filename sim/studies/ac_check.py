"""The AC step of `dcmarket capacity`: each checked model's allocation (firm, and the riskiest tier)
in a pandapower AC power flow at the states the DC model found worst (grid/ac/states.py), with
the violations the new load causes told apart from those already there; then, with
``[ac] correct``, the linear study tightened and solved again until the AC check finds no
violation caused by new load (grid/ac/correct.py). The corrected study becomes the result
(docs/models/ac-check.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from grid.ac.correct import Correction, correct_study
from grid.ac.states import dense_flows
from grid.ac.study_check import AcTarget, ModelCheck, check_study
from grid.capacity.inputs.corrections import Corrections
from grid.capacity.rows.limits import BlockMap
from grid.capacity.screened import SCREENED_SKIP
from grid.capacity.study import CapacityStudy
from grid.errors import GridError
from grid.network.cases import case_file
from sim.config.schema import ExperimentConfig
from sim.market.inputs import GridInputs
from sim.output import files as outputs
from sim.report.text import mw

AC_CHECK_FILE = outputs.AC_CHECK
AC_CORRECTION_FILE = outputs.AC_CORRECTION
AC_COLUMNS = ("model", "state", "kind", "element", "value", "limit", "value_without", "origin")
CORRECTION_COLUMNS = ("iteration", "model", "total_mw", "checked", "states", "converged", "caused_overloads",
                      "caused_voltage_violations", "lines", "buses", "derated_lines", "state_rows")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AcOutcome:
    """What the step adds to the study: its summary section, the rows of ac_check.csv (the last
    check's violations) and of ac_correction.csv (None: the file is not written), its text."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    correction_rows: list[dict[str, Any]] | None = None


def skipped(why: str) -> AcOutcome:
    return AcOutcome({"skipped": why}, [], f"AC check: skipped ({why})")


def ac_step(config: ExperimentConfig, base_dir: Path, grid: GridInputs, study: CapacityStudy, verify: int,
            theory: bool, progress: Progress, block_map: BlockMap | None = None) -> tuple[CapacityStudy, AcOutcome]:
    """The AC check of the linear study and, with ``[ac] correct``, its correction; returns the
    study that is the result (the corrected one) and what to report, or why nothing ran. The
    re-solves compute their scenario tails where the study did (``block_map``)."""
    assert config.network is not None
    if verify <= 0:
        return study, skipped("--verify 0")
    if not config.ac.check:
        return study, skipped("[ac] check = false")
    if study.line_rows == "screened":
        return study, skipped(SCREENED_SKIP)
    try:
        case_file(config.network.case, base_dir)  # the resolution load_case made for the study
    except GridError:
        return study, skipped(f"{study.network.name} is not a MATPOWER case; the AC model needs its full data")
    dense = dense_flows(study, grid.scenarios)
    if dense is None:
        return study, skipped(f"{study.network.name} is too large for the AC check's choice of states")
    target = AcTarget(config.network.case, config.ac.settings(), config.network.case_options(), base_dir)
    if not config.ac.correct:
        checks = check_study(study, grid.scenarios, dense, target, worst=config.ac.states, progress=progress)
        return study, AcOutcome({**_header(config, checks), "correction": {"skipped": "[ac] correct = false"}},
                                _violation_rows(checks), _check_text(config, checks))

    def solve(corrections: Corrections) -> CapacityStudy:
        progress(f"AC correction: the study again, {int(corrections.derating_mw.any(axis=1).sum())} line(s) derated, "
                 f"{len(corrections.rows)} row(s) at checked states")
        return grid.settings.study(grid.network, grid.scenarios, grid.candidates, solver=config.solver, theory=theory,
                                   progress=progress, corrections=corrections, compare_full_draw=False,
                                   block_map=block_map)

    # The re-solves leave out the paper's full-draw model (its tie-break QP is most of a re-solve's
    # time): beside the corrected study stands the linear study's (docs/models/ac-check.md#correction).
    correction = correct_study(study, grid.scenarios, dense, target, worst=config.ac.states, solve=solve,
                               max_iterations=config.ac.max_iterations, progress=progress)
    if correction.resolves:
        correction = dataclasses.replace(
            correction, study=dataclasses.replace(correction.study, full_draw=study.full_draw))
    final = correction.iterations[-1].checks
    summary = {**_header(config, final), "correction": _correction_summary(correction, config.ac.max_iterations)}
    text = _check_text(config, correction.iterations[0].checks) + "\n" + _correction_text(correction)
    return correction.study, AcOutcome(summary, _violation_rows(final), text, _correction_rows(correction))


def _header(config: ExperimentConfig, checks: tuple[ModelCheck, ...]) -> dict[str, Any]:
    return {"power_factor": config.ac.power_factor, "vmin_pu": config.ac.vmin_pu, "vmax_pu": config.ac.vmax_pu,
            "models": {check.name: {**check.counts(), "states_checked": [s.label for s in check.states]}
                       for check in checks}}


def _violation_rows(checks: tuple[ModelCheck, ...]) -> list[dict[str, Any]]:
    return [{"model": check.name, "state": v.state, "kind": v.kind, "element": v.element, "value": v.value,
             "limit": v.limit, "value_without": v.value_without, "origin": v.origin}
            for check in checks for v in check.violations]


def _check_text(config: ExperimentConfig, checks: tuple[ModelCheck, ...]) -> str:
    header = (f"AC check (pandapower, new load at power factor {config.ac.power_factor:g}, voltages "
              f"{config.ac.vmin_pu:g}-{config.ac.vmax_pu:g} p.u.; violations in {AC_CHECK_FILE}):")
    return "\n".join([header, *(_model_line(check) for check in checks)])


def _model_line(check: ModelCheck) -> str:
    counts, failures = check.counts(), check.failures()
    text = (f"  {check.name} ({mw(check.capacity_mw.sum())} MW): {counts['states']} states, {counts['converged']} "
            f"converged; caused by new load: {counts['caused_overloads']} overload(s), "
            f"{counts['caused_voltage_violations']} voltage violation(s) in {counts['states_with_caused_violations']} "
            f"state(s); already there without it: {counts['pre_existing_overloads']} overload(s), "
            f"{counts['pre_existing_voltage_violations']} voltage violation(s)")
    return text + "".join(f"\n    {failure}" for failure in failures[:3])


def _correction_summary(correction: Correction, max_iterations: int) -> dict[str, Any]:
    return {
        "iterations": correction.resolves, "max_iterations": max_iterations, "stopped": correction.stopped,
        "linear_mw": correction.linear_mw, "corrected_mw": correction.corrected_mw, "cost_mw": correction.cost_mw,
        "unfixed": correction.unfixed(), "derated_lines_mw": correction.deratings(),
        "state_rows": len(correction.corrections.rows),
    }


def _correction_text(correction: Correction) -> str:
    if correction.resolves == 0:
        return f"AC correction: none needed ({correction.stopped})" if not correction.unfixed() else \
            f"AC correction: none made ({correction.stopped})"
    cost = "; ".join(f"{name} {mw(correction.linear_mw[name])} -> {mw(correction.corrected_mw[name])} MW "
                     f"(cost {mw(correction.cost_mw[name])} MW)" for name in correction.linear_mw)
    last = correction.iterations[-1]
    lines = [f"AC correction ({correction.resolves} re-solve(s), {correction.stopped}; per iteration in "
             f"{AC_CORRECTION_FILE}): {cost}; {last.derated_lines} line(s) derated, {last.state_rows} row(s) "
             "at checked states (lines, voltages). The corrected allocation is the study's result. Its AC check:",
             *(_model_line(check) for check in last.checks)]
    unfixed = correction.unfixed()
    if unfixed:
        lines.append(f"  could not fix: {', '.join(unfixed[:10])}" + (f" ... ({len(unfixed)} in all)"
                                                                       if len(unfixed) > 10 else ""))
    return "\n".join(lines)


def _correction_rows(correction: Correction) -> list[dict[str, Any]]:
    """One row per iteration and model; the violation columns are empty for a tier not checked."""
    rows = []
    for iteration in correction.iterations:
        checked = {check.name: check for check in iteration.checks}
        for name, total in iteration.total_mw.items():
            row: dict[str, Any] = {"iteration": iteration.number, "model": name, "total_mw": total,
                                   "checked": name in checked, "derated_lines": iteration.derated_lines,
                                   "state_rows": iteration.state_rows}
            if name in checked:
                counts = checked[name].counts()
                lines, buses = checked[name].broken()
                row.update(states=counts["states"], converged=counts["converged"],
                           caused_overloads=counts["caused_overloads"],
                           caused_voltage_violations=counts["caused_voltage_violations"],
                           lines=" ".join(lines), buses=" ".join(str(b) for b in buses))
            rows.append(row)
    return rows
