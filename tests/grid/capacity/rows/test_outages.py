"""N-1 (docs/models/capacity.md#n-1): firm and flexible capacity hold after every single branch
outage, at the emergency ratings. The reference removes each branch and recomputes the DC flows
of the remaining network from scratch with numpy (no LODF), with the slack distributed by headroom
as the study's, the background at the worst corner of its (budgeted) box, and every product at its
worst draw; flexible tiers are checked in CVaR over the study's own scenarios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.inputs.criteria import SecurityCriteria
from grid.capacity.matrices.shift_factors import flow_model
from grid.capacity.rows.limits import DEFAULT_TOUCH_FACTOR, carry_row_caches
from grid.capacity.rows.outages import single_outages
from grid.capacity.study import capacity_study
from grid.errors import GridError
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.network.cases import CaseOptions, load_case
from grid.risk_measures import cvar_from_tail

TOL = 1e-6
BUDGET = 10.0
BOX = {"background": "budgeted", "budget": BUDGET}
EPS = 0.05


def shift_factors_without(network, out: int | None) -> tuple[np.ndarray, list[int]]:
    """H (remaining lines x buses) of the network without line ``out``, distributed slack by
    headroom, from the reactances: B theta = -(w - alpha 1'w), theta_ref = 0."""
    index = {bus.number: i for i, bus in enumerate(network.buses)}
    kept = [l for l in range(len(network.lines)) if l != out]
    n = len(index)
    incidence = np.zeros((len(kept), n))
    for row, l in enumerate(kept):
        line = network.lines[l]
        incidence[row, index[line.from_bus]], incidence[row, index[line.to_bus]] = 1.0, -1.0
    b = np.array([1.0 / network.lines[l].reactance_pu for l in kept])
    susceptance = incidence.T @ (b[:, None] * incidence)
    keep = [i for i in range(n) if i != index[network.reference_bus]]
    theta = np.zeros((n, n))
    theta[np.ix_(keep, keep)] = -np.linalg.inv(susceptance[np.ix_(keep, keep)])
    h = b[:, None] * (incidence @ theta)
    alpha = np.zeros(n)
    for generator in network.generators:
        alpha[index[generator.bus]] += max(generator.max_mw - generator.output_mw, 0.0)
    alpha /= alpha.sum()
    return h - (h @ alpha)[:, None], kept


def budgeted_worst(h: np.ndarray, lower: np.ndarray, upper: np.ndarray, budget: float) -> np.ndarray:
    """Bertsimas and Sim: the centre plus the largest ``budget`` deviations |h_j| half_j."""
    centre, half = (upper + lower) / 2, (upper - lower) / 2
    spread = -np.sort(-np.abs(h) * half, axis=1)
    whole = int(math.floor(budget))
    return h @ centre + spread[:, :whole].sum(axis=1) + (budget - whole) * spread[:, whole]


@pytest.fixture(scope="module")
def ieee118():
    network = load_case("ieee118", CaseOptions(default_rating_mw=200, rating_margin=1.5))
    scenarios = sample_base_load(network, BaseLoadSpread(), 1000, np.random.default_rng(1))
    candidates = make_candidates(network, {bus.number: 100.0 for bus in network.buses if bus.base_load_mw > 0})
    study = capacity_study(network, scenarios, candidates, [EPS], criteria=SecurityCriteria(outages="n-1", **BOX))
    return network, scenarios, candidates, study


@pytest.fixture(scope="module")
def recomputed(ieee118):
    """(outage, remaining lines, H) for every outage the study counts as connected, each H
    recomputed from scratch without the line (made once per module)."""
    network, _, _, study = ieee118
    names = set(study.outages.islanding)
    return [(k, *reversed(shift_factors_without(network, k))) for k, line in enumerate(network.lines)
            if line.name not in names]


def _top_cvar(excess: np.ndarray) -> np.ndarray:
    """CVaR_EPS of each column of ``excess`` (scenarios x lines), from its largest values only."""
    count = excess.shape[0]
    tail = int(math.floor(EPS * count))
    top = -np.sort(-np.partition(excess, count - tail - 1, axis=0)[count - tail - 1:], axis=0)
    return (top[:tail].sum(axis=0) + (EPS * count - tail) * top[tail]) / (EPS * count)


def test_a_tiers_screen_bounds_each_pairs_cvar_recomputed_from_scratch(ieee118, recomputed):
    """The background term a tier's screen reads for a pair (the least of the scenario box's
    extreme and (C-22) on the lines' CVaRs) is at least the pair's CVaR, computed from the
    scenarios with H rebuilt without the outaged line, in both directions; and the lines' CVaRs
    make it smaller than the box's extreme for most pairs."""
    import grid.capacity.rows.outages as outages_module
    from grid.capacity.inputs.criteria import scenario_box
    from grid.capacity.study import _line_cvar

    network, scenarios, candidates, study = ieee118
    flows, outages = flow_model(network), study.outages
    box = scenario_box(scenarios)
    capped = outages_module._Intact.of(outages, flows, candidates, box,
                                       _line_cvar(study.limits, EPS, len(network.lines)))
    boxed = outages_module._Intact.of(outages, flows, candidates, box)

    def least(lines, out, factor):
        """The pairs' coefficients, and the least of the box's extreme and the cap per direction."""
        on, box_high, box_reverse = boxed.after(outages, flows, candidates, box, lines, out, factor)
        cap_high, cap_reverse = capped.caps(lines, out, factor)
        return on, np.minimum(box_high, cap_high), np.minimum(box_reverse, cap_reverse), box_high

    column = {int(k): j for j, k in enumerate(outages.studied)}
    tighter = total = 0
    for k, kept, h in recomputed:
        lines, out = np.array(kept), np.full(len(kept), k)
        _, high, reverse, box_high = least(lines, out, outages.lodf[lines, column[k]])
        background = scenarios.samples_mw @ h.T + flows.offset_mw[lines]
        assert np.all(_top_cvar(background) <= high + 1e-6), network.lines[k].name
        assert np.all(_top_cvar(-background) <= reverse + 1e-6), network.lines[k].name
        tighter += int(np.sum(high < box_high - 1e-6))
        total += lines.size
    assert tighter > total // 2
    # The screen forms the box's extreme only for pairs whose cap comes near: the same pairs, and
    # the same shares but for the last bits of the box's product over fewer rows (here at 30 MW
    # per candidate, thousands of pairs near).
    capacity = np.full(len(candidates), 30.0)
    near = np.where(np.isfinite(outages.emergency_mw), (1.0 - outages_module.SCREEN_MARGIN) * outages.emergency_mw,
                    np.inf)
    maybe = outages_module._maybe_pairs(outages, flows, candidates, capacity, "partial", box, near, capped)
    lines, column = maybe.line, maybe.column
    found = outages_module._near_pairs(outages, flows, candidates, capacity, "partial", box, lines, column, near, set(),
                                       capped)
    on, high, reverse, _ = least(lines, outages.studied[column], outages.lodf[lines, column])
    load_up, load_down = outages_module._load_terms(on, capacity, "partial")
    high, reverse = high + load_up, reverse + load_down
    hit = (high > near[lines]) | (reverse > near[lines])
    expected = sorted(zip(lines[hit].tolist(), outages.studied[column][hit].tolist(),
                          (np.maximum(high, reverse) / near[lines])[hit].tolist()))
    got = sorted(zip(found.line.tolist(), found.outage.tolist(), found.share.tolist()))
    assert len(expected) > 50 and [pair[:2] for pair in got] == [pair[:2] for pair in expected]
    np.testing.assert_allclose([pair[2] for pair in got], [pair[2] for pair in expected], rtol=1e-12)


def test_firm_capacity_holds_after_every_outage_recomputed_from_scratch(ieee118, recomputed):
    network, scenarios, candidates, study = ieee118
    firm = study.firm.vector(candidates)
    assert firm.sum() > 10.0 and len(study.outages.islanding) > 0
    rating = np.array([line.thermal_limit_mw for line in network.lines])  # emergency factor 1, no RATE_B
    checked = 0
    for k, kept, h in recomputed:
        on = h[:, list(candidates.positions)]
        high = budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, BUDGET) + np.maximum(on, 0) @ firm
        low = -budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, BUDGET) - np.maximum(-on, 0) @ firm
        background_high = budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, BUDGET)
        background_low = -budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, BUDGET)
        limit = rating[kept]
        # A limit that the background alone breaks is blocked (the study's rule): skip it.
        fine = (background_high <= limit) & (background_low >= -limit)
        assert np.all(high[fine] <= limit[fine] + TOL), network.lines[k].name
        assert np.all(low[fine] >= -limit[fine] - TOL), network.lines[k].name
        checked += 1
    assert checked == len(network.lines) - len(study.outages.islanding)


