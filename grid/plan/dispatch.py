"""Stage II of a fixed plan on many scenarios: docs/models/plan.md#fcm-evaluation.

Once Stage I is fixed the scenarios are independent, and each Q_s is a small MILP of its own:
minimising each one minimises any risk measure that grows with every Q_s (the mean, CVaR, their
worst case over a ball). So each scenario is solved alone, on HiGHS through its own API (no
modelling layer: building the Pyomo model cost six times the solve), with the exact size
reduction of grid.plan.stage_two; batches of scenarios go to worker processes when the caller
passes a ``mapper`` (the study's process pool). Another solver (GLPK) gets the same rows
through Pyomo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import highspy
import numpy as np
import pyomo.environ as pyo

from grid.errors import SolverError
from grid.plan.data import PlanData
from grid.plan.shocks import ShockScenarios
from grid.plan.stage_two import ABSORB, SHED, STABLE, SUPPLY, UNITS, StageTwoRows, stage_two_rows
from grid.plan.stage_two_pyomo import add_stage_two
from grid.solvers.names import check_solver
from grid.solvers.solve import solve_milp

# Units sent cost nothing in (F-5), so among dispatches of equal cost the solver could send any
# number of idle units: each unit sent carries this tie-break ($, plus as much again per hour of
# travel), so that the units reported (and t_i) are the fewest and nearest that achieve Q_s. It can
# leave at most this much of imbalance cost uncovered per unit; Q_s is reported without it.
UNIT_TIE_BREAK_USD = 0.01
# MIP gaps of each scenario's solve: Q_s is exact to a tenth of a cent (relative 1e-9 or 0.001 $,
# whichever is looser). HiGHS's default absolute gap (1e-6 $) made it prove digits the tie-break
# below already blurs, at a quarter of the time.
STAGE_TWO_GAP = 1e-9
STAGE_TWO_ABS_GAP_USD = 1e-3
# Scenarios per task sent to a worker process: enough to amortise the task's pickling, few enough
# that the workers finish together.
BATCH = 250

Mapper = Callable[[Callable, Sequence[tuple]], Iterable]


@dataclass
class Evaluation:
    """Stage II of a fixed plan, scenario by scenario: each Q_s at its own optimum."""

    cost: np.ndarray  # (S,) $, Q_s
    uncovered_mwh: np.ndarray  # (S, sites) imbalance energy not covered
    ens_mwh: np.ndarray  # (S, sites) energy not served (13), and the load shed for the feeder's limits
    shed_mwh: np.ndarray  # (S, sites) the part of ens_mwh shed for the feeder's limits
    stabilized: np.ndarray  # (S, sites) bool; True where there was no event
    arrival_min: np.ndarray  # (S, sites) t_i: last module arrival after the event starts; NaN if none sent
    dispatch: list[dict]  # units sent: scenario, site bus, hub, module, units
    # Minute by minute, when asked: scenario, bus, minute, deviation_mw, then per module type its
    # power (MW, + supplied, - absorbed), and with the feeder's limits on the load shed (shed_mw).
    profiles: list[dict] = field(default_factory=list)

    @classmethod
    def empty(cls, count: int, sites: int) -> Evaluation:
        return cls(np.zeros(count), np.zeros((count, sites)), np.zeros((count, sites)), np.zeros((count, sites)),
                   np.ones((count, sites), dtype=bool), np.full((count, sites), np.nan), [], [])

    def place(self, rows: Sequence[int], part: Evaluation) -> None:
        """Copy ``part`` (scenarios renumbered from 0) into the scenarios at ``rows``."""
        index = np.asarray(rows)
        for name in ("cost", "uncovered_mwh", "ens_mwh", "shed_mwh", "stabilized", "arrival_min"):
            getattr(self, name)[index] = getattr(part, name)
        for table in (part.dispatch, part.profiles):
            for row in table:
                row["scenario"] = int(index[row["scenario"]])
        self.dispatch += part.dispatch
        self.profiles += part.profiles


# HiGHS's options for these small MILPs: one thread (as everywhere, grid.solvers.solve), the gap
# above, and no primal heuristics: the root's cuts close these models, so the heuristics only cost
# time (feasibility jump alone took half of it, measured on the default study's scenarios). They
# never change what is proven optimal.
HIGHS_OPTIONS = {"output_flag": False, "threads": 1, "mip_rel_gap": STAGE_TWO_GAP, "mip_abs_gap": STAGE_TWO_ABS_GAP_USD,
                 "mip_heuristic_effort": 0.0,
                 "mip_heuristic_run_feasibility_jump": False, "mip_heuristic_run_rins": False,
                 "mip_heuristic_run_rens": False, "mip_heuristic_run_zi_round": False,
                 "mip_heuristic_run_shifting": False, "mip_heuristic_run_root_reduced_cost": False}


def _highs() -> highspy.Highs:
    check_solver("highs")  # keeps HiGHS's banner off stdout
    h = highspy.Highs()
    for name, value in HIGHS_OPTIONS.items():
        h.setOptionValue(name, value)
    return h


def solve_rows_highs(h: highspy.Highs, rows: StageTwoRows) -> np.ndarray:
    """Minimise sum_s Q_s plus the tie-break over ``rows`` on HiGHS; the column values."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = rows.columns, rows.rows
    lp.col_cost_ = np.asarray(rows.cost) + np.asarray(rows.tie)
    lp.col_lower_, lp.col_upper_ = np.asarray(rows.lower), np.asarray(rows.upper)
    lp.row_lower_, lp.row_upper_ = np.asarray(rows.row_lower), np.asarray(rows.row_upper)
    matrix = lp.a_matrix_
    matrix.format_ = highspy.MatrixFormat.kRowwise
    matrix.start_ = np.asarray(rows.row_start, dtype=np.int32)
    matrix.index_ = np.asarray(rows.row_index, dtype=np.int32)
    matrix.value_ = np.asarray(rows.row_value, dtype=float)
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                       for i in rows.integer]
    h.clearModel()
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        status = h.modelStatusToString(h.getModelStatus())
        raise SolverError(f"HiGHS stopped at {status!r} on Stage II of a fixed plan, which always has a solution "
                          "(send nothing); report this with the plan config")
    return np.asarray(h.getSolution().col_value)


