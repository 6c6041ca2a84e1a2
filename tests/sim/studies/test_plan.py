"""`dcmarket plan` and a run with a [plan] table, end to end through the CLI, on small instances."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from agents.capacity_products import SiteDefaults, sites_with_flexible_capacity
from grid.plan.milp import plan_from_choice
from grid.plan.risk import cvar
from mechanisms.products import Product
from sim.cli import main
from tests.conftest import write_toml

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# Small but complete: two sites of one owner at the ends of the feeder, two hubs, a battery and a
# generator type, 20-minute events; 4 scenarios in the MILP, 12 out of sample.
PLAN: dict = {
    "case": "ieee33bw",
    "scenarios": 4,
    "out_of_sample": 12,
    "lambda": 0.5,
    "alpha": 0.5,
    "dro_radius": 0.3,
    "frontier_lambdas": [0.0, 1.0],
    "stabilize_min": 10.0,
    "ens_cost_per_mwh": 20000.0,
    "mip_gap": 1e-9,
    "sites": [{"bus": 18, "load_mw": 0.6, "owner": "A"}, {"bus": 33, "load_mw": 0.4, "owner": "A"}],
    "modules": [
        {"name": "bess", "kind": "storage", "unit_mw": 0.2, "energy_mwh": 0.1, "transport_cost_per_km": 2.0},
        {"name": "gen", "kind": "generator", "unit_mw": 0.3, "ramp_mw_per_min": 0.15, "transport_cost_per_km": 1.0},
    ],
    "hubs": [
        {"name": "H16", "bus": 16, "setup_cost": 60.0, "capacity_units": 3, "activation_min": 1.0},
        {"name": "H31", "bus": 31, "setup_cost": 50.0, "capacity_units": 3, "activation_min": 1.0},
    ],
    "suppliers": [{"name": "S", "inventory": {"bess": 3, "gen": 1}, "distance_km": {"H16": 10.0, "H31": 20.0}}],
    "shocks": {"window_min": 20.0, "event_probability": 1.0, "depth": [0.3, 0.8], "ramp_min": [0.5, 2.0],
               "duration_min": [3.0, 8.0], "recovery_min": [1.0, 3.0]},
    "shift": {"depth": [0.6, 1.0]},
}


def _write(folder: Path, data: dict, name: str = "plan.toml") -> Path:
    return write_toml(folder, data, name)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan")
    config = _write(folder, {"seed": 7, "plan": PLAN})
    out = folder / "out"
    assert main(["plan", str(config), "--out", str(out), "--quiet"]) == 0
    return config, out


def test_plan_directory_holds_the_contract(planned):
    _, out = planned
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["config.toml", "dispatch.csv", "dispatch.png", "dispatch_profile.csv", "frontier.csv",
                            "frontier.png", "out_of_sample.png", "plan.csv", "plan_map.png", "scenario_costs.csv",
                            "shock_events.csv", "shocks.csv", "shocks.png", "site_outcomes.csv", "summary.json"])
    for png in ("dispatch.png", "frontier.png", "out_of_sample.png", "plan_map.png", "shocks.png"):
        assert (out / png).read_bytes()[:8] == PNG_SIGNATURE
    s = _summary(out)
    assert set(s["plans"]) == {"sample", "dro"}
    assert set(s["evaluation"]["sample"]) == {"in-sample", "out-of-sample", "shifted"}
    assert s["scenarios"] == {"in-sample": 4, "out-of-sample": 12, "shifted": 12}
    assert s["units"]["money"] == "$"


def test_reported_numbers_follow_from_the_tables(planned):
    """The summary's plan cost is the shipments' cost; its tail figures are those of the per-scenario
    costs in scenario_costs.csv (recomputed here by sorting); the objective is the plan cost plus
    its risk re-evaluated in sample, the MILP's incumbent is plan cost + its risk term, and the
    bound lies below the incumbent by the reported gap."""
    _, out = planned
    s = _summary(out)
    with (out / "scenario_costs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for name, plan in s["plans"].items():
        assert plan["milp_objective_usd"] == pytest.approx(plan["plan_cost_usd"] + plan["risk_term_usd"])
        gap = (plan["milp_objective_usd"] - plan["milp_bound_usd"]) / max(1.0, abs(plan["milp_objective_usd"]))
        assert plan["milp_bound_usd"] <= plan["milp_objective_usd"] + 1e-6
        assert gap == pytest.approx(plan["mip_gap"], abs=1e-9)
        for label, row in s["evaluation"][name].items():
            costs = np.array([float(r["cost_usd"]) for r in rows if r["plan"] == name and r["sample"] == label])
            assert costs.size == row["scenarios"]
            assert row["expected_cost_usd"] == pytest.approx(costs.mean(), abs=1e-5)
            assert row["cvar_usd"] == pytest.approx(cvar(costs, 0.5), abs=1e-5)
        # In sample, the MILP's risk term is the risk of the plan's own Stage II optimum: the
        # nominal mean-CVaR for the sample plan, its worst case over the ball for the DRO plan.
        inside = s["evaluation"][name]["in-sample"]
        measure = "mean_cvar_usd" if name == "sample" else "worst_case_mean_cvar_usd"
        assert plan["risk_term_usd"] == pytest.approx(inside[measure], rel=1e-6, abs=1e-6)
        assert plan["objective_usd"] == pytest.approx(plan["plan_cost_usd"] + inside[measure], rel=1e-9)
        assert inside["worst_case_mean_cvar_usd"] >= inside["mean_cvar_usd"] - 1e-9
    with (out / "plan.csv").open() as handle:
        shipped = [r for r in csv.DictReader(handle) if r["plan"] == "sample"]
    km = {"H16": 10.0, "H31": 20.0}
    per_km = {"bess": 2.0, "gen": 1.0}
    transport = sum(per_km[r["module"]] * km[r["hub"]] * int(r["units"]) for r in shipped)
    assert s["plans"]["sample"]["transport_cost_usd"] == pytest.approx(transport)
    setup = {"H16": 60.0, "H31": 50.0}
    assert s["plans"]["sample"]["setup_cost_usd"] == pytest.approx(sum(setup[h] for h in s["plans"]["sample"]["open_hubs"]))


def test_dispatch_profile_counters_the_deviation_and_adds_up(planned):
    """Minute by minute, modules push against the deviation (supply in a surge, absorb in a drop),
    never beyond it, and what they leave uncovered is scenario_costs.csv's uncovered energy."""
    _, out = planned
    with (out / "dispatch_profile.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (out / "scenario_costs.csv").open() as handle:
        costs = {(r["plan"], int(r["scenario"])): float(r["uncovered_mwh"]) for r in csv.DictReader(handle)
                 if r["sample"] == "in-sample"}
    uncovered: dict = {}
    for r in rows:
        deviation = float(r["deviation_mw"])
        power = float(r["bess_mw"]) + float(r["gen_mw"])
        assert power * deviation >= -1e-9  # same sign, or zero
        assert abs(power) <= abs(deviation) + 1e-7
        assert float(r["gen_mw"]) >= -1e-9  # a generator never absorbs
        key = (r["plan"], int(r["scenario"]))
        uncovered[key] = uncovered.get(key, 0.0) + (abs(deviation) - abs(power)) / 60.0
    assert uncovered and set(uncovered) <= set(costs)
    for key, value in uncovered.items():
        assert value == pytest.approx(costs[key], abs=1e-6)


def test_site_outcomes_add_up_to_the_scenario_costs(planned):
    """(13) per node and scenario: the sites' ENS and uncovered energy sum to each scenario's, a
    site's ENS is its load times its disturbed hours exactly when it is not stabilized, and every
    hit site appears once."""
    _, out = planned
    with (out / "site_outcomes.csv").open() as handle:
        sites = list(csv.DictReader(handle))
    with (out / "scenario_costs.csv").open() as handle:
        costs = list(csv.DictReader(handle))
    with (out / "shock_events.csv").open() as handle:
        events = {(int(r["scenario"]), int(r["bus"])): r for r in csv.DictReader(handle)}
    load = {18: 0.6, 33: 0.4}
    for row in costs:
        mine = [r for r in sites if (r["plan"], r["sample"], r["scenario"]) == (row["plan"], row["sample"], row["scenario"])]
        assert len(mine) == int(row["sites_disturbed"])
        assert sum(int(r["stabilized"]) for r in mine) == int(row["sites_stabilized"])
        assert sum(float(r["ens_mwh"]) for r in mine) == pytest.approx(float(row["ens_mwh"]), abs=1e-8)
        assert sum(float(r["uncovered_mwh"]) for r in mine) == pytest.approx(float(row["uncovered_mwh"]), abs=1e-8)
    for r in sites:
        if r["sample"] == "in-sample":
            hours = float(events[int(r["scenario"]), int(r["bus"])]["disturbed_h"])
            expected = 0.0 if r["stabilized"] == "1" else load[int(r["bus"])] * hours
            assert float(r["ens_mwh"]) == pytest.approx(expected, abs=1e-8)


def test_frontier_tail_is_non_increasing_in_lambda(planned):
    _, out = planned
    rows = _summary(out)["frontier"]
    assert [r["lambda"] for r in rows] == [0.0, 0.5, 1.0]  # [plan] lambda joins the frontier
    tails = [r["cvar_total_usd"] for r in rows]
    means = [r["expected_total_usd"] for r in rows]
    assert all(b <= a + 1e-6 for a, b in zip(tails, tails[1:]))
    assert all(b >= a - 1e-6 for a, b in zip(means, means[1:]))


def test_plan_is_byte_reproducible_and_its_config_reruns(planned, tmp_path):
    """A second run, from the first's effective config.toml and on two worker processes, writes
    every file the same bytes, config.toml included: the run is reproducible, its effective config
    is the whole config, and the workers change nothing."""
    config, out = planned
    again = tmp_path / "again"
    # On two worker processes (Stage II in batches of 2 scenarios): the same bytes.
    assert main(["plan", str(out / "config.toml"), "--out", str(again), "--quiet", "--workers", "2"]) == 0
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in out.iterdir())
    for path in out.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    effective = tomllib.loads((out / "config.toml").read_text())
    assert effective["seed"] == 7 and effective["plan"]["lambda"] == 0.5 and "lam" not in effective["plan"]
    # --force replaces a plan directory; --no-frontier and --no-plots leave out the frontier and the
    # figures, and nothing else.
    assert main(["plan", str(config), "--out", str(again), "--quiet", "--force", "--no-frontier", "--no-plots"]) == 0
    kept = sorted(p.name for p in out.iterdir() if p.suffix != ".png" and p.name != "frontier.csv")
    assert sorted(p.name for p in again.iterdir()) == kept
    for name in set(kept) - {"summary.json"}:  # the summary lists the frontier
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_log_on_a_plan_directory_says_what_it_is(planned, capsys):
    _, out = planned
    assert main(["log", str(out)]) == 2
    assert "is a plan directory" in capsys.readouterr().err


