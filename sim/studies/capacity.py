"""`dcmarket capacity`: the capacity study alone, from a config or straight from a case.

Computes firm and flexible capacity per candidate bus, turns it into products, checks the
promised risk on fresh scenarios, and writes the capacity directory: summary.json (the same
``products`` list as a run, plus ``capacity`` and ``risk_check``), products.csv, capacity.csv,
risk_check.csv, capacity_map.png and the effective config.toml.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agents.capacity_products import products_from_study, tier_labels
from grid.capacity.rows.limits import BlockMap
from grid.capacity.screened import SCREENED_SKIP
from grid.capacity.study import CapacityResult as ModelResult
from grid.capacity.study import CapacityStudy, check_tail
from grid.capacity.verify import RiskCheck, verify_risk
from grid.errors import GridError
from grid.network.cases import case_file
from grid.solvers.names import check_solver
from mechanisms.products import FIRM, FLEX, product_id
from mechanisms.settings import MAX_MW
from sim.config.overrides import parse_override
from sim.config.schema import (
    ConfigError,
    ExperimentConfig,
    dump_config,
    effective_config,
    parse_config,
    read_config_file,
    with_overrides,
)
from sim.errors import named_after
from sim.execution.cluster import cluster_blocks
from sim.market.inputs import GridInputs, build_grid_inputs, sample_checked
from sim.output import files as outputs
from sim.random_streams import stream
from sim.report.capacity import (
    RISK_COLUMNS,
    capacity_columns,
    capacity_rows,
    capacity_summary,
    capacity_text,
    risk_text,
)
from sim.report.figures.plots import (  # matplotlib loads when a map is drawn
    MapPanel,
    figure_bytes,
    plot_capacity_panels,
)
from sim.report.text import products_table
from sim.studies.ac_check import (
    AC_CHECK_FILE,
    AC_COLUMNS,
    AC_CORRECTION_FILE,
    CORRECTION_COLUMNS,
    AcOutcome,
    ac_step,
)
from sim.studies.registry import (
    DEFAULT_DEMAND_MW,
    DEFAULT_RISK,
    DEFAULT_SCENARIOS,
    DEFAULT_VERIFY,
)
from sim.studies.result import CapacityResult

Progress = Callable[[str], None]

# Fresh scenarios of the risk check, drawn chunk after chunk: a ceiling on its time.
MAX_VERIFY = 100_000_000
# Where the risk check's scenarios come from (summary.json risk_check.sample).
FRESH = "fresh"
IN_SAMPLE = "in-sample"


def config_for_case(case: str, *, demand_mw: float, scenarios: int, risk: list[float]) -> dict[str, Any]:
    """The config `dcmarket capacity CASE` runs: every load bus asks ``demand_mw``; the case's loads
    are the forecast peak, the scenarios vary each load below it by the default spread, and firm
    capacity holds for every load anywhere at or below its peak, down to the spread's floor (the
    box of that range; docs/models/capacity.md#background-sets says why not the peak alone)."""
    return {
        "network": {"case": case, "demand_mw": demand_mw},
        "load": {"scenarios": scenarios, "spread": {"above_sd": 0.0}},
        "products": {"risk_levels": risk},
        "security": {"background": "box"},
    }


