"""Corrections handed to the capacity study (grid/capacity/inputs/corrections.py): line deratings and extra
rows, checked against the closed forms of the paper's 4-bus case worked by hand, against the same
study on a network whose ratings are lowered, and against CVaR computed here by sorting."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.inputs.corrections import Corrections, LinearRow
from grid.capacity.inputs.criteria import SecurityCriteria
from grid.capacity.study import capacity_study
from grid.errors import GridError
from grid.load.scenarios import (
    BaseLoadSpread,
    TruncatedNormalLoad,
    sample_base_load,
    sample_truncated_normal,
)
from grid.network.cases import load_case

PAPER_LOADS = {  # docs/models/capacity.md#ca-5-2
    1: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    2: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    3: TruncatedNormalLoad(15.0, 5.0, 10.0, 20.0),
    4: TruncatedNormalLoad(20.0, 5.0, 10.0, 30.0),
}
DEMAND = {3: 40.0, 4: 30.0}
TOL = 1e-6
LINES = {"1-2": 0, "2-3": 1, "2-4": 2}


def cvar(values: np.ndarray, eps: float) -> float:
    """Sample CVaR by sorting: the mean of the worst eps*S values, the boundary one in part."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    mass = eps * ordered.size
    whole = int(math.floor(mass))
    return float((ordered[:whole].sum() + (mass - whole) * ordered[whole]) / mass)


@pytest.fixture(scope="module")
def paper():
    net = load_case("paper-4bus")
    scenarios = sample_truncated_normal(net, PAPER_LOADS, 1000, np.random.default_rng(7))
    return net, scenarios, make_candidates(net, DEMAND)


def derated(line: str, upper: float = 0.0, lower: float = 0.0) -> Corrections:
    derating = np.zeros((3, 2))
    derating[LINES[line]] = (upper, lower)
    return Corrections(derating)


@pytest.mark.parametrize("draw", ["partial", "full"])
@pytest.mark.parametrize(("corrections", "expected"), [
    # (C-1) by hand: c3 <= 40-20, c4 <= 40-30, c3 <= 50-20, c4 <= 50-30, c3 + c4 <= 100-80 (line 1-2);
    # bus 4 weighs more (1/30 > 1/40), so it is served first.
    (derated("1-2", upper=5.0), {3: 5.0, 4: 10.0}),      # c3 + c4 <= 15
    (derated("1-2", lower=5.0), {3: 10.0, 4: 10.0}),     # the lower limit has room to spare
    (derated("2-4", upper=15.0), {3: 15.0, 4: 5.0}),     # c4 <= 50-15-30
])
def test_a_derating_takes_its_mw_off_one_direction_of_a_line(paper, corrections, expected, draw):
    net, scenarios, candidates = paper
    study = capacity_study(net, scenarios, candidates, [0.05], criteria=SecurityCriteria(draw=draw),
                           corrections=corrections)
    assert study.firm.capacity_mw[3] == pytest.approx(expected[3], abs=TOL)
    assert study.firm.capacity_mw[4] == pytest.approx(expected[4], abs=TOL)


def test_an_extra_row_binds_firm_at_its_worst_case_and_each_tier_at_its_cvar(paper):
    """c3 + 2 c4 + p4 <= 40. Firm: p4 at its bound 30, so c3 + 2 c4 <= 10, which bus 3 fills
    (1/40 per MW of the row against bus 4's 1/60). Each tier: the row holds with CVaR(p4) by
    sorting, at equality."""
    net, scenarios, candidates = paper
    row = LinearRow("voltage at bus 4 (made up)", np.array([1.0, 2.0]), np.array([0.0, 0.0, 0.0, 1.0]), 40.0)
    study = capacity_study(net, scenarios, candidates, [0.05, 0.2], corrections=Corrections(np.zeros((3, 2)), (row,)))
    assert study.firm.capacity_mw[3] == pytest.approx(10.0, abs=TOL)
    assert study.firm.capacity_mw[4] == pytest.approx(0.0, abs=TOL)
    assert study.firm.limited_by[3] == row.name and row.name in study.firm.binding
    p4 = scenarios.samples_mw[:, 3]
    for tier in study.tiers:
        used = tier.capacity_mw[3] + 2 * tier.capacity_mw[4]
        assert used == pytest.approx(40.0 - cvar(p4, tier.risk), abs=1e-5)
        assert row.name in tier.binding


def test_an_extra_rows_background_counts_up_to_its_cap(paper):
    """c3 + min(p4, 26) <= 29: firm capacity sees the cap (the box's worst p4 is 30), c3 <= 3; each
    tier the CVaR of min(p4, 26), computed here by sorting, at equality."""
    net, scenarios, candidates = paper
    row = LinearRow("capped", np.array([1.0, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]), 29.0, background_cap_mw=26.0)
    study = capacity_study(net, scenarios, candidates, [0.05, 0.2], corrections=Corrections(np.zeros((3, 2)), (row,)))
    assert study.firm.capacity_mw[3] == pytest.approx(3.0, abs=TOL)
    assert study.firm.capacity_mw[4] == pytest.approx(10.0, abs=TOL)
    clipped = np.minimum(scenarios.samples_mw[:, 3], 26.0)
    for tier in study.tiers:
        assert tier.capacity_mw[3] == pytest.approx(29.0 - cvar(clipped, tier.risk), abs=1e-5)
        assert "capped" in tier.binding