def test_the_flexible_tier_holds_in_cvar_after_every_outage(ieee118, recomputed):
    network, scenarios, candidates, study = ieee118
    flexible = study.tiers[0].vector(candidates)
    assert flexible.sum() > study.firm.vector(candidates).sum()
    rating = np.array([line.thermal_limit_mw for line in network.lines])
    for k, kept, h in recomputed:
        on = h[:, list(candidates.positions)]
        background = scenarios.samples_mw @ h.T                          # (S, lines)
        limit = rating[kept]
        for sign in (1.0, -1.0):
            cvar = _top_cvar(sign * background - limit)
            fine = cvar <= 0  # not broken by the background alone
            load = np.maximum(sign * on, 0) @ flexible
            assert np.all(cvar[fine] + load[fine] <= TOL), (network.lines[k].name, sign)


def test_the_papers_model_holds_after_every_outage_with_its_pair_rows_over_the_flows(ieee118, recomputed):
    """The full-draw model's pair rows are written over the lines' flows, F_l + LODF F_k <= room
    (bound_program): its firm capacities, drawn in full (a . c, counterflow counted), hold after
    every outage recomputed from scratch, and some of its binding limits are pairs."""
    network, scenarios, candidates, study = ieee118
    paper = study.full_draw[0]
    full = paper.vector(candidates)
    assert paper.draw == "full" and full.sum() > study.firm.vector(candidates).sum()
    assert any("after the outage" in name for name in paper.binding)
    rating = np.array([line.thermal_limit_mw for line in network.lines])
    worst = 0.0
    for k, kept, h in recomputed:
        load = h[:, list(candidates.positions)] @ full
        high = budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, BUDGET)
        low = -budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, BUDGET)
        limit = rating[kept]
        fine = (high <= limit) & (low >= -limit)
        assert np.all(high[fine] + load[fine] <= limit[fine] + TOL), network.lines[k].name
        assert np.all(low[fine] + load[fine] >= -limit[fine] - TOL), network.lines[k].name
        worst = max(worst, float(np.max((high + load - limit)[fine])), float(np.max((-limit - low - load)[fine])))
    assert worst > -TOL   # some post-outage limit is met exactly