def read_target(target: str, overrides: dict[str, Any]) -> tuple[ExperimentConfig, Path, str | None]:
    """A config file, or a case (built-in name, .m file, CSV folder) with the defaults above.

    The third item names the config in error messages (None for a case: its errors name it).
    """
    path = Path(target)
    if path.suffix.lower() == ".toml":
        for option, field in (("demand_mw", "[network] demand_mw"), ("scenarios", "[load] scenarios")):
            if overrides.get(option) is not None:
                flag = "--" + option.removesuffix("_mw")
                raise ConfigError(f"{flag} applies to a case target; for {path} set {field} in the config")
        raw = with_overrides(read_config_file(path), overrides.get("sets", ()))
        raw.update({k: v for k, v in overrides.items() if k in ("seed", "solver") and v is not None})
        if overrides.get("risk_levels") and isinstance(raw.get("products"), dict):
            raw["products"] = {**raw["products"], "risk_levels": overrides["risk_levels"]}
        config = parse_config(raw, source=str(path))
        base_dir, source = path.parent, str(path)
    else:
        risk, scenarios = overrides.get("risk_levels") or [DEFAULT_RISK], overrides.get("scenarios") or DEFAULT_SCENARIOS
        try:
            check_tail(risk, scenarios, "--risk")
        except GridError as error:
            raise ConfigError(f"--scenarios: {error}") from None
        raw = config_for_case(
            target, demand_mw=overrides.get("demand_mw") or DEFAULT_DEMAND_MW, scenarios=scenarios, risk=risk,
        )
        raw = with_overrides(raw, overrides.get("sets", ()))
        raw.update({k: v for k, v in overrides.items() if k in ("seed", "solver") and v is not None})
        config = parse_config(raw, source="command line")
        base_dir, source = Path("."), None
    require_grid(config, source)
    return config, base_dir, source


def require_grid(config: ExperimentConfig, source: str | None) -> None:
    """A capacity study needs a network, its load and a product grid (the command and sim.api check it)."""
    if config.network is None or config.load is None or config.product_grid is None:
        raise ConfigError(f"{source}: dcmarket capacity needs [network], [load] and [products] "
                          "(explicit [[products]] have no network to study)")


def _family(study: CapacityStudy) -> Callable[[int, int], str]:
    labels = tier_labels([t.risk for t in study.tiers])

    def name(bus: int, model: int) -> str:
        return product_id(FIRM, bus) if model == 0 else product_id(FLEX, bus, tier=labels[model - 1])

    return name


def _panel(study: CapacityStudy, model: ModelResult, title: str) -> MapPanel:
    """A model's own marked lines: blocked by background alone, binding, and under N-1 the
    outages after which a binding limit binds."""
    limits, lines = study.limits, study.network.lines
    binding = [limits.row_of[name] for name in model.binding if name in limits.row_of]
    on_lines = [r for r in binding if limits.line[r] >= 0]
    outage = limits.outage if limits.outage is not None else None
    return MapPanel(
        title, model.capacity_mw,
        blocked_lines=sorted({b.line for b in model.blocked if b.line is not None}),
        binding_lines=sorted({lines[int(limits.line[r])].name for r in on_lines}),
        outage_lines=() if outage is None else sorted({lines[int(outage[r])].name for r in on_lines if outage[r] >= 0}),
    )


def capacity_map_png(study: CapacityStudy, title: str) -> bytes:
    """One panel per model (firm, then each tier), each with its own blocked and binding lines."""
    panels = [_panel(study, study.firm, "Firm capacity (MW)")]
    panels += [_panel(study, tier, f"Firm and flexible capacity up to risk {tier.risk * 100:g} % (MW)")
               for tier in study.tiers]
    return _png(lambda path: plot_capacity_panels(study.network, panels, path, title=title))


def standalone_map_png(study: CapacityStudy, title: str) -> bytes:
    """Firm capacity of each bus alone (C-20) beside the joint allocation, on one scale."""
    alone = study.standalone[0]
    finite = {bus: float(mw) for bus, mw in zip(study.candidates.buses, alone.capacity_mw) if np.isfinite(mw)}
    unlimited = len(study.candidates) - len(finite)
    panels = [MapPanel("Firm capacity of each bus alone (MW)", finite,
                       note="not deliverable all at once" + (f"; {unlimited} with no limit, not drawn" if unlimited else "")),
              MapPanel("Firm capacity, all buses together (MW)", study.firm.capacity_mw)]
    return _png(lambda path: plot_capacity_panels(study.network, panels, path, title=title))


def _png(draw: Callable[[Path], None]) -> bytes:
    return figure_bytes({"map.png": draw})["map.png"]


