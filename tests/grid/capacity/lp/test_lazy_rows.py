"""The partial draw set's rows written lazily (grid/capacity/lp/programs.py `explicit_program`): HiGHS
starts from the rows that set each candidate's stand-alone bound and adds the rest as solutions
break them. The reference is the same program with every row written out (`whole`), solved the
same way, and the rows themselves checked at the answer."""

from __future__ import annotations

import numpy as np

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.lp.programs import explicit_program
from grid.capacity.lp.staged_solve import solve_stages
from grid.capacity.matrices.shift_factors import flow_model
from grid.capacity.rows.limits import build_limits
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.network.cases import load_case


def test_lazy_rows_give_the_whole_programs_capacities_and_keep_every_row():
    network = load_case("ieee118")
    scenarios = sample_base_load(network, BaseLoadSpread(), 300, np.random.default_rng(2))
    candidates = make_candidates(network, {bus: 150.0 for bus in network.load_buses})
    limits = build_limits(network, flow_model(network), scenarios, candidates, 0.05)
    rooms = limits.limit_mw - limits.cvar(0.05)
    rows = limits.coef_positive
    kept = limits.affected & (rooms >= 0) & (np.array(limits.kinds) != "withdrawal")
    program = explicit_program(rows, rooms, kept, np.zeros(len(candidates)), candidates.demand_mw)
    # Rows that hold with every candidate at its request are left out (they cannot bind): here
    # 63 of the 373 kept rows, counted by hand.
    can_bind = kept & (rows @ candidates.demand_mw > rooms)
    assert (int(kept.sum()), int(can_bind.sum())) == (373, 310)
    assert program.lazy is not None and program.shape[0] < int(can_bind.sum()), "most rows should wait"
    whole = program.whole()
    assert whole.lazy is None and whole.shape[0] == int(can_bind.sum())
    lazy = solve_stages(program, candidates.demand_mw, "lazy", theory=True)
    full = solve_stages(whole, candidates.demand_mw, "whole", theory=True)
    np.testing.assert_allclose(lazy.capacity_mw, full.capacity_mw, atol=1e-6)
    assert lazy.total_mw == full.total_mw or abs(lazy.total_mw - full.total_mw) <= 1e-6
    assert lazy.theory.max_total_mw == full.theory.max_total_mw or \
        abs(lazy.theory.max_total_mw - full.theory.max_total_mw) <= 1e-6
    loads = rows[np.flatnonzero(kept)] @ lazy.capacity_mw
    assert np.all(loads <= rooms[kept] + 1e-6)
