"""The aggregator's day as one MILP (grid/feeder/bilevel.py ``aggregator_schedule``) against the
enumeration of every schedule, each hour priced by the DSO's OPF alone; the workload model
(docs/models/dlmp.md#eq-d-19 to #eq-d-21) by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from grid.errors import GridError
from grid.feeder.bilevel import DataCenterSite, Decision, Hour, aggregator_payment, aggregator_schedule
from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.feeder.load_shapes import hourly_shape
from grid.feeder.opf import dso_opf
from grid.feeder.periods import Period, period_inputs
from grid.feeder.upper_level import SvgSettings
from grid.feeder.workloads import BatchJob, Battery, Servers, SiteLoad, WorkPlan
from grid.network.three_phase import load_ieee37
from tests.conftest import need_glpk

SETTINGS = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.01, v_min_pu=0.95)
GENERATORS = (DistributedGenerator("G711", 711, 60.0, 52.0),)
SERVERS = Servers(count=100, idle_kw=1.0, peak_kw=3.0, capacity=10.0, pue=1.2)   # 120 kW idle, 60 kW a step
WORK_STEP = 250.0


@pytest.fixture(scope="module")
def feeder():
    return load_ieee37()


def _hours(feeder):
    """Three hours: a light cheap night, a heavy noon at 40 $/MWh whose floor is near, an evening
    at 48 $/MWh."""
    scale = hourly_shape(feeder, [0.6, 1.05, 0.85])
    periods = [Period("night", 30.0, scale[0]), Period("noon", 40.0, scale[1]), Period("evening", 48.0, scale[2])]
    return [Hour(*period_inputs(feeder, GENERATORS, SETTINGS, p)) for p in periods]


SITES = (DataCenterSite(738, 1000.0, power_factor=0.9), DataCenterSite(725, 1000.0, power_factor=0.9))
# A job released at noon: the night is out of its window, however cheap.
PLAN = WorkPlan((2, 3, 1), (BatchJob("train", 3, 1, 2),))


def _best_by_enumeration(feeder, hours, loads, plan):
    """min over every schedule of the sum of the hours' payments at the OPF's own prices. Hours
    share only the batch steps, so each hour's cheapest split for each total is found once, then
    every placement of the job's steps over its window is tried."""
    cheapest: dict[tuple[int, int], tuple[float, tuple[int, ...]]] = {}
    for t, hour in enumerate(hours):
        for total in range(plan.interactive[t], plan.interactive[t] + plan.jobs[0].steps + 1):
            best = (np.inf, ())
            for split in itertools.product(*(range(loads[s.bus].low, loads[s.bus].high + 1) for s in SITES)):
                if sum(split) != total:
                    continue
                decision = Decision({s.bus: loads[s.bus].kw(n) for s, n in zip(SITES, split)})
                try:
                    opf = dso_opf(hour.feeder, hour.generators, hour.settings, **decision.opf_inputs(SITES))
                except Exception:   # this split breaks the voltage floor: not a schedule
                    continue
                best = min(best, (aggregator_payment(SITES, decision, opf, _no_svg()), split))
            cheapest[t, total] = best
    job = plan.jobs[0]
    results = []
    for placed in itertools.product(range(job.steps + 1), repeat=len(hours)):
        if sum(placed) != job.steps or any(x and not job.release <= t <= job.deadline for t, x in enumerate(placed)):
            continue
        cost = sum(cheapest[t, plan.interactive[t] + x][0] for t, x in enumerate(placed))
        results.append((cost, placed))
    return min(results), sorted(results)


def _no_svg():
    from grid.feeder.bilevel import Workload

    return Workload(0.0, 1.0)