def test_lodfs_equal_flows_recomputed_without_the_line(ieee118):
    network = ieee118[0]
    outages = single_outages(flow_model(network), 1.0)
    rng = np.random.default_rng(0)
    withdrawals = rng.normal(0, 50, len(network.buses))
    before = outages.rows @ withdrawals
    for j, k in enumerate(outages.studied[:40]):
        h, kept = shift_factors_without(network, int(k))
        np.testing.assert_allclose((before + outages.lodf[:, j] * before[k])[kept], h @ withdrawals, atol=1e-6)


def test_islanding_outages_are_listed_not_studied():
    radial = load_case("ieee33bw")
    outages = single_outages(flow_model(radial), 1.0)
    assert outages.studied.size == 0 and len(outages.islanding) == len(radial.lines)


def test_an_emergency_factor_out_of_range_is_named():
    with pytest.raises(GridError, match=r"emergency_factor 5 must lie in \[0.5, 3\]"):
        SecurityCriteria(outages="n-1", emergency_factor=5)


def test_standalone_capacity_holds_after_every_outage_and_no_more(ieee118, recomputed):
    """A bus alone at its N-1 stand-alone figure keeps every post-outage flow within rating (the
    background at its budgeted worst), and 1 kW more breaks one."""
    network, scenarios, candidates, study = ieee118
    alone = study.standalone[0]
    rating = np.array([line.thermal_limit_mw for line in network.lines])
    picked = [k for k in range(len(candidates)) if 0 < alone.capacity_mw[k] < np.inf][:8]
    assert picked
    worst_excess = {k: -np.inf for k in picked}
    for k_out, kept, h in [(None, list(range(len(network.lines))), shift_factors_without(network, None)[0])] + recomputed:
        high = budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, BUDGET)
        low = -budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, BUDGET)
        limit = rating[kept]
        fine = (high <= limit) & (low >= -limit)
        for k in picked:
            column = h[:, candidates.positions[k]]
            for c in (alone.capacity_mw[k], alone.capacity_mw[k] + 1e-3):
                excess = np.max(np.maximum(high + np.maximum(column, 0) * c - limit,
                                           -limit - (low - np.maximum(-column, 0) * c))[fine])
                if c == alone.capacity_mw[k]:
                    assert excess <= TOL
                else:
                    worst_excess[k] = max(worst_excess[k], excess)
    assert all(excess > 0 for excess in worst_excess.values())
    n0 = capacity_study(network, scenarios, candidates, [EPS], criteria=SecurityCriteria(**BOX)).standalone[0].capacity_mw
    assert np.all(alone.capacity_mw <= n0 + TOL) and np.any(alone.capacity_mw < n0 - 1.0)