def _solve_rows_pyomo(rows: StageTwoRows, solver: str) -> np.ndarray:
    m = pyo.ConcreteModel(name="fcm_stage_two")
    two = add_stage_two(m, rows)
    m.objective = pyo.Objective(expr=sum(two.cost) + two.tie, sense=pyo.minimize)
    solve_milp(m, solver, mip_gap=STAGE_TWO_GAP, what="Stage II of the plan")
    return two.values()


def evaluate_batch(data: PlanData, stock: np.ndarray, shocks: ShockScenarios, solver: str = "highs",
                   profiles: bool = False, aggregate: bool = True) -> Evaluation:
    """Stage II of the plan with ``stock`` (hub, module) on every scenario of ``shocks``, one MILP each."""
    out = Evaluation.empty(shocks.count, len(data.sites))
    h = _highs() if solver == "highs" else None
    for s in range(shocks.count):
        one = shocks.subset([s])
        rows = stage_two_rows(data, one, stock=stock, aggregate=aggregate, tie_break=UNIT_TIE_BREAK_USD)
        if not rows.events:
            continue  # no event: nothing to dispatch, Q_s = 0
        values = solve_rows_highs(h, rows) if h is not None else _solve_rows_pyomo(rows, solver)
        part = read_back(data, one, rows, values, profiles)
        out.place([s], part)
    return out