@pytest.mark.parametrize("linearization", ["strong-duality", "mccormick"])
def test_the_days_schedule_equals_enumeration_of_every_schedule(feeder, linearization):
    """Two sites with idle load, three hours, interactive work each hour and one batch job that
    may run at noon or in the evening: the MILP's day costs what the best enumerated schedule
    costs, and its own schedule, priced hour by hour by the OPF alone, costs that too. At the
    substation's prices the whole job would run at noon; the floor binds there, so the DLMPs at
    the sites rise with the job's steps and the best day runs one step in the evening."""
    hours = _hours(feeder)
    loads = {s.bus: SERVERS.load(WORK_STEP) for s in SITES}
    (best, placed), every = _best_by_enumeration(feeder, hours, loads, PLAN)
    day = aggregator_schedule(hours, SITES, loads, PLAN, SvgSettings(50.0, 0.0), svg=False, price_bound=1e4,
                              linearization=linearization, tie_break_rule=False)
    assert day.payment == pytest.approx(best, rel=1e-7, abs=1e-6)
    repriced = 0.0
    for hour, decision in zip(hours, day.decisions):
        opf = dso_opf(hour.feeder, hour.generators, hour.settings, **decision.opf_inputs(SITES))
        repriced += aggregator_payment(SITES, decision, opf, _no_svg())
    assert repriced == pytest.approx(best, rel=1e-7, abs=1e-6)
    assert day.batch_steps["train"] == placed == (0, 2, 1)
    assert max(day.prices_p[1][738]) > 40.0 + 1.0   # noon's floor binds: the site pays above c0
    assert every[1][0] - best > 0.1   # the next best placement costs more than round-off
    for t, decision in enumerate(day.decisions):
        steps = [round((decision.load_kw[s.bus] - 120.0) / 60.0) for s in SITES]
        assert sum(steps) == PLAN.interactive[t] + day.batch_steps["train"][t]


def test_a_job_open_at_night_runs_there(feeder):
    """The same job released at midnight runs at night, the cheapest hour, where no limit binds."""
    hours = _hours(feeder)
    loads = {s.bus: SERVERS.load(WORK_STEP) for s in SITES}
    plan = WorkPlan((2, 3, 1), (BatchJob("early", 3, 0, 2),))
    day = aggregator_schedule(hours, SITES, loads, plan, SvgSettings(50.0, 0.0), svg=False, price_bound=1e4)
    assert day.batch_steps["early"] == (3, 0, 0)


def test_glpk_schedules_the_same_day(feeder):
    need_glpk()
    hours = _hours(feeder)
    loads = {s.bus: SERVERS.load(WORK_STEP) for s in SITES}
    days = [aggregator_schedule(hours, SITES, loads, PLAN, SvgSettings(50.0, 0.0), svg=False, price_bound=1e4,
                                tie_break_rule=False, solver=solver) for solver in ("highs", "glpk")]
    assert days[0].payment == pytest.approx(days[1].payment, rel=1e-7)


def test_a_sites_power_follows_its_servers_by_hand():
    """(D-19): PUE (N P_idle + (P_peak - P_idle) W / mu) for 100 servers of 1 to 3 kW, 10 units
    each, PUE 1.2: 120 kW idle, 0.24 kW per unit of work, 60 kW per 250-unit step, 4 steps."""
    load = SERVERS.load(WORK_STEP)
    assert (load.idle_kw, load.step_kw, load.low, load.high) == pytest.approx((120.0, 60.0, 0, 4))
    assert load.kw(4) == pytest.approx(1.2 * 100 * 3.0)   # every server at full use: PUE N P_peak
    flat = Servers(3, 0.5, 0.5, 1.0, 1.0).load(1.0)   # power that does not follow the work
    assert (flat.idle_kw, flat.step_kw, flat.high) == (1.5, 0.0, 3)


@pytest.mark.parametrize("make, message", [
    (lambda: BatchJob("j", 2, 3, 1), r"deadline \(hour 1\) comes before its release \(hour 3\)"),
    (lambda: Servers(0, 1.0, 2.0, 1.0), "count must be 1"),
    (lambda: Servers(10, 3.0, 2.0, 1.0), "0 <= idle_kw <= peak_kw"),
    (lambda: Servers(10, 1.0, 2.0, 1.0, pue=0.9), "pue in \\[1, 3\\]"),
    (lambda: WorkPlan((2, 9)).check([SiteLoad(0, 1, 0, 4), SiteLoad(0, 1, 0, 4)]), "hour 1: 9 steps, but the sites"),
    (lambda: WorkPlan((2, 2), (BatchJob("j", 1, 0, 2),)).check([SiteLoad(0, 1, 0, 4)]), "past the last hour"),
    (lambda: WorkPlan((4, 3), (BatchJob("j", 2, 0, 1),)).check([SiteLoad(0, 1, 0, 4)]), "2 steps do not fit hours 0"),
    (lambda: Servers(1000, 1.0, 2.0, 100.0).load(1.0), "above the 10,000 an hour may hold"),
])
def test_work_the_sites_cannot_run_is_one_line(make, message):
    with pytest.raises(GridError, match=message):
        make()