def test_standalone_after_outages_equals_every_pair_evaluated(ieee118, recomputed):
    """The screen (docs/models/capacity.md#eq-c-23) skips pairs; skipping must not change a single
    number: firm and the tier, every candidate, against (C-20) over every (line, outage) pair of the
    networks recomputed without each line, and the intact study's own rows."""
    network, scenarios, candidates, study = ieee118
    rating = np.array([line.thermal_limit_mw for line in network.lines])
    intact = capacity_study(network, scenarios, candidates, [EPS], criteria=SecurityCriteria(**BOX)).standalone
    expected = [model.capacity_mw.copy() for model in intact]
    for _, kept, h in recomputed:
        on = h[:, list(candidates.positions)]
        coef = np.vstack([on, -on])
        flows = scenarios.samples_mw @ h.T
        statistics = (np.concatenate([budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, BUDGET),
                                      budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, BUDGET)]),
                      np.concatenate([_top_cvar(flows), _top_cvar(-flows)]))
        limit = np.tile(rating[kept], 2)
        for best, statistic in zip(expected, statistics):
            room = (limit - statistic)[:, None]
            live = (coef > 1e-12) & ((room >= 0) | (coef >= study.touch_factor))
            ratio = np.where(live, np.where(room >= 0, room, 0.0) / np.where(live, coef, 1.0), np.inf)
            np.minimum(best, ratio.min(axis=0), out=best)
    for model, best in zip(study.standalone, expected):
        np.testing.assert_allclose(model.capacity_mw, best, rtol=1e-9, atol=1e-7)
    assert np.any(expected[1] < intact[1].capacity_mw - 1.0)   # the outages do bind the tier


def test_the_sweep_forms_scenario_flows_only_for_pairs_that_could_lower_a_tier(ieee118, monkeypatch):
    """The stand-alone sweep bounds each pair's CVaR by (C-29) before it forms the pair's scenario
    flows: most pairs it evaluates are spared them here, and the capacities (checked against every
    pair above) do not move."""
    import grid.capacity.rows.outages as outages_module

    network, scenarios, candidates, study = ieee118
    counts = {"lines": 0, "exact": 0}
    exact_lines = outages_module._Block.exact_lines

    def spy(self, coef, rating, lines, k, factor):
        need, bounded = exact_lines(self, coef, rating, lines, k, factor)
        counts["lines"] += lines.size
        counts["exact"] += int(need.sum())
        return need, bounded

    monkeypatch.setattr(outages_module._Block, "exact_lines", spy)
    again = capacity_study(network, scenarios, candidates, [EPS], criteria=SecurityCriteria(outages="n-1", **BOX))
    assert 0 < counts["exact"] < counts["lines"] // 2
    for mine, theirs in zip(again.standalone, study.standalone):
        assert np.array_equal(mine.capacity_mw, theirs.capacity_mw) and mine.binding == theirs.binding


def test_a_row_may_lower_a_capacity_exactly_when_some_ratio_is_below_it():
    """may_lower against the ratios themselves (C-20), over random rows with ties, zero and
    negative rooms, zero capacities and unbounded ones: every row with a counted ratio below its
    candidate's capacity is flagged (with the slack), and a row flagged without slack has one at
    or below it."""
    import grid.capacity.rows.outages as outages_module

    rng = np.random.default_rng(4)
    coef = np.round(rng.normal(0.0, 0.5, (400, 12)), 1)
    room = np.round(rng.uniform(-5.0, 40.0, 400), 0)
    known = np.round(rng.uniform(0.0, 60.0, 12), 0)
    known[[2, 7]] = [0.0, np.inf]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(coef > 1e-12, np.where(room[:, None] >= 0, room[:, None] / coef, 0.0), np.inf)
    below = (ratio < known[None, :]).any(axis=1)
    at_most = (ratio <= known[None, :]).any(axis=1)
    assert below.sum() > 50 and (at_most & ~below).sum() > 5     # ties
    wide = outages_module.may_lower(coef, room, known, slack=1e-9)
    strict = outages_module.may_lower(coef, room, known)
    assert np.all(wide[below]) and np.all(at_most[strict] | (room[strict] < 0))


def test_more_screened_pairs_than_the_table_holds_are_refused_with_the_fix(ieee118, monkeypatch):
    """A background that overloads the network after outages (here: a ceiling the study's own 118-bus
    pairs exceed) stops with the counts and what to change, before any row is built."""
    import grid.capacity.rows.outages as outages

    network, scenarios, candidates, _ = ieee118
    monkeypatch.setattr(outages, "MAX_PAIR_ENTRIES", 2 * 10 * len(candidates))
    with pytest.raises(GridError, match=r"N-1: [\d,]+ \(line, outage\) pairs come within 1% .* use criterion = 'n-0'"):
        capacity_study(network, scenarios, candidates, [EPS], criteria=SecurityCriteria(outages="n-1", **BOX))


