"""Security criteria (docs/models/capacity.md#security-criteria): the partial draw set holds for
every subset of products sold and every partial draw, the paper's full draw set does not where it
counts on counterflow, the two are the same on radial networks, and the stand-alone capacity is
the largest single-bus load that every limit admits.

The references are built here: the PTDF from the lines' reactances with numpy (reference slack),
the box's worst case by its corners, CVaR by sorting, and every subset of the candidates
enumerated."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.inputs.criteria import SecurityCriteria
from grid.capacity.study import capacity_study
from grid.errors import GridError
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.network.cases import load_case

TOL = 1e-6


def reference_ptdf(network) -> np.ndarray:
    """H (lines x buses) of the DC power flow, reference slack, from scratch: flows of 1 MW
    withdrawn at each bus and injected at the reference bus."""
    index = {bus.number: i for i, bus in enumerate(network.buses)}
    n = len(network.buses)
    incidence = np.zeros((len(network.lines), n))
    for l, line in enumerate(network.lines):
        incidence[l, index[line.from_bus]], incidence[l, index[line.to_bus]] = 1.0, -1.0
    b = np.array([1.0 / line.reactance_pu for line in network.lines])
    susceptance = incidence.T @ (b[:, None] * incidence)
    keep = [i for i in range(n) if i != index[network.reference_bus]]
    theta = np.zeros((n, n))
    # A withdrawal of 1 at bus j: B theta = -e_j (on the buses but the reference).
    theta[np.ix_(keep, keep)] = -np.linalg.inv(susceptance[np.ix_(keep, keep)])
    return b[:, None] * (incidence @ theta)


def distributed_shift_factors(network) -> np.ndarray:
    """H with the slack distributed over the generators by headroom (max - output): 1 MW withdrawn
    at j is supplied in shares alpha, so its flows are H_ref e_j - H_ref alpha."""
    index = {bus.number: i for i, bus in enumerate(network.buses)}
    alpha = np.zeros(len(network.buses))
    for generator in network.generators:
        alpha[index[generator.bus]] += max(generator.max_mw - generator.output_mw, 0.0)
    alpha /= alpha.sum()
    h = reference_ptdf(network)
    return h - (h @ alpha)[:, None]


def worst_flows(h: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max and min of h . p over the box, at its corners (each load at the bound its sign picks)."""
    high = np.where(h > 0, upper, lower)
    low = np.where(h > 0, lower, upper)
    return (h * high).sum(axis=1), (h * low).sum(axis=1)


@pytest.fixture(scope="module")
def ieee14():
    """IEEE 14 as built in: the slack distributed over its five generators by headroom, so a new
    load moves flows both ways; every load bus asks 60 MW."""
    network = load_case("ieee14")
    assert network.slack == "distributed"
    scenarios = sample_base_load(network, BaseLoadSpread(), 400, np.random.default_rng(14))
    demand = {bus.number: 60.0 for bus in network.buses if bus.base_load_mw > 0}
    return network, scenarios, make_candidates(network, demand)


def _violated_subsets(network, scenarios, candidates, capacity: np.ndarray) -> list[tuple[int, ...]]:
    """Every subset of candidates that, drawn in full with the others idle, overloads some line
    at the worst corner of the background box. (The supply row's coefficients are all 1: its
    worst draw is every product in full, under both draw sets.)"""
    h = distributed_shift_factors(network)
    on_candidates = h[:, list(candidates.positions)]
    high, low = worst_flows(h, scenarios.lower_mw, scenarios.upper_mw)
    limit = np.array([line.thermal_limit_mw for line in network.lines])
    bad = []
    for size in range(len(capacity) + 1):
        for subset in itertools.combinations(range(len(capacity)), size):
            draw = np.zeros(len(capacity))
            draw[list(subset)] = capacity[list(subset)]
            flow = on_candidates @ draw
            if np.any(flow + high > limit + TOL) or np.any(flow + low < -limit - TOL):
                bad.append(tuple(candidates.buses[k] for k in subset))
    return bad


def test_firm_capacity_holds_for_every_subset_sold_and_the_papers_does_not(ieee14):
    network, scenarios, candidates = ieee14
    study = capacity_study(network, scenarios, candidates, [0.05])
    assert study.criteria.draw == "partial" and study.firm.draw == "partial"
    firm = study.firm.vector(candidates)
    assert firm.sum() > 1.0  # something to check
    # 2^11 subsets: each drawn in full, the rest idle. Linear in the draws, so the corners cover
    # every partial draw too.
    assert _violated_subsets(network, scenarios, candidates, firm) == []
    paper = study.full_draw[0].vector(candidates)
    assert paper.sum() > firm.sum() + 1.0  # counterflow counted on
    assert _violated_subsets(network, scenarios, candidates, paper) != []
    counterflow = study.counterflow_mw()[0]
    assert sum(counterflow.values()) == pytest.approx(paper.sum() - firm.sum(), abs=1e-6)