def test_the_uncoordinated_day_runs_each_job_as_soon_as_released_by_hand():
    """Room 8 steps an hour (4 + 4); interactive 6, 5, 2; job a (4 steps from hour 0) takes the 2
    spare of hour 0 and 2 of hour 1; job b (3 steps from hour 1) takes hour 1's last 1 and 2 of
    hour 2. Each hour's total is split by room, the odd step to the first site."""
    from grid.feeder.workloads import split_pro_rata, uncoordinated

    loads = [SiteLoad(0, 1, 0, 4), SiteLoad(0, 1, 0, 4)]
    plan = WorkPlan((6, 5, 2), (BatchJob("a", 4, 0, 2), BatchJob("b", 3, 1, 2)))
    steps, placed = uncoordinated(plan, loads)
    assert placed == {"a": (2, 2, 0), "b": (0, 1, 2)}
    assert steps == [[4, 4], [4, 4], [2, 2]]
    assert split_pro_rata(5, [SiteLoad(0, 1, 0, 6), SiteLoad(0, 1, 0, 2)]) == [4, 1]
    assert split_pro_rata(3, loads) == [2, 1]


def test_the_price_taking_schedule_is_the_cheapest_at_the_held_prices(feeder):
    """Against enumeration at fixed prices: every schedule of the plan, each priced at the held
    DLMPs (P and Q per phase), the cheapest equals the MILP's."""
    from grid.feeder.price_taking import price_taking_schedule

    loads = {s.bus: SERVERS.load(WORK_STEP) for s in SITES}
    rng = np.random.default_rng(7)
    held_p = [{s.bus: 30.0 + 30.0 * rng.random(3) for s in SITES} for _ in range(3)]
    held_q = [{s.bus: 5.0 * rng.random(3) for s in SITES} for _ in range(3)]
    plan = WorkPlan((2, 3, 1), (BatchJob("train", 3, 0, 2),))

    def cost(t: int, split) -> float:
        return sum(float(np.sum(held_p[t][s.bus] + s.kvar_per_kw * held_q[t][s.bus])) / 3e3 * loads[s.bus].kw(n)
                   for s, n in zip(SITES, split))

    best = np.inf
    for placed in itertools.product(range(4), repeat=3):
        if sum(placed) != 3:
            continue
        total = 0.0
        for t in range(3):
            need = plan.interactive[t] + placed[t]
            total += min(cost(t, (a, need - a)) for a in range(0, 5) if 0 <= need - a <= 4)
        best = min(best, total)
    decisions, placed, outcome = price_taking_schedule(held_p, held_q, SITES, loads, plan)
    assert outcome.objective == pytest.approx(best, rel=1e-9)
    mine = sum(cost(t, [round((d.load_kw[s.bus] - 120.0) / 60.0) for s in SITES]) for t, d in enumerate(decisions))
    assert mine == pytest.approx(best, rel=1e-9) and sum(placed["train"]) == 3


def test_a_time_limit_without_an_integer_solution_is_one_line(monkeypatch):
    """GLPK stopped by its time limit before any integer solution writes a solution file with no
    values (the 6-hour, 3-site SVG day of experiments/bench_dlmp_day.py did): solve_milp says so in
    one line instead of failing on the objective's missing values."""
    from types import SimpleNamespace

    import pyomo.environ as pyo
    from pyomo.opt import TerminationCondition

    import grid.solvers.solve as solve_module

    m = pyo.ConcreteModel()
    m.x = pyo.Var(domain=pyo.Binary)
    m.c = pyo.Constraint(expr=m.x >= 0)
    m.objective = pyo.Objective(expr=m.x)
    stopped = SimpleNamespace(solver=SimpleNamespace(termination_condition=TerminationCondition.maxTimeLimit),
                              problem=SimpleNamespace(lower_bound=None))
    monkeypatch.setattr(solve_module, "_run_milp", lambda *args: (stopped, ""))
    monkeypatch.setattr(solve_module, "_load_incumbent", lambda *args: None)   # the file held no values
    with pytest.raises(GridError, match="found no solution for the day within the time limit; allow more time"):
        solve_module.solve_milp(m, "highs", time_limit=1.0, what="the day")


# --- A site's battery (docs/models/dlmp.md#eq-d-28) ---------------------------------------------