def run_capacity(
    target: str,
    out: Path,
    *,
    overrides: dict[str, Any],
    verify: int = DEFAULT_VERIFY,
    theory: bool = True,
    plots: bool = True,
    force: bool = False,
    export_pandapower: bool = False,
    scheduler: str | None = None,
    progress: Progress = lambda _: None,
) -> CapacityResult:
    """`dcmarket capacity`: read the target, refuse a bad --out first (and a scheduler that does
    not answer), run, write the directory."""
    config, base_dir, source = read_target(target, overrides)
    outputs.check_out_dir(out, force)  # fail before the expensive part, not after
    with cluster_blocks(scheduler) as block_map:
        result = capacity_run(config, base_dir, source=source, verify=verify, theory=theory,
                              export_pandapower=export_pandapower, plots=plots, block_map=block_map,
                              progress=progress)
    result.write(out, force=force)
    return result


def capacity_run(config: ExperimentConfig, base_dir: Path, *, source: str | Path | None = None,
                 verify: int = DEFAULT_VERIFY, theory: bool = True, export_pandapower: bool = False,
                 plots: bool = True, block_map: BlockMap | None = None,
                 progress: Progress = lambda _: None) -> CapacityResult:
    """The capacity study, its risk check and its AC check, in process; nothing is written.
    ``source`` names the config in messages; ``export_pandapower`` adds allocation_pandapower.json;
    ``plots=False`` leaves out the maps; ``block_map`` computes the scenario tails on a cluster
    (sim/execution/cluster.py), with the same result."""
    check_solver(config.solver)
    grid_config = config.product_grid
    assert grid_config is not None
    with named_after(source):
        if export_pandapower:
            ac_case_ref(config, base_dir)  # a case without the full AC data fails here, before the study
        progress("network and background scenarios")
        grid: GridInputs = build_grid_inputs(config, base_dir)
        study = grid.settings.study(grid.network, grid.scenarios, grid.candidates, solver=config.solver, theory=theory,
                                    progress=progress, block_map=block_map)
        # The AC step may correct the study; the products and the risk check are the result's.
        study, ac = ac_step(config, base_dir, grid, study, verify, theory, progress, block_map)
        offered, withheld = products_from_study(study, grid.settings.block_mw)
        checks, skipped, sample_kind = _risk_checks(config, grid, study, verify, progress)
    cap = capacity_summary(study, grid.scenarios.count)
    summary: dict[str, Any] = {
        "seed": config.seed,
        "solver": config.solver,
        "units": {"capacity": "MW", "probability": "1", "interrupted_energy": "MWh per hour of operation"},
        "products": [p.as_dict() for p in offered],
        "withheld_products": [p.as_dict() for p in withheld],
        "capacity": cap,
        "risk_check": {"skipped": skipped} if checks is None else {
            "scenarios": checks[0].scenarios if checks else verify,
            "sample": sample_kind,
            "stream": "verification" if sample_kind == FRESH else "scenarios",
            "risk_mode": study.risk_mode,
            "products": [c.as_dict() for c in checks],
        },
        "ac_check": ac.summary,
        "warnings": config_warnings(config) + study_warnings(study),
    }
    files = _capacity_files(config, grid, study, summary, checks, theory, ac)
    if export_pandapower:
        progress("pandapower export")
        files[outputs.ALLOCATION_PANDAPOWER] = pandapower_export(config, base_dir, study)
    if plots:  # last: they take longer than the rest of a small study
        progress("capacity maps")
        files[outputs.CAPACITY_MAP] = capacity_map_png(study, f"Capacity for data centers on {study.network.name}")
        files[outputs.STANDALONE_MAP] = standalone_map_png(
            study, f"Stand-alone and joint firm capacity on {study.network.name}")
    sections = [capacity_text(cap), f"Products ({len(offered)} offered, {len(withheld)} withheld):\n"
                + products_table(summary["products"][:30])
                + (f"\n... {len(offered) - 30} more (all in products.csv)" if len(offered) > 30 else "")]
    sections.append(risk_text(checks, study.risk_mode, sample=sample_kind) if checks is not None
                    else f"Risk check: skipped ({skipped})")
    sections.append(ac.text)
    sections += [f"warning: {text}" for text in summary["warnings"]]
    return CapacityResult(summary, files, "\n\n".join(sections), config=config, study=study, products=tuple(offered),
                          withheld=tuple(withheld), checks=None if checks is None else tuple(checks))