def test_firm_capacity_at_the_forecast_peak_holds_there_and_no_more(ieee118):
    """background = "peak" with loads varying below their base: firm capacity keeps every line within
    its rating with each load at its base (the forecast peak), by shift factors rebuilt from the
    reactances, some line is then at its rating, and it is at least the box's firm capacity."""
    network = ieee118[0]
    candidates = ieee118[2]
    below = sample_base_load(network, BaseLoadSpread(above_sd=0.0), 1000, np.random.default_rng(2))
    peak = capacity_study(network, below, candidates, [EPS], criteria=SecurityCriteria(background="peak"))
    box = capacity_study(network, below, candidates, [EPS])
    firm = peak.firm.vector(candidates)
    h = shift_factors_without(network, None)[0]
    np.testing.assert_allclose(below.upper_mw, [bus.base_load_mw - sum(g.output_mw for g in network.generators
                                                                        if g.bus == bus.number) for bus in network.buses],
                               atol=1e-9)
    on = h[:, list(candidates.positions)]
    at_peak = h @ below.upper_mw
    rating = np.array([line.thermal_limit_mw for line in network.lines])
    fine = np.abs(at_peak) <= rating
    high = at_peak + np.maximum(on, 0) @ firm
    low = at_peak - np.maximum(-on, 0) @ firm
    assert np.all(high[fine] <= rating[fine] + TOL) and np.all(low[fine] >= -rating[fine] - TOL)
    assert np.max(np.maximum(high - rating, -rating - low)[fine]) > -TOL
    assert firm.sum() > box.firm.vector(candidates).sum() + 1.0


def test_the_risk_check_skips_only_rows_no_state_of_the_box_can_break(ieee118):
    """(C-24): every row's ceiling is at least its background in every sampled state and at random
    corners of the box (post-outage rows included), and the check with the skip counts exactly what
    the check of every row counts."""
    from grid.capacity.rows.limits import LOWER, UPPER, row_background
    from grid.capacity.verify import row_ceiling, verify_risk

    network, scenarios, candidates, study = ieee118
    limits, flows = study.limits, study.flows
    kinds = np.array(limits.kinds)
    lines = np.unique(limits.line[(kinds == UPPER) | (kinds == LOWER)])
    dense = np.vstack([h for _, h in flows.blocks(lines)])
    box = (scenarios.lower_mw, scenarios.upper_mw)
    ceiling = row_ceiling(limits, lines, dense, flows.offset_mw, box)
    corners = np.where(np.random.default_rng(5).random((400, len(network.buses))) < 0.5, *box)

    def line_flows(wanted, p):
        return dense[np.searchsorted(lines, wanted)] @ p.T + flows.offset_mw[wanted][:, None]

    for states in (scenarios.samples_mw, corners):
        background = row_background(limits, states, np.arange(len(limits)), line_flows)
        assert np.all(background <= ceiling[:, None] + 1e-9)
    assert limits.has_outages and np.isfinite(ceiling).all()

    def fresh():
        rng = np.random.default_rng(8)
        return lambda n: sample_base_load(network, BaseLoadSpread(), n, rng)

    ids = {"product_ids": lambda bus, m: f"{bus}/{m}", "chunk": 1500}
    assert verify_risk(study, fresh(), 3000, box=box, **ids) == verify_risk(study, fresh(), 3000, **ids)


def test_a_pass_adds_the_pairs_that_load_their_line_most_first(monkeypatch):
    """Past twice a pass's room a pass keeps the room's worth of the worst pairs (flow over
    rating), in the order they were found; below it, every pair."""
    import grid.capacity.rows.outages as outages

    found = [(1, 7, 1.02), (2, 7, 1.50), (3, 8, 0.995), (1, 9, 1.20), (4, 9, 1.10)]
    monkeypatch.setattr(outages, "MAX_PAIR_ENTRIES", outages._PASS_SHARE * 5 * 2)   # a room of 2 pairs of 5 candidates
    assert outages._worst_first(found, 5) == [(2, 7), (1, 9)]
    monkeypatch.setattr(outages, "MAX_PAIR_ENTRIES", outages._PASS_SHARE * 5 * 3)   # 5 pairs fit in twice a room of 3
    assert outages._worst_first(found, 5) == [(1, 7), (2, 7), (3, 8), (1, 9), (4, 9)]