def test_flexible_tiers_hold_in_cvar_for_sampled_partial_draws_on_ieee118():
    network = load_case("ieee118")
    network = dataclasses.replace(network, slack="reference", import_limit_mw=float("inf"))
    scenarios = sample_base_load(network, BaseLoadSpread(), 600, np.random.default_rng(118))
    candidates = make_candidates(network, {bus.number: 150.0 for bus in network.buses if bus.base_load_mw > 0})
    eps = 0.05
    study = capacity_study(network, scenarios, candidates, [eps], criteria=SecurityCriteria(background="budgeted", budget=20))
    flexible = study.tiers[0].vector(candidates)
    assert study.tiers[0].draw == "partial" and flexible.sum() > 1.0
    h = reference_ptdf(network)
    background = scenarios.samples_mw @ h.T                      # (S, lines)
    limit = np.array([line.thermal_limit_mw for line in network.lines])
    finite = np.isfinite(limit)
    blocked = {b.line for b in study.tiers[0].blocked if b.line}
    checked = np.array([line.name not in blocked for line in network.lines]) & finite
    rng = np.random.default_rng(5)
    draws = [flexible, np.zeros_like(flexible)] + [flexible * rng.uniform(size=flexible.size) for _ in range(40)]
    draws += [flexible * (rng.uniform(size=flexible.size) < 0.5) for _ in range(40)]
    tail = int(np.floor(eps * scenarios.count))
    worst = -np.inf
    for draw in draws:
        flows = background + h[:, list(candidates.positions)] @ draw   # (S, lines)
        for excess in (flows - limit, -limit - flows):
            ordered = -np.sort(-excess[:, checked], axis=0)
            mass = eps * scenarios.count
            cvar = (ordered[:tail].sum(axis=0) + (mass - tail) * ordered[tail]) / mass
            worst = max(worst, float(cvar.max()))
    assert worst <= 1e-6


@pytest.mark.parametrize("case", ["paper-4bus", "ieee33bw"])
def test_radial_networks_fed_from_the_reference_get_the_papers_numbers(case):
    network = load_case(case)
    network = dataclasses.replace(network, slack="reference")
    scenarios = sample_base_load(network, BaseLoadSpread(), 500, np.random.default_rng(3))
    buses = [bus.number for bus in network.buses if bus.number != network.reference_bus][-6:]
    candidates = make_candidates(network, {bus: 5.0 for bus in buses})
    partial = capacity_study(network, scenarios, candidates, [0.05])
    full = capacity_study(network, scenarios, candidates, [0.05], criteria=SecurityCriteria(draw="full"))
    for mine, paper in zip((partial.firm, *partial.tiers), (full.firm, *full.tiers)):
        assert mine.draw == "full"  # the same LP, solved as (C-18)
        assert mine.capacity_mw == paper.capacity_mw
    assert partial.full_draw == ()


def test_standalone_capacity_is_the_largest_single_bus_load_every_limit_admits(ieee14):
    network, scenarios, candidates = ieee14
    study = capacity_study(network, scenarios, candidates, [0.05])
    alone = study.standalone[0]
    h = distributed_shift_factors(network)
    high, low = worst_flows(h, scenarios.lower_mw, scenarios.upper_mw)
    limit = np.array([line.thermal_limit_mw for line in network.lines])
    names = alone.binding
    for k, position in enumerate(candidates.positions):
        c = alone.capacity_mw[k]
        assert np.isfinite(c) and c >= 0.0
        for x in (0.0, c):  # the corners of [0, c]
            flow = h[:, position] * x
            assert np.all(flow + high <= limit + TOL) and np.all(flow + low >= -limit - TOL)
        more = h[:, position] * (c + 1e-3)
        assert np.any(more + high > limit) or np.any(more + low < -limit)  # nothing is left on the table
        assert names[k].startswith("line ")
    # The joint allocation shares the network: no bus gets more than it could take alone.
    assert np.all(study.firm.vector(candidates) <= alone.capacity_mw + TOL)


def test_an_unknown_draw_set_is_named():
    with pytest.raises(GridError, match="draw 'some' is not a draw set; choose one of partial, full"):
        SecurityCriteria(draw="some")


@pytest.mark.parametrize("budget", [None, 0.0, 1.0, 2.0, 6.0])
@pytest.mark.parametrize("point", [False, True])
def test_the_worst_flows_both_ways_are_those_of_the_box_corners(budget, point):
    """FirmBox.extremes against the corners of the box, enumerated: with an integer budget Gamma,
    every way of sending at most Gamma loads to a bound while the rest stay at the middle. The
    reverse flow it returns is worst(-h), bit for bit (one product of h serves both), and a
    point (the forecast peak) gives h . p both ways."""
    from grid.capacity.inputs.criteria import FirmBox

    rng = np.random.default_rng(5)
    n = 6
    h = rng.normal(size=(4, n)) * np.array([1.0, 1e-3, 10.0, 0.0])[:, None]
    lower = rng.normal(size=n) * 20
    upper = lower if point else lower + rng.random(n) * 15
    offset = rng.normal(size=4)
    box = FirmBox(lower, upper, budget, "test")
    high, reverse = box.extremes(h, offset)
    centre, half = (lower + upper) / 2, (upper - lower) / 2
    cap = n if budget is None else int(budget)
    corners = [centre + np.array(signs) * half * np.isin(np.arange(n), moved)
               for size in range(cap + 1) for moved in itertools.combinations(range(n), size)
               for signs in itertools.product((-1.0, 1.0), repeat=n)]
    flows = np.array([h @ p for p in corners])
    assert np.allclose(high, flows.max(axis=0) + offset, rtol=1e-12, atol=1e-9)
    assert np.allclose(reverse, (-flows).max(axis=0) - offset, rtol=1e-12, atol=1e-9)
    assert np.array_equal(reverse, box.worst(-h) - offset) and np.array_equal(high, box.worst(h) + offset)
    if point:
        assert np.array_equal(high, h @ lower + offset)
