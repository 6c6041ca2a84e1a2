"""The background statistics of the limit rows (grid/capacity/rows/limits.py) against a full sort:
each row's scenario tail is the top of H p over the scenarios, with its scenario numbers."""

from __future__ import annotations

import numpy as np
import pytest

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.matrices.shift_factors import flow_model, shift_factors
from grid.capacity.rows.limits import LOWER, UPPER, build_limits, tail_size
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.network.cases import load_case


@pytest.mark.parametrize("case", ["ieee118", "ieee30"])
def test_each_rows_tail_is_the_top_of_a_full_sort_of_its_dense_background_flows(case):
    network = load_case(case)
    scenarios = sample_base_load(network, BaseLoadSpread(), 400, np.random.default_rng(2))
    candidates = make_candidates(network, {bus: 20.0 for bus in network.load_buses})
    table = build_limits(network, flow_model(network), scenarios, candidates, max_risk=0.05, with_scenarios=True)
    keep = tail_size(0.05, scenarios.count)
    assert table.tail_mw.shape[1] == keep == 21
    h = shift_factors(network)
    flows = h @ scenarios.samples_mw.T + flow_model(network).offset_mw[:, None]   # (lines, S), dense
    kinds = np.array(table.kinds)
    checked = 0
    for row in np.flatnonzero(np.isin(kinds, [UPPER, LOWER])):
        values = flows[table.line[row]] * (1.0 if kinds[row] == UPPER else -1.0)
        order = np.argsort(-values, kind="stable")[:keep]
        np.testing.assert_allclose(table.tail_mw[row], values[order], rtol=0, atol=1e-9 * max(1.0, np.abs(values).max()))
        assert list(table.tail_scenario[row]) == list(order)  # samples are continuous: no ties
        checked += 1
    assert checked == 2 * len(network.lines)


def test_tails_from_rows_made_per_block_equal_the_kept_rows_pass():
    """The cluster's path (grid/capacity/rows/limits.py line_block_tails: each block's rows of H made from
    the network, none kept by limit_rows) gives the kept-rows pass's tails, value for value."""
    from grid.capacity.rows.limits import in_process, limit_rows, with_tails

    network = load_case("ieee118")
    scenarios = sample_base_load(network, BaseLoadSpread(), 300, np.random.default_rng(4))
    candidates = make_candidates(network, {bus: 20.0 for bus in network.load_buses})
    kept_table, kept = limit_rows(network, flow_model(network), scenarios, candidates)
    bare_table, bare = limit_rows(network, flow_model(network), scenarios, candidates, keep_rows=False)
    assert all(h is None for _, h in bare.blocks) and all(h is not None for _, h in kept.blocks)
    here = with_tails(kept_table, kept, scenarios, 0.1, with_scenarios=True)
    for block_map in (None, in_process):   # rows made again in this process, or per block as a worker does
        there = with_tails(bare_table, bare, scenarios, 0.1, with_scenarios=True, block_map=block_map)
        np.testing.assert_array_equal(there.tail_mw, here.tail_mw)
        np.testing.assert_array_equal(there.tail_scenario, here.tail_scenario)
