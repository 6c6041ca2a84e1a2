"""Voltage sensitivities of a solved AC power flow: how much 1 MW more at a bus moves the voltage
magnitude of the watched buses (docs/models/ac-check.md#eq-a-10).

From the power-flow Jacobian J at the solution: a change dS of the specified injections moves the
unknowns x = (angles of the PV and PQ buses, magnitudes of the PQ buses) by dx = J^-1 dS, so the
magnitude at a watched PQ bus b moves by y_b . dS with J^T y_b = e_b (one sparse solve per bus).
1 MW more load at bus k takes 1 MW and Q per MW of reactive power from k (tan phi for new load,
QD/PD for the background) and, by (A-8), adds alpha_g MW at every scheduled unit g. A bus whose
voltage a unit holds (PV, or the reference) does not move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from grid.ac.case_model import AcCase


@dataclass(frozen=True)
class VoltageSensitivity:
    """dV/dP at one solved state for the watched buses, p.u. per MW, columns in AcCase.buses order.

    ``new_load`` is for new load at the check's power factor; ``background`` for the background's
    net withdrawal, whose reactive power follows the bus's QD/PD (docs/models/ac-check.md#eq-a-6).
    Both include the units' response (A-8)."""

    watched: tuple[int, ...]                         # bus numbers
    vm_pu: np.ndarray = field(repr=False)            # (W,) voltage magnitude at the solution
    new_load: np.ndarray = field(repr=False)         # (W, buses)
    background: np.ndarray = field(repr=False)       # (W, buses)


def _jacobian(internal: dict[str, Any]) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """J of docs/models/ac-check.md#eq-a-4 at the solution, with its P rows (PV and PQ buses) and Q rows (PQ)."""
    from pandapower.pypower.dSbus_dV import dSbus_dV

    voltage = internal["V"]
    pv, pq = np.asarray(internal["pv"], dtype=np.int64), np.asarray(internal["pq"], dtype=np.int64)
    pvpq = np.r_[pv, pq]
    d_magnitude, d_angle = dSbus_dV(internal["Ybus"], voltage)
    d_magnitude, d_angle = sp.csr_matrix(d_magnitude), sp.csr_matrix(d_angle)
    jacobian = sp.bmat([[d_angle[pvpq][:, pvpq].real, d_magnitude[pvpq][:, pq].real],
                        [d_angle[pq][:, pvpq].imag, d_magnitude[pq][:, pq].imag]]).tocsc()
    return jacobian, pvpq, pq


def voltage_sensitivity(model: AcCase, net: Any, watched: list[int], tan_phi: float) -> VoltageSensitivity:
    """(A-10) at the state ``net`` was last solved for, for the watched bus numbers."""
    internal = net._ppc["internal"]
    jacobian, pvpq, pq = _jacobian(internal)
    size = len(internal["V"])
    p_row, q_row = np.full(size, -1), np.full(size, -1)
    p_row[pvpq] = np.arange(pvpq.size)
    q_row[pq] = pvpq.size + np.arange(pq.size)
    lookup = np.asarray(net._pd2ppc_lookups["bus"])
    at = lookup[model.buses]                          # internal index of each bus, AcCase.buses order
    position = {int(b): i for i, b in enumerate(model.buses.tolist())}
    rows = q_row[at[[position[b] for b in watched]]]  # the |V| unknown of each watched bus (-1: held)
    held = rows < 0
    y = np.zeros((jacobian.shape[0], len(watched)))
    if not held.all():
        unit = np.zeros((jacobian.shape[0], int((~held).sum())))
        unit[rows[~held], np.arange(unit.shape[1])] = 1.0
        y[:, ~held] = splu(jacobian.T.tocsc()).solve(unit)
    # y^T per MW of injection at each bus (0 where the bus has no such equation), (W, buses)
    dv_dp = np.where(p_row[at] >= 0, y[np.maximum(p_row[at], 0)].T, 0.0) / model.base_mva
    dv_dq = np.where(q_row[at] >= 0, y[np.maximum(q_row[at], 0)].T, 0.0) / model.base_mva
    vm = np.abs(internal["V"][at[[position[b] for b in watched]]])
    units = _unit_response(model, dv_dp)[:, None]
    ratio = np.divide(model.qd_mvar, model.pd_mw, out=np.zeros_like(model.qd_mvar), where=model.pd_mw != 0)
    return VoltageSensitivity(tuple(watched), vm, -(dv_dp + tan_phi * dv_dq) + units, -(dv_dp + ratio * dv_dq) + units)


def _unit_response(model: AcCase, dv_dp: np.ndarray) -> np.ndarray:
    """Per watched bus: what the units' response to 1 MW more load does to it, sum_g alpha_g dV/dP_g (A-8)."""
    position = {int(b): i for i, b in enumerate(model.buses.tolist())}
    unit_bus = np.array([position[g.bus] for g in model.network.generators], dtype=np.int64)
    scheduled = np.array([table != "ext_grid" for table in model.unit_table], dtype=bool)
    if not unit_bus.size:
        return np.zeros(dv_dp.shape[0])
    return dv_dp[:, unit_bus[scheduled]] @ model.unit_share[scheduled]