def _battery_day(feeder, svg: bool, battery):
    """One site at 738, 300 kW in every hour, at 30 then 60 $/MWh with nothing binding (head
    1.03 p.u.): every DLMP is the substation's price, so the battery's worth is arithmetic."""
    hours = [Hour(feeder, (), OpfSettings(substation_price_per_mwh=price, head_voltage_pu=1.03)) for price in (30, 60)]
    site = (DataCenterSite(738, 600.0, power_factor=0.9, svg_kvar=100.0 if svg else 0.0),)
    loads = {738: SiteLoad(100.0, 100.0, 0, 4)}
    return aggregator_schedule(hours, site, loads, WorkPlan((2, 2)), SvgSettings(50.0, 0.0), svg=svg,
                               price_bound=1e4, linearization="strong-duality",
                               batteries={738: battery} if battery else None)


@pytest.mark.parametrize("svg", [False, True])
def test_a_battery_buys_at_30_and_sells_at_60_as_far_as_it_holds(feeder, svg):
    """100 kW and 100 kWh at half charge, 81 % round trip (90 % each way): it charges 50 / 0.9 =
    55.56 kW in the cheap hour (full), discharges 0.81 x 55.56 = 45 kW in the dear one (back to
    half), and saves 30 x 55.56 - 60 x 45 = -1.0333 $ by hand. With SVGs the day goes through
    the tie-break stage, which holds the battery where the payment put it."""
    without = _battery_day(feeder, svg, None)
    with_battery = _battery_day(feeder, svg, Battery(100.0, 100.0, efficiency=0.81, start_share=0.5))
    assert without.payment == pytest.approx(0.03 * 300 + 0.06 * 300, rel=1e-9)
    assert with_battery.payment == pytest.approx(without.payment + 0.03 * 50 / 0.9 - 0.06 * 45.0, abs=1e-6)
    draws = [d.battery_kw[738] for d in with_battery.decisions]
    assert draws == pytest.approx([50 / 0.9, -45.0], abs=1e-6)
    # A price-taker at the same (here unmoved) prices runs the battery the same way.
    from grid.feeder.price_taking import price_taking_schedule

    flat = [{738: np.full(3, price)} for price in (30.0, 60.0)]
    zero = [{738: np.zeros(3)} for _ in range(2)]
    taken, _, _ = price_taking_schedule(flat, zero, (DataCenterSite(738, 600.0, power_factor=0.9),),
                                        {738: SiteLoad(100.0, 100.0, 0, 4)}, WorkPlan((2, 2)),
                                        batteries={738: Battery(100.0, 100.0, efficiency=0.81, start_share=0.5)})
    assert [d.battery_kw[738] for d in taken] == pytest.approx(draws, abs=1e-6)
    # The DSO's OPF at each hour's decision prices it as the MILP did.
    site = (DataCenterSite(738, 600.0, power_factor=0.9),)
    for t, (decision, price) in enumerate(zip(with_battery.decisions, (30, 60))):
        opf = dso_opf(feeder, (), OpfSettings(substation_price_per_mwh=price, head_voltage_pu=1.03),
                      **Decision(decision.load_kw, {}, decision.battery_kw).opf_inputs(site))
        assert float(opf.head_kw.sum()) == pytest.approx(float(sum(feeder.load_kw[b].sum() for b in feeder.buses))
                                                         + decision.load_kw[738] + draws[t], abs=1e-6)


def test_a_battery_is_refused_in_one_line_where_the_milp_cannot_write_it(feeder):
    hours = [Hour(feeder, (), OpfSettings())]
    site = (DataCenterSite(738, 600.0),)
    loads = {738: SiteLoad(0.0, 100.0, 0, 4)}
    battery = Battery(100.0, 100.0)
    with pytest.raises(GridError, match='battery: needs linearization "strong-duality"'):
        aggregator_schedule(hours, site, loads, WorkPlan((2,)), SvgSettings(50.0, 0.0), svg=False, price_bound=1e4,
                            linearization="mccormick", batteries={738: battery})
    with pytest.raises(GridError, match="battery at bus 725: no site there"):
        aggregator_schedule(hours, site, loads, WorkPlan((2,)), SvgSettings(50.0, 0.0), svg=False, price_bound=1e4,
                            batteries={725: battery})
    with pytest.raises(GridError, match="battery: need 0 < kw"):
        Battery(0.0, 100.0)
    with pytest.raises(GridError, match="efficiency in"):
        Battery(100.0, 100.0, efficiency=1.5)
