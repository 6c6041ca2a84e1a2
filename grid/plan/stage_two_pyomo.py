"""Stage II rows (grid.plan.stage_two) in a Pyomo model: the two-stage MILP's Stage II, and the
evaluation of a fixed plan on a solver other than HiGHS (GLPK cross-checks it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

from grid.plan.stage_two import INF, StageTwoRows

Stock = Callable[[int, int], object]  # (hub, module) -> units there: a Pyomo expression or a number


@dataclass
class PyomoStageTwo:
    """The rows' columns as Pyomo variables, and each scenario's Q_s (F-5) as an expression."""

    columns: pyo.Var
    cost: list  # Q_s per scenario
    tie: object  # the tie-break's part of the objective (0 without one)

    def values(self) -> np.ndarray:
        return np.array([pyo.value(self.columns[c]) for c in range(len(self.columns))])


def _domain(lower: float, upper: float, integer: bool) -> object:
    if integer:
        return pyo.Binary if (lower, upper) == (0.0, 1.0) else pyo.NonNegativeIntegers
    return pyo.NonNegativeReals


def add_stage_two(m: pyo.ConcreteModel, rows: StageTwoRows, stock: Stock | None = None) -> PyomoStageTwo:
    """Add ``rows`` to ``m``; ``stock(d, k)`` replaces the stock rows' bounds (F-6) when given."""
    v = m.stage_two_columns = pyo.Var(range(rows.columns))
    for c in range(rows.columns):
        v[c].domain = _domain(rows.lower[c], rows.upper[c], rows.integer[c])
        v[c].setlb(rows.lower[c])
        v[c].setub(None if rows.upper[c] == INF else rows.upper[c])
    m.stage_two = pyo.ConstraintList()
    stock_key = dict(zip(rows.stock_rows, rows.stock_key))
    for r in range(rows.rows):
        span = slice(rows.row_start[r], rows.row_start[r + 1])
        body = LinearExpression(constant=0.0, linear_coefs=list(rows.row_value[span]),
                                linear_vars=[v[c] for c in rows.row_index[span]])
        lower, upper = rows.row_lower[r], rows.row_upper[r]
        if r in stock_key and stock is not None:
            m.stage_two.add(body - stock(*stock_key[r]) <= 0)
        elif lower == upper:
            m.stage_two.add(body == lower)
        elif lower == -INF:
            m.stage_two.add(body <= upper)
        elif upper == INF:
            m.stage_two.add(body >= lower)
        else:
            m.stage_two.add(pyo.inequality(lower, body, upper))
    scenario = rows.scenario_of_columns()
    by_scenario: list[list[int]] = [[] for _ in range(rows.count)]
    for c, s in enumerate(scenario):
        if rows.cost[c] != 0.0:
            by_scenario[s].append(c)
    cost = [LinearExpression(constant=float(rows.constant[s]), linear_coefs=[rows.cost[c] for c in cols],
                             linear_vars=[v[c] for c in cols]) for s, cols in enumerate(by_scenario)]
    ties = [c for c in range(rows.columns) if rows.tie[c] != 0.0]
    tie = LinearExpression(constant=0.0, linear_coefs=[rows.tie[c] for c in ties], linear_vars=[v[c] for c in ties])
    return PyomoStageTwo(v, cost, tie)