def ac_case_ref(config: ExperimentConfig, base_dir: Path) -> str | Path:
    """The case as the AC model takes it: a path when the config names a file, else the built-in
    name, which keeps its own rules (as the AC check resolves it); a ConfigError for a case
    without the full AC data (a feeder, a CSV folder)."""
    assert config.network is not None
    try:
        path = case_file(config.network.case, base_dir)
    except GridError as error:
        raise ConfigError(f"network.case: {error} (the pandapower export needs the full case data)") from None
    return path if (base_dir / config.network.case).exists() else config.network.case


def pandapower_export(config: ExperimentConfig, base_dir: Path, study: CapacityStudy) -> bytes:
    """The firm allocation drawn in full on the case at its own loads, as a pandapower net in
    JSON (grid/ac/export.py), new load at the [ac] power factor."""
    from grid.ac.export import allocation_json  # pandapower loads only when asked

    assert config.network is not None
    allocation = {bus: float(mw) for bus, mw in zip(study.candidates.buses, study.firm.vector(study.candidates))}
    text = allocation_json(ac_case_ref(config, base_dir), allocation, config.ac.settings(),
                           options=config.network.case_options())
    return text.encode("utf-8")


def config_warnings(config: ExperimentConfig) -> list[str]:
    """Choices that the study accepts but a planner should know the cost of, each naming its field."""
    found = []
    budget, load = config.security.budget, config.load
    if budget is not None and load is not None and (load.correlation or load.correlation_csv):
        found.append(f"security.budget = {budget:g} protects against that many loads at their "
                     "bounds at once, which assumes they move independently; [load] correlation makes them move "
                     "together, so firm capacity can be exceeded (the risk check counts how often); drop the budget, "
                     "or check it with --verify")
    return found


# Firm capacity set by a corner of the box more than this share of the limit beyond every scenario
# is set by states the data never shows.
UNCOVERED_SHARE = 0.1


def study_warnings(study: CapacityStudy) -> list[str]:
    """What the results show that a planner should know: firm capacity set by corners of the load
    box that no scenario comes near (the box's worst background beyond the largest sample)."""
    limits = study.limits
    if study.criteria.background == "peak" or limits.tail_mw.shape[1] == 0:
        return []
    gaps = sorted(((float(limits.worst_mw[r] - limits.tail_mw[r, 0]), r) for r in (limits.row_of[n] for n in study.firm.binding)
                   if limits.worst_mw[r] - limits.tail_mw[r, 0] > UNCOVERED_SHARE * abs(limits.limit_mw[r])), reverse=True)
    if not gaps:
        return []
    row = gaps[0][1]
    return [f"security.background = {study.criteria.background!r}: firm capacity is set by corners of the load box that "
            f"none of the {limits.count:,} scenarios comes near: on the {limits.name(row)}, the box's worst background "
            f"is {limits.worst_mw[row]:,.1f} MW and the largest scenario's {limits.tail_mw[row, 0]:,.1f} MW "
            f"({len(gaps)} binding limit{'s' if len(gaps) != 1 else ''} like it); "
            + ("a smaller security.budget" if study.criteria.budget is not None else
               'background = "budgeted" (with a budget)') + ' or "peak" is closer to the data']