def _bad(**changes) -> dict:
    plan = json.loads(json.dumps(PLAN))
    for path, value in changes.items():
        target = plan
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[keys[-1]] = value
    return plan


@pytest.mark.parametrize("plan, expected", [
    (_bad(suppliers__0__inventory={"bess": -2, "gen": 1}), "plan.suppliers[0].inventory.bess: -2 units is negative"),
    (_bad(suppliers__0__distance_km={"H16": 10.0}), "plan.hubs[1]: hub 'H31' is unreachable: no supplier lists a distance"),
    (_bad(suppliers__0__distance_km={"H16": 10.0, "H31": 20.0, "H99": 1.0}), "plan.suppliers[0].distance_km.H99: unknown hub 'H99'"),
    (_bad(hubs__1__bus=99), "plan.hubs[1].bus: bus 99 is not on ieee33bw"),
    (_bad(hubs__1__activation_min=25.0), "plan.hubs[1]: hub 'H31' is unreachable: its modules reach no site"),
    (_bad(sites__0__stabilize_min=2.0), "plan.sites[0].stabilize_min: 2 min is shorter than the fastest arrival"),
    (_bad(sites__0__stabilize_min=30.0), "plan.sites[0].stabilize_min: 30 min (bus 18) is longer than the event window"),
    (_bad(modules__1__ramp_mw_per_min=None), "plan.modules[1].ramp_mw_per_min: a generator module needs its ramp rate"),
    (_bad(modules__0__kind="flywheel"), "plan.modules[0].kind: unknown kind 'flywheel'"),
    (_bad(shocks={"depth": [0.9, 0.2]}), "plan.shocks: depth: lower end 0.9 is above upper end 0.2"),
    (_bad(shift={"owner_correlation": 1.5}), "plan.shift: owner_correlation"),
    (_bad(shift={"depth": [0.5, 1.5]}), "plan.shift: depth"),
    (_bad(shift={"step_min": 2.0}), "plan.shift: step_min: the shift changes the shock distribution, not the time grid"),
    (_bad(modules__0__ramp_mw_per_min=0.1), "plan.modules[0].ramp_mw_per_min: applies to generators, not to a storage"),
    (_bad(suppliers__0__inventory={"bess": 3, "flywheel": 1}), "plan.suppliers[0].inventory.flywheel: unknown module type"),
    (_bad(travel={"minutes": {"H16": {"19": 3.0}}}), "plan.travel.minutes.H16.19: bus 19 is not a site; the sites are 18, 33"),
    (_bad(travel={"minutes": {"H99": {"18": 3.0}}}), "plan.travel.minutes.H99: unknown hub 'H99'"),
    (_bad(stabilize_min=2.0), "plan.stabilize_min: 2 min is shorter than the fastest arrival at bus 18"),
    (_bad(ens_cost_per_mwh=0.0), "plan.ens_cost_per_mwh: input should be greater than 0"),
    # Ceilings (Config notes, Ceilings).
    (_bad(sites__0__load_mw=1e308), "plan.sites[0].load_mw: input should be less than or equal to 1000000"),
    (_bad(modules__0__unit_mw=1e308), "plan.modules[0].unit_mw: input should be less than or equal to 1000000"),
    (_bad(modules__0__energy_mwh=1e308), "plan.modules[0].energy_mwh: input should be less than or equal to 1000000000"),
    (_bad(suppliers__0__inventory={"bess": 10**30, "gen": 1}),
     "plan.suppliers[0].inventory.bess: input should be less than or equal to 1000000"),
    (_bad(shocks={"step_min": 1e-9}),
     "plan.shocks: step_min: 1e-09 min cuts window_min 60 min into 60,000,000,000 steps; at most 10,080"),
    (_bad(travel={"speed_kmh": 1e308}), "plan.travel.speed_kmh: input should be less than or equal to 1000"),
    (_bad(time_limit_s=1e308), "plan.time_limit_s: input should be less than or equal to 1000000"),
    # The feeder's limits (docs/models/plan.md#fcm-feeder): the 33-bus feeder is at 0.913 p.u. unloaded.
    (_bad(feeder_limits={}), "plan.feeder_limits: before any shock the feeder already breaks its voltage at bus 18 "
                             "limit (0.8"),
    (_bad(feeder_limits={"head_voltage_pu": 1.06}), "plan.feeder_limits.head_voltage_pu: 1.06 p.u. must lie above"),
    (_bad(feeder_limits={"v_min_pu": 0.2}), "plan.feeder_limits.v_min_pu: input should be greater than 0.5"),
    (_bad(feeder_limits={"line_rating_mw": 1e308}), "plan.feeder_limits.line_rating_mw: input should be less than"),
    (_bad(feeder_limits={"v_min_pu": 0.8}, imbalance_cost_per_mwh=30000.0),
     "plan.ens_cost_per_mwh: 20000 $/MWh is below bus 18's imbalance price (30000 $/MWh)"),
])
def test_invalid_plans_get_one_line_field_named_errors(tmp_path, capsys, plan, expected):
    plan = {k: v for k, v in plan.items() if v is not None}
    for module in plan["modules"]:
        for key in [k for k, v in module.items() if v is None]:
            del module[key]
    config = _write(tmp_path, {"plan": plan})
    assert main(["plan", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_lambda_outside_unit_interval_and_missing_plan(tmp_path, capsys):
    config = _write(tmp_path, {"plan": {**PLAN, "lambda": 1.5}})
    assert main(["plan", str(config), "--quiet"]) == 2
    assert "plan.lambda: input should be less than or equal to 1" in capsys.readouterr().err
    products = {"products": [{"id": "a", "capacity_mw": 1.0}], "auction": {"increment": 1},
                "bidders": [{"name": "B", "profile": "additive", "values": {"a": 3}}]}
    config = _write(tmp_path, products, "noplan.toml")
    assert main(["plan", str(config), "--quiet"]) == 2
    assert "plan: missing [plan]" in capsys.readouterr().err
    only_plan = _write(tmp_path, {"plan": PLAN}, "only.toml")
    assert main(["run", str(only_plan), "--quiet"]) == 2
    assert "run it with dcmarket plan" in capsys.readouterr().err


def test_sites_from_an_allocation_by_hand():
    products = [Product("firm@18", 18, 0.0, 0.3), Product("flex@18", 18, 0.05, 0.2),
                Product("firm@25", 25, 0.0, 0.5), Product("flex@33", 33, 0.05, 0.4), Product("flex@14", 14, 0.05, 0.1)]
    allocation = {"firm@18": "B", "flex@18": "A", "firm@25": "A", "flex@33": "A", "flex@14": None}
    sites = sites_with_flexible_capacity(products, allocation, SiteDefaults(12.0, 900.0))
    # Bus 25 sold only firm capacity and bus 14 sold nothing: neither is a site. At bus 18 both
    # bidders hold MW (B 0.3, A 0.2): the load is 0.5 MW and B, with more, is the owner.
    assert [(s.bus, s.load_mw, s.owner) for s in sites] == [(18, pytest.approx(0.5), "B"), (33, pytest.approx(0.4), "A")]
    assert all(s.stabilize_min == 12.0 and s.imbalance_cost_per_mwh == 900.0 for s in sites)


def test_run_plans_for_the_auction_winners(tmp_path):
    """An auction of flexible capacity at two feeder buses, then the DSO's plan for the winners."""
    config = {
        "seed": 3,
        "products": [{"id": "firm@18", "bus": 18, "risk": 0.0, "capacity_mw": 0.4},
                     {"id": "flex@18", "bus": 18, "risk": 0.05, "capacity_mw": 0.2},
                     {"id": "flex@33", "bus": 33, "risk": 0.05, "capacity_mw": 0.3}],
        "auction": {"increment": 1},
        "bidders": [{"name": "A", "profile": "additive", "values": {"firm@18": 9, "flex@18": 4, "flex@33": 1}},
                    {"name": "B", "profile": "additive", "values": {"flex@33": 5}}],
        "plan": {k: v for k, v in PLAN.items() if k != "sites"} | {"out_of_sample": 0, "frontier_lambdas": [0.5]},
    }
    path = _write(tmp_path, config, "run.toml")
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    s = _summary(out)
    # A wins bus 18 (0.6 MW firm + flexible), B wins flex@33 (0.3 MW); owners follow the winners.
    assert s["allocation"] == {"firm@18": "A", "flex@18": "A", "flex@33": "B"}
    assert s["plan"]["sites_from"] == "auction"
    assert [(x["bus"], x["load_mw"], x["owner"]) for x in s["plan"]["sites"]] == [(18, pytest.approx(0.6), "A"),
                                                                              (33, pytest.approx(0.3), "B")]
    plan_dir = out / "plan"
    assert (plan_dir / "plan_map.png").read_bytes()[:8] == PNG_SIGNATURE
    inner = _summary(plan_dir)
    assert inner["plans"] == s["plan"]["plans"]
    # The plan's cost is that of what it ships.
    from grid.network.cases import load_case
    from sim.config.schema import load_config
    from sim.studies.plan import plan_data

    cfg = load_config(out / "config.toml")
    assert cfg.plan is not None
    sample = inner["plans"]["sample"]
    with (plan_dir / "plan.csv").open() as handle:
        units = {(r["module"], r["hub"], r["supplier"]): int(r["units"]) for r in csv.DictReader(handle)
                 if r["plan"] == "sample"}
    from agents.capacity_products import SiteDefaults as _Defaults

    sites = sites_with_flexible_capacity(
        [__import__("mechanisms.products", fromlist=["Product"]).Product(p["id"], p["bus"], p["risk"], p["capacity_mw"])
         for p in s["products"]], s["allocation"], _Defaults(cfg.plan.stabilize_min, cfg.plan.imbalance_cost_per_mwh))
    data = plan_data(cfg.plan, load_case("ieee33bw"), sites)
    assert plan_from_choice(data, sample["open_hubs"], units).cost == pytest.approx(sample["plan_cost_usd"])


@pytest.mark.parametrize("name", ["ieee33bw_plan.toml", "ieee33bw_auction_plan.toml", "case69_plan.toml",
                                  "ieee33bw_plan_limits.toml"])
def test_shipped_plan_configs_hold_valid_data(name):
    """The experiment configs validate, and their data passes the network checks (no solve)."""
    from grid.network.cases import load_case
    from grid.plan.data import PlanSite
    from sim.config.schema import load_config
    from sim.studies.plan import plan_data, sites_from_config

    cfg = load_config(EXPERIMENTS / name)
    assert cfg.plan is not None
    network = load_case(cfg.plan.case or cfg.network.case)
    if cfg.plan.sites is not None:
        sites = sites_from_config(cfg.plan, cfg.plan.sites)
    else:  # the auction decides; any candidate bus may become a site
        sites = tuple(PlanSite(bus, 0.3, f"owner {bus}", cfg.plan.stabilize_min, cfg.plan.imbalance_cost_per_mwh)
                      for bus in cfg.network.candidate_buses)
    data = plan_data(cfg.plan, network, sites)
    assert data.travel_min.shape == (len(cfg.plan.hubs), len(sites))
    # The shifted distribution differs from the planning one in what [plan.shift] names.
    assert cfg.plan.shifted_settings() != cfg.plan.shock_settings()


def test_studies_registry_drives_the_cli_and_the_schema():
    import importlib

    from sim.cli import build_parser
    from sim.config.schema import ExperimentConfig
    from sim.studies.registry import STUDIES

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for spec in STUDIES.values():
        assert spec.command in commands
        module, function = spec.runner.split(":")
        assert callable(getattr(importlib.import_module(module), function))
        if spec.table is not None:
            assert spec.table in ExperimentConfig.model_fields
    assert {"run", "capacity", "plan"} <= set(commands)


def test_run_checks_its_plan_before_the_auction(tmp_path, capsys):
    """A bad [plan] in a run fails at once (before the capacity study and the auction), naming the field."""
    plan = {k: v for k, v in PLAN.items() if k != "sites"}
    plan["suppliers"] = [{**plan["suppliers"][0], "inventory": {"bess": -1}}]
    config = {"seed": 1, "products": [{"id": "flex@18", "bus": 18, "risk": 0.05, "capacity_mw": 0.3}],
              "auction": {"increment": 1}, "bidders": [{"name": "A", "profile": "additive", "values": {"flex@18": 3}}],
              "plan": plan}
    path = _write(tmp_path, config, "run.toml")
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert "plan.suppliers[0].inventory.bess: -1 units is negative" in captured.err
    assert "round 1" not in captured.err  # no auction round ran
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["plan", "price"])
def test_a_config_without_the_study_table_names_that_table_not_network(tmp_path, capsys, command):
    """A config with neither [network] nor the study's table was blamed on [network]."""
    for data in ({"seed": 1}, {"seed": 1, "plan" if command == "price" else "price": {}}):
        config = _write(tmp_path, data)
        assert main([command, str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: {config}: {command}: missing [{command}]; dcmarket {command} reads the config's "
                       f"[{command}] table: add one (docs/studies/{command}.md shows one)\n"), err
    assert not (tmp_path / "out").exists()


def test_a_plan_stopped_at_its_time_limit_is_not_called_optimal():
    from sim.studies.plan import plan_report

    summary = {"plans": {"sample": {"dro_radius": 0.0, "units_by_hub": {"H16": {"bess": 2}}, "lambda": 0.5,
                                    "alpha": 0.5, "open_hubs": ["H16"], "plan_cost_usd": 100.0, "objective_usd": 900.0,
                                    "milp_objective_usd": 901.0, "milp_bound_usd": 700.0, "status": "time_limit",
                                    "mip_gap": 0.2231}},
               "evaluation": {}, "frontier": []}
    first = plan_report(summary).splitlines()[0]
    assert "NOT proven optimal: stopped at the time limit 22.31% from its bound" in first
    assert "optimal within" not in first


def test_plans_by_scenario_groups_are_bounded_by_the_whole_milp(tmp_path):
    """[plan] group_size: each plan comes from groups of in-sample scenarios (docs/models/plan.md#fcm-groups);
    its objective is exact on all of them, its bound the groups', and the one-MILP study's optimum
    lies between the two."""
    folder = tmp_path
    whole = _write(folder, {"seed": 7, "plan": {**PLAN, "frontier_lambdas": [0.0]}}, "whole.toml")
    grouped = _write(folder, {"seed": 7, "plan": {**PLAN, "frontier_lambdas": [0.0], "group_size": 2}}, "grouped.toml")
    for config, out in ((whole, "a"), (grouped, "b")):
        assert main(["plan", str(config), "--out", str(folder / out), "--quiet", "--no-plots"]) == 0
    one, two = _summary(folder / "a"), _summary(folder / "b")
    for name in ("sample", "dro"):
        exact, bounded = one["plans"][name], two["plans"][name]
        assert exact["groups"] == 0 and bounded["groups"] == 2  # 4 in-sample scenarios, 2 a group
        assert bounded["milp_objective_usd"] == bounded["objective_usd"]  # the plan's exact value
        assert bounded["milp_bound_usd"] <= exact["objective_usd"] * (1 + 1e-9) + 1e-6
        assert exact["milp_bound_usd"] <= bounded["objective_usd"] * (1 + 1e-9) + 1e-6
    report = (folder / "b" / "summary.json").read_text()
    assert '"groups": 2' in report


def test_a_plan_on_a_dask_cluster_writes_the_local_files(planned, tmp_path, dask_cluster):
    """--scheduler: every MILP, scenario group and Stage II batch is a task on the cluster (two
    worker processes of the suite's LocalCluster); the files are those of the run in process."""
    config, out = planned
    there = tmp_path / "there"
    assert main(["plan", str(config), "--out", str(there), "--quiet", "--scheduler",
                 dask_cluster.scheduler_address]) == 0
    for path in out.iterdir():
        assert (there / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_plan_with_an_unreachable_scheduler_is_one_line_and_writes_nothing(planned, tmp_path, capsys):
    config, _ = planned
    assert main(["plan", str(config), "--out", str(tmp_path / "x"), "--quiet", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--scheduler: cannot reach a Dask scheduler" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_a_plan_within_the_feeder_limits_sheds_load_and_says_so(tmp_path):
    """docs/models/plan.md#fcm-feeder: with the limits on, the load shed is part of the ENS in every
    table, the dispatch profile gives it minute by minute, and the plan costs more than without them."""
    limits = {"v_min_pu": 0.94, "head_voltage_pu": 1.05, "background_scale": 0.5, "power_factor": 1.0,
              "line_rating_mw": 10.0}
    config = _write(tmp_path, {"seed": 7, "plan": {**PLAN, "feeder_limits": limits, "frontier_lambdas": []}})
    runs = {}
    for label, extra in (("on", []), ("off", ["--set", "plan.feeder_limits.enabled=false"])):
        assert main(["plan", str(config), "--out", str(tmp_path / label), "--quiet", "--no-plots", *extra]) == 0
        runs[label] = _summary(tmp_path / label)
    on, off = runs["on"], runs["off"]
    assert on["feeder_limits"]["rows"] == ["voltage at bus 18"] and off["feeder_limits"] is None
    assert on["plans"]["sample"]["objective_usd"] > off["plans"]["sample"]["objective_usd"]
    sites = list(csv.DictReader((tmp_path / "on" / "site_outcomes.csv").open()))
    shed = sum(float(r["shed_mwh"]) for r in sites if r["plan"] == "sample" and r["sample"] == "in-sample")
    assert shed > 0
    assert all(float(r["ens_mwh"]) >= float(r["shed_mwh"]) - 1e-9 for r in sites)
    in_sample = on["evaluation"]["sample"]["in-sample"]
    assert in_sample["expected_shed_mwh"] == pytest.approx(shed / on["scenarios"]["in-sample"], abs=1e-8)
    profile = list(csv.DictReader((tmp_path / "on" / "dispatch_profile.csv").open()))
    by_minute = sum(float(r["shed_mw"]) for r in profile if r["plan"] == "sample") / 60.0
    assert by_minute == pytest.approx(shed, abs=1e-6)