def read_back(data: PlanData, shocks: ShockScenarios, rows: StageTwoRows, values: np.ndarray,
              profiles: bool = False) -> Evaluation:
    """What a solution of ``rows`` does: Q_s, the energy left uncovered and not served, who is
    stabilized, the units sent and when the last arrives (t_i, [ours] under (F-8)), and when asked
    the power of each module type minute by minute."""
    out = Evaluation.empty(shocks.count, len(data.sites))
    out.cost[:] = rows.scenario_costs(values)
    kind, event = np.asarray(rows.kind), np.asarray(rows.event)
    first, last = np.asarray(rows.first), np.asarray(rows.last)
    energy = values * (last - first + 1) * rows.step_h
    power = (kind == SUPPLY) | (kind == ABSORB)
    served = np.bincount(event, weights=np.where(power, energy, 0.0), minlength=len(rows.events))
    shed = np.bincount(event, weights=np.where(kind == SHED, energy, 0.0), minlength=len(rows.events))
    stable = values[kind == STABLE] > 0.5  # one u per event, in the events' order (stage_two_rows)
    for e, ev in enumerate(rows.events):
        s, i = ev.scenario, ev.site
        need = float((ev.up.sum() + ev.down.sum()) * rows.step_h)
        out.uncovered_mwh[s, i] = max(0.0, need - served[e] - shed[e])
        ok = bool(stable[e])
        out.stabilized[s, i] = ok
        out.shed_mwh[s, i] = shed[e]
        out.ens_mwh[s, i] = shed[e] + (0.0 if ok else data.sites[i].load_mw * ev.disturbed_h)
    for c in np.nonzero(kind == UNITS)[0]:
        n = int(round(values[c]))
        if n > 0:
            ev = rows.events[rows.event[c]]
            d, k = rows.hub[c], rows.module[c]
            out.arrival_min[ev.scenario, ev.site] = np.fmax(out.arrival_min[ev.scenario, ev.site],
                                                            data.travel_min[d, ev.site])
            out.dispatch.append({"scenario": ev.scenario, "bus": data.sites[ev.site].bus,
                                 "hub": data.hubs[d].name, "module": data.modules[k].name, "units": n})
    if profiles:
        out.profiles = _profile_rows(data, shocks, rows, values)
    return out


def _profile_rows(data: PlanData, shocks: ShockScenarios, rows: StageTwoRows, values: np.ndarray) -> list[dict]:
    """The dispatch of each disturbed site, minute by minute (a stretch's power at each of its steps)."""
    step_min = shocks.settings.step_min
    # Rows 0.. the module types; the last, the load shed.
    power = {e: np.zeros((len(data.modules) + 1, len(ev.steps))) for e, ev in enumerate(rows.events)}
    for c, k in enumerate(rows.kind):
        if k in (SUPPLY, ABSORB, SHED):
            sign = -1.0 if k == ABSORB else 1.0
            power[rows.event[c]][rows.module[c], rows.first[c]:rows.last[c] + 1] += sign * values[c]
    out = []
    for e, ev in enumerate(rows.events):
        for j, step in enumerate(ev.steps):
            row = {"scenario": ev.scenario, "bus": data.sites[ev.site].bus, "minute": float(step * step_min),
                   "deviation_mw": round(float(shocks.deviation_mw[ev.scenario, ev.site, step]), 9) + 0.0}
            row.update({f"{m.name}_mw": round(float(power[e][k, j]), 9) + 0.0 for k, m in enumerate(data.modules)})
            if data.limits is not None:
                row["shed_mw"] = round(float(power[e][-1, j]), 9) + 0.0
            out.append(row)
    return out


def serial_map(work: Callable, tasks: Sequence[tuple]) -> Iterator:
    """A Mapper in this process."""
    for task in tasks:
        yield work(*task)


def batch_size(count: int, workers: int) -> int:
    """Scenarios per task: BATCH, or fewer so that each of ``workers`` processes gets about four tasks."""
    return max(1, min(BATCH, -(-count // (4 * workers)))) if workers > 1 else BATCH


def evaluate_stock(data: PlanData, stock: np.ndarray, shocks: ShockScenarios, *, solver: str = "highs",
                   profiles: bool = False, aggregate: bool = True, mapper: Mapper | None = None,
                   batch: int = BATCH, progress: Callable[[str], None] = lambda _: None) -> Evaluation:
    """Stage II of the plan with ``stock`` on every scenario, ``batch`` scenarios per task on ``mapper``;
    the answer does not depend on either."""
    count = shocks.count
    starts = list(range(0, count, batch))
    tasks = [(data, stock, shocks.subset(slice(a, min(count, a + batch))), solver, profiles, aggregate)
             for a in starts]
    out = Evaluation.empty(count, len(data.sites))
    for a, part in zip(starts, (mapper or serial_map)(evaluate_batch, tasks)):
        out.place(range(a, a + part.cost.size), part)
        if count > BATCH:
            progress(f"Stage II: {a + part.cost.size:,} of {count:,} scenarios")
    return out
