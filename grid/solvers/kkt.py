"""KKT conditions of a linear or convex quadratic program as MILP rows (docs/models/dlmp.md#dlmp-5:
KKT + big-M).

The aggregator's bilevel problem replaces the DSO's OPF (the lower level) by its optimality
conditions. This module writes them for any Pyomo model with linear rows and a linear or convex
quadratic objective, from Pyomo's own standard form (so the OPF's rows are written in one place,
grid/feeder/opf.py):

    min c'x + x'Hx  s.t.  a_i x (=, >=, <=) b_i  (dual y_i),  l <= x <= u  (alpha, beta >= 0)

    stationarity      c + (H + H')x - A'y - alpha + beta = 0
    dual signs        y_i free (=), y_i >= 0 (>=), y_i <= 0 (<=)
    complementarity   y_i (a_i x - b_i) = 0,  alpha_j (x_j - l_j) = 0,  beta_j (u_j - x_j) = 0

y_i is the marginal cost of b_i, the same sign as the dual Pyomo reports. Each complementarity
pair gets a binary and two big-M rows. The primal side's M is the variable's range (from the
data; tighter where the caller knows a range the rows keep it in, docs/models/dlmp.md#eq-d-27);
the dual side's M is a stated bound on the prices (``dual_bound``), and a test checks that the
answer does not move when it grows.

A quadratic objective (a generator's a_g PG^2, docs/models/dlmp.md#eq-d-3) only adds the linear terms
(H + H')x to stationarity, so the system stays an MILP. The conditions are sufficient because the
lower level is convex: every KKT point is optimal for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap
from pyomo.repn import generate_standard_repn
from pyomo.repn.plugins.standard_form import (
    LinearStandardFormCompiler,
    LinearStandardFormInfo,
)

from grid.errors import GridError

# How far an implied range is widened before it is trusted (in the variable's units): the range is
# computed in floating point, and a bound it misses by less is kept with its binary.
IMPLIED_MARGIN = 1e-6


@dataclass(frozen=True)
class KKTSystem:
    """The KKT rows on ``model`` (a new Pyomo block's model): primal copies ``x``, duals ``y``
    by the lower level's constraint, and the bound multipliers."""

    model: pyo.ConcreteModel
    columns: tuple  # the lower level's variables, in the order of ``model.x``
    rows: tuple  # the lower level's constraints, in the order of ``model.y``
    # sum_i y_i (a_i^theta theta): what the parameters' terms are worth at the duals, as a linear
    # expression (strong duality); None when the objective has square terms.
    parameter_value: object = None

    def x_of(self, variable: object) -> pyo.Var:
        """The KKT model's copy of one of the lower level's variables (a parameter included)."""
        # By identity: Pyomo components compare into expressions, not booleans.
        return self.model.x[next(j for j, column in enumerate(self.columns) if column is variable)]

    def y_of(self, constraint: object) -> pyo.Var:
        """The dual of one of the lower level's constraints (its marginal cost of the right-hand side)."""
        return self.model.y[next(i for i, row in enumerate(self.rows) if row is constraint)]

    def dual(self, constraint: object) -> float:
        return float(pyo.value(self.y_of(constraint)))

    def primal(self, variable: object) -> float:
        return float(pyo.value(self.x_of(variable)))


def kkt_system(lp: pyo.ConcreteModel, *, dual_bound: float, parameters: Sequence[pyo.Var] = (),
               implied: Mapping[object, tuple[float, float]] | None = None) -> KKTSystem:
    """A new model whose feasible points are the optimal primal-dual pairs of ``lp`` (a linear
    minimisation; fixed variables are data).

    ``parameters`` are variables of ``lp`` that another level decides: they become free
    variables ``param`` of the new model, in the rows but with no stationarity of their own
    (the lower level takes them as given), each with its bounds from ``lp``.

    ``implied`` (a Pyomo ComponentMap): for some variables of ``lp``, a range (low, high) that the rows alone keep them
    in at every value of the parameters (docs/models/dlmp.md#eq-d-27). A bound the range never
    reaches cannot bind, so its multiplier is zero and gets no binary; one it can reach gets the
    range's reach as its M instead of the variable's span.
    """
    if not dual_bound > 0 or not math.isfinite(dual_bound):
        raise GridError(f"dual_bound: {dual_bound!r} must be a positive number (a bound on prices)")
    objective, quadratic = _split_objective(lp)
    form = _standard_form(lp, parameters, objective, quadratic)
    is_parameter = [any(column is var for var in parameters) for column in form.columns]
    c = form.c.toarray().ravel()
    columns = tuple(form.columns)
    rows = tuple(con for con, _ in form.rows)
    n, m_rows = len(columns), len(rows)
    k = pyo.ConcreteModel(name="kkt")
    k.x = pyo.Var(range(n))
    k.y = pyo.Var(range(m_rows))
    k.rows = pyo.ConstraintList()
    k.z = pyo.VarList(domain=pyo.Binary)
    k.multipliers = pyo.VarList(domain=pyo.NonNegativeReals)
    # The rows' complementarity first, then the columns' stationarity: the order of the model's
    # rows and binaries, which the solver's tie-breaking follows.
    _primal_rows(k, form, columns, rows, dual_bound)
    # Strong duality, from stationarity times x and complementarity (y_i a_i x = y_i b_i,
    # alpha_j x_j = alpha_j l_j, beta_j x_j = beta_j u_j), gives the bilinear parameter terms
    # linearly: sum_i y_i a_i^theta theta = b'y + l'alpha - u'beta - c'x (linear objective).
    dual_objective: list = [float(form.rhs[i]) * k.y[i] for i in range(m_rows)]
    _stationarity_rows(k, form, columns, is_parameter, quadratic, dual_objective, dual_bound,
                       implied if implied is not None else ComponentMap())
    # Every KKT point is optimal for the lower level, so this objective only picks among equally
    # good points; its linear part alone keeps the model an MILP.
    k.objective = pyo.Objective(expr=sum(float(c[j]) * k.x[j] for j in range(n)), sense=pyo.minimize)
    value = None
    if not quadratic:
        value = sum(dual_objective) - sum(float(c[j]) * k.x[j] for j in range(n) if not is_parameter[j])
    return KKTSystem(k, columns, rows, value)


def _standard_form(lp: pyo.ConcreteModel, parameters: Sequence[pyo.Var], objective: pyo.Objective,
                   quadratic: list) -> LinearStandardFormInfo:
    """Pyomo's standard form of ``lp`` with the parameters as columns; ``lp`` is left as it came
    (parameters fixed, the temporary linear objective of `_split_objective` removed)."""
    for var in parameters:
        var.unfix()  # visible to the standard form as a column
    try:
        return LinearStandardFormCompiler().write(lp, mixed_form=True)
    finally:
        for var in parameters:
            var.fix()
        if quadratic:
            lp.del_component(lp._kkt_linear_part)
            objective.activate()


def _primal_rows(k: pyo.ConcreteModel, form: LinearStandardFormInfo, columns: tuple, rows: tuple, dual_bound: float) -> None:
    """Primal feasibility of every row, the sign of its dual, and for an inequality the
    complementarity by big-M."""
    a_csr = form.A.tocsr()
    senses = [sense for _, sense in form.rows]
    for i in range(len(rows)):
        start, end = a_csr.indptr[i], a_csr.indptr[i + 1]
        body = sum(float(a_csr.data[p]) * k.x[int(a_csr.indices[p])] for p in range(start, end))
        rhs = float(form.rhs[i])
        if senses[i] == 0:
            k.rows.add(body == rhs)
            continue
        k.rows.add(body >= rhs if senses[i] < 0 else body <= rhs)
        if senses[i] < 0:
            k.y[i].setlb(0.0)
        else:
            k.y[i].setub(0.0)
        # y_i (a_i x - b_i) = 0: |y_i| <= M z, |a_i x - b_i| <= range (1 - z); the row's range
        # comes from the variables' bounds.
        low, high = _row_range(a_csr, i, columns)
        reach = max(abs(high - rhs), abs(rhs - low))
        if not math.isfinite(reach):
            raise GridError(f"kkt: row {rows[i].name} has unbounded slack; bound its variables")
        z = k.z.add()
        k.rows.add(k.y[i] <= dual_bound * z)
        k.rows.add(-k.y[i] <= dual_bound * z)
        k.rows.add(body - rhs <= reach * (1 - z))
        k.rows.add(rhs - body <= reach * (1 - z))


def _stationarity_rows(k: pyo.ConcreteModel, form: LinearStandardFormInfo, columns: tuple, is_parameter: list[bool],
                       quadratic: list, dual_objective: list, dual_bound: float,
                       implied: Mapping[object, tuple[float, float]]) -> None:
    """Each column's bounds and, unless it is a parameter, its stationarity row with a multiplier
    (and its complementarity) per finite bound it can reach; each multiplier's term joins
    ``dual_objective``. ``implied``: ranges by variable (see kkt_system)."""
    c = form.c.toarray().ravel()
    a = form.A.tocsc()
    terms: list[list] = [[] for _ in columns]  # A'y, by column
    for j in range(len(columns)):
        for p in range(a.indptr[j], a.indptr[j + 1]):
            terms[j].append(float(a.data[p]) * k.y[int(a.indices[p])])
    gradient = _gradient(k, quadratic, columns)
    for j, var in enumerate(columns):
        low, high = var.lb, var.ub
        k.x[j].setlb(low)
        k.x[j].setub(high)
        if is_parameter[j]:
            continue  # decided above: no stationarity, no bound multipliers
        expr = float(c[j]) + sum(gradient[j]) - sum(terms[j])
        if (low is None) != (high is None):
            raise GridError(f"kkt: variable {var.name} has one finite bound only; give both")
        if low is None or high is None:
            k.rows.add(expr == 0)
            continue
        least, most = implied.get(var, (low, high))
        margin = IMPLIED_MARGIN if var in implied else 0.0
        for bound, sign, reach in ((low, -1.0, min(most, high) - low), (high, +1.0, high - max(least, low))):
            if (least - margin > bound) if sign < 0 else (most + margin < bound):
                continue   # the rows keep x off this bound: its multiplier is zero
            multiplier = k.multipliers.add()
            expr = expr + sign * multiplier
            dual_objective.append(-sign * bound * multiplier)
            z = k.z.add()
            k.rows.add(multiplier <= dual_bound * z)
            gap = (k.x[j] - bound) if sign < 0 else (bound - k.x[j])
            k.rows.add(gap <= (max(reach, 0.0) + margin) * (1 - z))
        k.rows.add(expr == 0)


def _gradient(k: pyo.ConcreteModel, quadratic: list, columns: tuple) -> list[list]:
    """(H + H')x by column: what the objective's square terms add to stationarity."""
    index = {id(column): j for j, column in enumerate(columns)}
    gradient: list[list] = [[] for _ in columns]
    for (first, second), coef in quadratic:
        if id(first) not in index or id(second) not in index:
            raise GridError(f"kkt: {first.name} appears in the objective's square terms only; "
                            "it needs a row or a linear cost")
        i, j = index[id(first)], index[id(second)]
        gradient[i].append(coef * k.x[j])
        gradient[j].append(coef * k.x[i])
    return gradient


def _split_objective(lp: pyo.ConcreteModel) -> tuple[pyo.Objective, list[tuple[tuple, float]]]:
    """The active objective and its square terms ((x_i, x_j), coefficient). With square terms,
    ``lp`` gets its linear part as a temporary objective ``_kkt_linear_part`` (the standard-form
    compiler reads linear objectives only); the caller removes it."""
    objectives = list(lp.component_data_objects(pyo.Objective, active=True))
    if len(objectives) != 1 or objectives[0].sense != pyo.minimize:
        raise GridError("kkt: the lower level needs exactly one objective, minimised")
    objective = objectives[0]
    repn = generate_standard_repn(objective.expr, quadratic=True)
    if repn.nonlinear_expr is not None:
        raise GridError("kkt: the lower level's objective must be linear or quadratic")
    quadratic = [((first, second), float(coef))
                 for (first, second), coef in zip(repn.quadratic_vars, repn.quadratic_coefs)]
    if quadratic:
        objective.deactivate()
        lp._kkt_linear_part = pyo.Objective(expr=repn.constant + sum(
            float(coef) * var for var, coef in zip(repn.linear_vars, repn.linear_coefs)))
    return objective, quadratic




def _row_range(a_csr, i: int, columns: tuple) -> tuple[float, float]:
    """The least and greatest a_i x over the variables' bounds (infinite if one is unbounded)."""
    low = high = 0.0
    for p in range(a_csr.indptr[i], a_csr.indptr[i + 1]):
        coef, var = float(a_csr.data[p]), columns[int(a_csr.indices[p])]
        lb = var.lb if var.lb is not None else -math.inf
        ub = var.ub if var.ub is not None else math.inf
        low += min(coef * lb, coef * ub)
        high += max(coef * lb, coef * ub)
    return low, high