def test_scenario_flows_made_on_demand_give_the_study_with_them_kept(monkeypatch):
    """Above FLOW_CACHE_BYTES the intact network's scenario flows are made again for each block of
    lines asked for (ScenarioFlows without its whole table): every capacity, stand-alone capacity
    and binding limit the same as with the table kept."""
    import grid.capacity.rows.outages as outages

    network = load_case("ieee30")
    scenarios = sample_base_load(network, BaseLoadSpread(), 300, np.random.default_rng(2))
    candidates = make_candidates(network, {bus.number: 50.0 for bus in network.buses if bus.base_load_mw > 0})

    def study():
        return capacity_study(network, scenarios, candidates, [0.02, 0.1], criteria=SecurityCriteria(outages="n-1"))

    kept = study()
    monkeypatch.setattr(outages, "FLOW_CACHE_BYTES", 0)   # no table kept; blocks of one line
    made = study()
    assert len(made.limits) == len(kept.limits) and made.outages.studied.size > 10
    # The same products, though made in blocks of other shapes: equal to BLAS's last bits.
    for mine, theirs in zip((made.firm, *made.tiers, *made.full_draw), (kept.firm, *kept.tiers, *kept.full_draw)):
        np.testing.assert_allclose(mine.vector(candidates), theirs.vector(candidates), rtol=1e-12, atol=1e-9)
        assert mine.binding == theirs.binding
    for mine, theirs in zip(made.standalone, kept.standalone):
        np.testing.assert_allclose(mine.capacity_mw, theirs.capacity_mw, rtol=1e-12, atol=1e-9)
        assert mine.binding == theirs.binding
    assert any("after the outage" in name for alone in kept.standalone for name in alone.binding)


def test_the_row_facts_carried_from_pass_to_pass_are_those_made_afresh(ieee118, monkeypatch):
    """Each pass grows the table and hands its new table the per-row facts the old one had made
    (coefficient signs, a+, the CVaR of every row at the tier's eps), extended by the new rows;
    made afresh over the final table's rows, they are the same, bit for bit. The touch rows read
    off the stored coefficients are those of the coefficients at or above the touch factor."""
    import dataclasses

    import grid.capacity.rows.outages as outages_module

    network, scenarios, candidates, _ = ieee118
    carried, cvars = [], []

    def spy(older, newer, added, at_most=None):
        carry_row_caches(older, newer, added, at_most)
        carried.append({"coef_signs", "coef_positive"} <= set(newer.__dict__))
        cvars.append(EPS in newer.__dict__.get("_dcmarket_cvar", {}))

    monkeypatch.setattr(outages_module, "carry_row_caches", spy)
    # Passes of at most 20 pairs: the first finds over a thousand near, so more passes follow.
    monkeypatch.setattr(outages_module, "MAX_PAIR_ENTRIES", outages_module._PASS_SHARE * len(candidates) * 20)
    table = capacity_study(network, scenarios, candidates, [EPS],
                           criteria=SecurityCriteria(outages="n-1", **BOX)).limits
    assert sum(carried) >= 2   # the passes after a solve had asked for them carried both
    fresh = dataclasses.replace(table)   # the same rows, no fact made yet
    assert not {"coef_signs", "coef_positive"} & set(fresh.__dict__)
    assert all(np.array_equal(mine, theirs) for mine, theirs in zip(table.coef_signs, fresh.coef_signs))
    for field in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(table.coef_positive, field), getattr(fresh.coef_positive, field)), field
    assert any(cvars) and np.array_equal(table.cvar(EPS), fresh.cvar(EPS))
    assert np.array_equal(table.cvar(EPS), cvar_from_tail(table.tail_mw, EPS, table.count))
    pairs = table.outage >= 0
    assert np.array_equal(table.touch[pairs].toarray(), table.coef[pairs].toarray() >= DEFAULT_TOUCH_FACTOR)


def test_the_intact_extremes_kept_for_a_box_are_those_of_the_box_asked(ieee118):
    """The outage set keeps the intact lines' extremes for the box asked last: asking for boxes in
    turn (the scenarios' box, its budgeted form, the forecast peak, then the first again) gives
    each box's own extremes of every line, to the bit, and the kept arrays cannot be written."""
    from grid.capacity.inputs.criteria import scenario_box

    network, scenarios, _, study = ieee118
    flows, outages = flow_model(network), study.outages
    boxes = [scenario_box(scenarios), SecurityCriteria(**BOX).firm_box(scenarios),
             SecurityCriteria(background="peak").firm_box(scenarios)]
    for box in boxes + boxes[:1]:
        up, down = outages.extremes(box, flows.offset_mw)
        want_up, want_down = box.extremes(outages.rows, flows.offset_mw)
        assert np.array_equal(up, want_up) and np.array_equal(down, want_down)
        # An independent form of (2a)/(2b) where the box has no budget.
        if box.budget is None:
            centre, half = (box.upper + box.lower) / 2, (box.upper - box.lower) / 2
            flow = outages.rows @ centre + flows.offset_mw
            np.testing.assert_allclose(up, flow + np.abs(outages.rows) @ half, atol=1e-9)
            np.testing.assert_allclose(down, -flow + np.abs(outages.rows) @ half, atol=1e-9)
        with pytest.raises(ValueError):
            up[0] = 0.0
    assert not np.array_equal(outages.extremes(boxes[1], flows.offset_mw)[0],
                              outages.extremes(boxes[0], flows.offset_mw)[0])