def _risk_checks(config: ExperimentConfig, grid: GridInputs, study: CapacityStudy, verify: int,
                 progress: Progress) -> tuple[list[RiskCheck] | None, str | None, str]:
    """The out-of-sample risk check (or in sample, on a scenario file), or why there is none."""
    if verify <= 0:
        return None, "--verify 0", FRESH
    if study.line_rows == "screened":
        return None, SCREENED_SKIP, FRESH
    # Every scenario of the check lies in the study's box (the same distribution, or the same file).
    box = (grid.scenarios.lower_mw, grid.scenarios.upper_mw)
    if grid.sampler is None:
        # A scenario file is all the data there is: check the products on it (in sample), so
        # that the per-constraint excess is still shown, and say so everywhere it appears.
        taken = [0]

        def next_rows(n: int):
            taken[0] += n
            return grid.scenarios.subset(taken[0] - n, n)

        return (verify_risk(study, next_rows, grid.scenarios.count, product_ids=_family(study), box=box,
                            progress=progress),
                None, IN_SAMPLE)
    rng = stream(config.seed, "verification")
    sampler = grid.sampler

    def sample(n: int):
        return sample_checked(sampler, grid.network, n, rng, "--verify")

    return verify_risk(study, sample, verify, product_ids=_family(study), box=box, progress=progress), None, FRESH


def _capacity_files(config: ExperimentConfig, grid: GridInputs, study: CapacityStudy, summary: dict[str, Any],
                    checks: list[RiskCheck] | None, theory: bool, ac: AcOutcome) -> dict[str, bytes]:
    """The capacity directory's files but the maps."""
    files, copied = outputs.input_copies(grid.input_files)
    grid_config = config.product_grid
    assert grid_config is not None
    # The file says what ran: the theory checks follow --no-theory here, not the config's flag.
    ran = config.model_copy(update={"products": grid_config.model_copy(update={"theory_checks": theory})})
    files[outputs.CONFIG] = dump_config(effective_config(ran, copied=copied), "capacity").encode("utf-8")
    files[outputs.SUMMARY] = outputs.json_bytes(summary)
    files[outputs.PRODUCTS] = outputs.csv_bytes(outputs.PRODUCT_COLUMNS, summary["products"])
    files[outputs.CAPACITY] = outputs.csv_bytes(capacity_columns(study), capacity_rows(study))
    # Always written, so that a reader of the directory finds the check or why there is none.
    files[outputs.RISK_CHECK] = outputs.csv_bytes(RISK_COLUMNS, [c.as_dict() for c in checks or []])
    files[AC_CHECK_FILE] = outputs.csv_bytes(AC_COLUMNS, ac.rows)
    if ac.correction_rows is not None:
        files[AC_CORRECTION_FILE] = outputs.csv_bytes(CORRECTION_COLUMNS, ac.correction_rows)
    return files


def command(args: argparse.Namespace, progress: Progress) -> int:
    """`dcmarket capacity TARGET`."""
    for name in ("verify", "scenarios"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "scenarios" else 0):
            raise ConfigError(f"--{name}: must be a {'positive' if name == 'scenarios' else 'non-negative'} integer")
    if args.verify > MAX_VERIFY:
        raise ConfigError(f"--verify: {args.verify:,} scenarios is above the ceiling of {MAX_VERIFY:,}; give fewer")
    if args.demand is not None and not 0 < args.demand <= MAX_MW:
        raise ConfigError(f"--demand: give a positive number of MW, at most {MAX_MW:g} (the ceiling per bus)")
    stem = Path(args.target).stem if args.target.lower().endswith(".toml") else Path(args.target).name
    out = args.out or Path("runs") / f"{stem}-capacity"
    sets = list(args.sets or ())
    if args.budget is not None and args.background is None:   # a budget means the budgeted box
        sets.append(parse_override('security.background="budgeted"'))
    for flag, key in ((args.draw, "security.draw"), (args.criterion, "security.criterion"),
                      (args.background, "security.background"), (args.budget, "security.budget")):
        if flag is not None:
            sets.append(parse_override(f"{key}={json.dumps(flag)}"))
    overrides = {"seed": args.seed, "solver": args.solver, "risk_levels": args.risk,
                 "demand_mw": args.demand, "scenarios": args.scenarios, "sets": sets}
    result = run_capacity(args.target, out, overrides=overrides, verify=args.verify, theory=not args.no_theory,
                          force=args.force, export_pandapower=args.export_pandapower, plots=not args.no_plots,
                          scheduler=args.scheduler, progress=progress)
    print(result.report)
    print(f"\nCapacity directory: {out}")
    return 0