def test_the_scenario_formulation_reads_an_extra_rows_background_alike(paper):
    net, scenarios, candidates = paper
    row = LinearRow("extra", np.array([1.0, 0.5]), np.array([0.0, 0.3, 0.0, 1.0]), 5.0, background_cap_mw=-6.0,
                    background_offset_mw=-40.0)  # c3 + c4/2 + min(0.3 p2 + p4, 34) <= 45, written from 40
    corrections = Corrections(np.zeros((3, 2)), (row,))
    exact, paper17 = (capacity_study(net, scenarios, candidates, [0.05, 0.1], formulation=f, corrections=corrections)
                      for f in ("exact", "scenario"))
    for mine, theirs in zip((exact.firm, *exact.tiers), (paper17.firm, *paper17.tiers)):
        for bus in (3, 4):
            assert mine.capacity_mw[bus] == pytest.approx(theirs.capacity_mw[bus], abs=1e-6)


@pytest.mark.parametrize("draw", ["partial", "full"])
def test_derating_both_directions_equals_a_lower_rating_on_a_meshed_network(draw):
    """A second formulation: the same study on a copy of IEEE 14 whose lines carry the lower rating."""
    net = load_case("ieee14")
    scenarios = sample_base_load(net, BaseLoadSpread(), 300, np.random.default_rng(3))
    candidates = make_candidates(net, {b.number: 60.0 for b in net.buses if b.base_load_mw > 0})
    names = [line.name for line in net.lines]
    off = {names.index("5-6"): 5.0, names.index("7-9"): 7.5, names.index("9-14"): 3.0, 0: 20.0}
    derating = np.zeros((len(net.lines), 2))
    for l, mw in off.items():
        derating[l] = mw
    lines = tuple(dataclasses.replace(line, thermal_limit_mw=line.thermal_limit_mw - off.get(l, 0.0))
                  for l, line in enumerate(net.lines))
    criteria = SecurityCriteria(draw=draw)
    mine = capacity_study(net, scenarios, candidates, [0.05], criteria=criteria, corrections=Corrections(derating))
    lowered = capacity_study(dataclasses.replace(net, lines=lines), scenarios, candidates, [0.05], criteria=criteria)
    for a, b in zip((mine.firm, *mine.tiers), (lowered.firm, *lowered.tiers)):
        assert a.capacity_mw == pytest.approx(b.capacity_mw, abs=1e-6)
    assert sum(mine.firm.capacity_mw.values()) < sum(capacity_study(
        net, scenarios, candidates, [0.05], criteria=criteria).firm.capacity_mw.values()) - 1.0


def test_no_corrections_leave_the_table_as_it_was(paper):
    net, scenarios, candidates = paper
    plain = capacity_study(net, scenarios, candidates, [0.05])
    empty = capacity_study(net, scenarios, candidates, [0.05], corrections=Corrections.none(3))
    assert plain.limits.kinds == empty.limits.kinds and not empty.limits.explicit
    assert np.array_equal(plain.limits.limit_mw, empty.limits.limit_mw)
    assert plain.firm.capacity_mw == empty.firm.capacity_mw and plain.tiers[0].capacity_mw == empty.tiers[0].capacity_mw


@pytest.mark.parametrize(("corrections", "needle"), [
    (Corrections(np.zeros((2, 2))), "derating_mw must be lines x 2 (3 x 2"),
    (Corrections(np.full((3, 2), -1.0)), "derating_mw must be finite MW >= 0"),
    (Corrections(np.zeros((3, 2)), (LinearRow("r", np.ones(3), np.zeros(4), 1.0),)), "row 'r': give 2 candidate"),
    (Corrections(np.zeros((3, 2)), (LinearRow("r", np.ones(2), np.zeros(4), math.nan),)), "must be finite"),
    (Corrections(np.zeros((3, 2)), (LinearRow("r", np.ones(2), np.zeros(4), 1.0, math.nan),)), "background_cap_mw"),
])
def test_corrections_that_do_not_fit_are_one_line(paper, corrections, needle):
    net, scenarios, candidates = paper
    with pytest.raises(GridError) as exc:
        capacity_study(net, scenarios, candidates, [0.05], corrections=corrections)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_a_row_with_a_risk_share_holds_each_tier_at_that_share_of_its_eps(paper):
    """c3 + p4 <= 35 held at half of each tier's eps: c3 = 35 - CVaR_{eps/2}(p4), by sorting."""
    net, scenarios, candidates = paper
    row = LinearRow("halved", np.array([1.0, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]), 35.0, risk_share=0.5)
    study = capacity_study(net, scenarios, candidates, [0.1, 0.2], corrections=Corrections(np.zeros((3, 2)), (row,)))
    p4 = scenarios.samples_mw[:, 3]
    for tier in study.tiers:
        assert tier.capacity_mw[3] == pytest.approx(35.0 - cvar(p4, tier.risk / 2), abs=1e-5)
        assert tier.capacity_mw[3] < 35.0 - cvar(p4, tier.risk) - 0.1  # tighter than at the whole eps


def test_a_risk_share_outside_0_1_is_one_line(paper):
    net, scenarios, candidates = paper
    row = LinearRow("bad", np.array([1.0, 0.0]), np.zeros(4), 45.0, risk_share=0.0)
    with pytest.raises(GridError, match="risk_share must be in"):
        capacity_study(net, scenarios, candidates, [0.1], corrections=Corrections(np.zeros((3, 2)), (row,)))