def test_post_outage_rows_are_h_l_plus_lodf_h_k_and_leave_the_stored_rows(ieee118):
    """(C-21) for a block of pairs and for one outage: the very bits of h_l + LODF_lk h_k, with
    the stored shift factors and the intact scenario flows unchanged (the sum is made in a
    scratch copy)."""
    from grid.capacity.rows.outages import ScenarioFlows, post_outage_rows

    network, scenarios, _, study = ieee118
    outages, flows = study.outages, flow_model(network)
    rows_before = outages.rows.copy()
    rng = np.random.default_rng(4)
    lines = rng.integers(0, len(network.lines), 40)
    out = outages.studied[rng.integers(0, outages.studied.size, 40)]
    factor = rng.normal(size=40)
    h, offset = post_outage_rows(outages, flows, lines, out, factor)
    assert np.array_equal(h, outages.rows[lines] + factor[:, None] * outages.rows[out])
    assert np.array_equal(offset, flows.offset_mw[lines] + factor * flows.offset_mw[out])
    one, _ = post_outage_rows(outages, flows, lines, int(out[0]), factor)
    assert np.array_equal(one, outages.rows[lines] + factor[:, None] * outages.rows[int(out[0])])
    assert np.array_equal(outages.rows, rows_before)
    background = ScenarioFlows(outages, flows, scenarios)
    kept = background.lines(np.arange(len(network.lines))).copy()
    after = background.after(lines, out, factor)
    assert np.array_equal(after, kept[lines] + factor[:, None] * kept[out])
    assert np.array_equal(background.lines(np.arange(len(network.lines))), kept)


@pytest.mark.parametrize("room", [1, 7, 60, 500, 10**6])
def test_a_pass_stopped_by_the_bound_adds_what_evaluating_every_pair_adds(ieee118, monkeypatch, room):
    """screen() evaluates the pairs in descending order of their bound (C-22) and stops once its
    room holds pairs above every bound left. The pairs it adds, in their order, are those of
    evaluating every pair of every outage exactly and keeping the worst (_worst_first), here at
    capacities that bring thousands of pairs near (every candidate at its 100 MW request)."""
    import grid.capacity.rows.outages as outages_module
    from grid.capacity.inputs.criteria import SecurityCriteria as Criteria

    network, scenarios, candidates, study = ieee118
    monkeypatch.setattr(outages_module, "MAX_PAIR_ENTRIES", outages_module._PASS_SHARE * len(candidates) * room)
    capacity = np.full(len(candidates), 100.0)
    box = Criteria(**BOX).firm_box(scenarios)
    flows = flow_model(network)
    outages = study.outages
    near = np.where(np.isfinite(outages.emergency_mw), (1.0 - outages_module.SCREEN_MARGIN) * outages.emergency_mw,
                    np.inf)
    every = []
    for j, k in enumerate(outages.studied):   # every line but the one out, an outage at a time
        lines = np.array([l for l in range(len(network.lines)) if l != k])
        found = outages_module._near_pairs(outages, flows, candidates, capacity, "partial", box, lines,
                                           np.full(lines.size, j), near, set())
        every += zip(found.line.tolist(), found.outage.tolist(), found.share.tolist())
    assert len(every) > 1000
    expected = outages_module._worst_first(every, len(candidates))
    evaluated = []
    near_pairs = outages_module._near_pairs
    monkeypatch.setattr(outages_module, "_near_pairs", lambda *args: evaluated.extend(args[6]) or near_pairs(*args))
    maybe = outages_module._maybe_pairs(outages, flows, candidates, capacity, "partial", box, near).line.size
    for batch in (4096, 300, 1):   # pairs evaluated in one go
        monkeypatch.setattr(outages_module, "_SCREEN_BATCH", batch)
        evaluated.clear()
        assert outages_module.screen(outages, flows, candidates, capacity, "partial", box, set()) == expected
        assert len(expected) == min(room, len(every))
        if batch == 1:   # stopped early where it could: only past twice the room are some pairs left out
            assert len(evaluated) < maybe if 2 * room < len(every) else len(evaluated) == maybe


def test_the_screen_at_the_forecast_peak_reads_flows_recomputed_without_the_line(ieee118):
    """At one background state (the forecast peak) the screen forms only the candidates' columns
    and takes the background flow after an outage as f_l + LODF f_k of the intact flows: each
    pair's worst flow and reverse flow with the candidates at 100 MW equal those of H rebuilt
    without the outaged line (partial draw set: the positive parts of the rebuilt coefficients),
    and the pairs found near are those of the whole-row evaluation."""
    import dataclasses

    import grid.capacity.rows.outages as outages_module

    network, scenarios, candidates, study = ieee118
    box = SecurityCriteria(background="peak").firm_box(scenarios)
    assert box.is_point
    flows, outages = flow_model(network), study.outages
    capacity = np.full(len(candidates), 100.0)
    intact = outages_module._Intact.of(outages, flows, candidates, box)
    whole_rows = dataclasses.replace(intact, point=False)
    for j in range(0, outages.studied.size, 17):
        k = int(outages.studied[j])
        lines = np.array([l for l in range(len(network.lines)) if l != k])
        on, high, reverse = intact.after(outages, flows, candidates, box, lines, np.full(lines.size, k),
                                         outages.lodf[lines, j])
        h, kept = shift_factors_without(network, k)
        assert kept == lines.tolist()
        rebuilt = h[:, list(candidates.positions)]
        np.testing.assert_allclose(on, rebuilt, atol=1e-9)
        flow = h @ box.upper + flows.offset_mw[lines]
        np.testing.assert_allclose(high + np.maximum(on, 0) @ capacity, flow + np.maximum(rebuilt, 0) @ capacity,
                                   atol=1e-6)
        np.testing.assert_allclose(reverse + np.maximum(-on, 0) @ capacity, -flow + np.maximum(-rebuilt, 0) @ capacity,
                                   atol=1e-6)
    near = np.where(np.isfinite(outages.emergency_mw), (1.0 - outages_module.SCREEN_MARGIN) * outages.emergency_mw,
                    np.inf)
    maybe = outages_module._maybe_pairs(outages, flows, candidates, capacity, "partial", box, near, intact)
    found, found_whole = (outages_module._near_pairs(outages, flows, candidates, capacity, "partial", box, maybe.line,
                                                     maybe.column, near, set(), way) for way in (intact, whole_rows))
    assert found.line.size > 100
    assert np.array_equal(found.line, found_whole.line) and np.array_equal(found.column, found_whole.column)


@pytest.mark.parametrize("each_mw", [0.0, 5.0, 100.0])
def test_the_screens_bound_keeps_the_pairs_every_pairs_bound_keeps(ieee118, each_mw):
    """_maybe_pairs forms (C-22) only where a cheaper bound reaches the threshold; what it lists
    (the pairs by outage, then line, each with its bound as a share of its threshold) is what
    (C-22) formed for every pair at once gives, to the bit, from a few outages near to thousands
    of pairs."""
    import grid.capacity.rows.outages as outages_module

    network, scenarios, candidates, study = ieee118
    flows, outages = flow_model(network), study.outages
    box = SecurityCriteria(**BOX).firm_box(scenarios)
    capacity = np.full(len(candidates), each_mw)
    near = np.where(np.isfinite(outages.emergency_mw), (1.0 - outages_module.SCREEN_MARGIN) * outages.emergency_mw,
                    np.inf)
    intact = outages_module._Intact.of(outages, flows, candidates, box)
    up, down = outages_module._line_extremes(intact, capacity, "partial")
    out = outages.studied
    bound = np.maximum(outages_module.outage_bound(up[:, None], up[out], down[out], outages.lodf),
                       outages_module.outage_bound(down[:, None], down[out], up[out], outages.lodf))
    limit = outages.emergency_mw
    slack = 1e-9 * np.maximum(1.0, np.where(np.isfinite(limit), np.abs(limit), 1.0))
    maybe = bound > (near - slack)[:, None]
    maybe[out, np.arange(out.size)] = False
    column, line = np.nonzero(maybe.T)   # by outage, then line
    found = outages_module._maybe_pairs(outages, flows, candidates, capacity, "partial", box, near, intact)
    assert found.line.size >= (0 if each_mw == 0 else 100)
    assert np.array_equal(found.column, column) and np.array_equal(found.line, line)
    assert np.array_equal(found.share, bound[line, column] / near[line])


def test_the_study_on_workers_gives_the_study_in_process(ieee118):
    """Under N-1 in process, the outage set's H and scenario flows give the limit table its line
    rows and tails; with a block map (a cluster's workers, here played by this process) the lines'
    tails are made per block from the network instead. The same products, rows and pairs: every
    capacity and binding limit equal, to BLAS's last bits."""
    from grid.capacity.rows.limits import in_process

    network, scenarios, candidates, study = ieee118
    there = capacity_study(network, scenarios, candidates, [EPS], criteria=SecurityCriteria(outages="n-1", **BOX),
                           block_map=in_process)
    assert len(there.limits) == len(study.limits) and study.limits.has_outages
    for mine, theirs in zip((there.firm, *there.tiers), (study.firm, *study.tiers)):
        np.testing.assert_allclose(mine.vector(candidates), theirs.vector(candidates), rtol=1e-12, atol=1e-9)
        assert mine.binding == theirs.binding
    np.testing.assert_allclose(there.limits.tail_mw, study.limits.tail_mw, rtol=1e-12, atol=1e-9)
