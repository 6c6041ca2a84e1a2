"""`dcmarket headroom`: how many MW can connect at each bus if the new load accepts curtailment in
at most 0.25 %, 0.5 % or 1 % of the hours, on a network with a year of hourly loads.

The study (docs/studies/headroom.md; equations in docs/models/headroom.md):

1. the case and its hourly loads ([headroom] hourly: a MATPOWER change table such as
   scenarios_ACTIVSg2000.m, or a CSV/Parquet file; sim/studies/headroom/inputs.py);
2. each hour's net withdrawal, generation following the load by its rule (H-0);
3. every limit's room in every hour and each bus's stand-alone headroom per level (H-1)-(H-5),
   grid/capacity/headroom.py;
4. the buses at once: the capacity study's tiers on the hours (H-7), unless [headroom] joint =
   false;
5. headroom.csv, totals.csv, summary.json, the duration plot, the map and config.toml.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from grid.capacity.headroom import (
    JointHeadroom,
    following_withdrawals,
    headroom_series,
    hourly_background,
    hourly_headroom,
    joint_headroom,
    source_tails,
    table_with_tails,
)
from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.matrices.shift_factors import flow_model
from grid.capacity.rows.limits import LimitTable, ShiftRows, limit_rows
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.network.cases import load_case, matpower_data_dir
from grid.network.network import Network
from grid.solvers.names import check_solver
from grid.threads import one_blas_thread
from sim.config.headroom import HeadroomConfig
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
from sim.output import files as outputs
from sim.report.figures.plots import figure_bytes
from sim.studies.headroom import report as files
from sim.studies.headroom.inputs import read_hourly
from sim.studies.result import StudyResult

Progress = Callable[[str], None]

# Without [headroom] joint_request_mw every bus asks this many times the largest stand-alone
# headroom: no bus can take that much at once, so no request binds.
REQUEST_MARGIN = 10.0


@dataclass(frozen=True, kw_only=True)
class HeadroomResult(StudyResult):
    """`dcmarket headroom`: the stand-alone headroom per bus and level, and the joint allocation."""

    config: ExperimentConfig = field(repr=False)
    outcome: files.HeadroomOutcome = field(repr=False)


def read_target(target: str, sets: list, overrides: dict[str, Any]) -> tuple[ExperimentConfig, Path, str | None]:
    """A config with a [headroom] table, or a case (its own hourly loads by default)."""
    path = Path(target)
    if path.suffix.lower() == ".toml":
        raw = with_overrides(read_config_file(path), sets)
        if "headroom" not in raw:
            raise ConfigError(f"{path}: headroom: missing [headroom]; dcmarket headroom reads the config's [headroom] "
                              "table: add one (docs/studies/headroom.md shows one)")
        base_dir, source = path.parent, str(path)
    else:
        raw = with_overrides({"headroom": {"case": target}}, sets)
        base_dir, source = Path("."), None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return parse_config(raw, source=source or "command line"), base_dir, source


def run_headroom(target: str, out: Path, *, sets: list, overrides: dict[str, Any], force: bool = False,
                 plots: bool = True, progress: Progress = lambda _: None) -> HeadroomResult:
    """`dcmarket headroom`: read the target, refuse a bad --out first, run, write the directory."""
    config, base_dir, source = read_target(target, sets, overrides)
    outputs.check_out_dir(out, force)
    result = headroom_run(config, base_dir, source=source, plots=plots, progress=progress)
    result.write(out, force=force)
    return result


def headroom_run(config: ExperimentConfig, base_dir: Path, *, source: str | None = None, plots: bool = True,
                 progress: Progress = lambda _: None) -> HeadroomResult:
    """The whole study in process; nothing is written. ``source`` names the config in messages;
    without ``plots`` the figures are left out and every other file is the same."""
    headroom = config.headroom
    if headroom is None:
        raise ConfigError(f"{source or 'config'}: headroom: missing [headroom]; add one (docs/studies/headroom.md)")
    check_solver(config.solver)
    # One BLAS thread: the study's BLAS calls are small (SuperLU's blocks, L-BFGS-B's vectors), where
    # OpenBLAS's threads cost more than they give: the sparse LU for 1,024 lines of ACTIVSg2000 took
    # 0.18 s on one thread and 0.8 to 4.5 s on two on the reference machine while other work ran.
    with named_after(source), one_blas_thread():
        outcome, hourly = _study(config, headroom, base_dir, progress)
        summary = files.summary(outcome, config.seed, config.solver)
        written, ran = _input_copies(config, headroom, base_dir, hourly)
        written.update({
            files.HEADROOM: outputs.csv_bytes(files.headroom_columns(outcome.headroom.levels, outcome.joint is not None),
                                              files.headroom_rows(outcome)),
            files.TOTALS: outputs.csv_bytes(files.TOTAL_COLUMNS, files.total_rows(outcome)),
            outputs.SUMMARY: outputs.json_bytes(summary),
            outputs.CONFIG: dump_config(effective_config(ran), "headroom").encode("utf-8"),
        })
        if plots:
            progress("headroom duration plot and map")
            written.update(figure_bytes(files.figure_drawers(outcome)))
    return HeadroomResult(summary, written, files.report(outcome), config=config, outcome=outcome)


def _input_copies(config: ExperimentConfig, headroom: HeadroomConfig, base_dir: Path,
                  hourly: Path) -> tuple[dict[str, bytes], ExperimentConfig]:
    """Copies of the files the study read that are not built in (a case file or folder, the
    hourly file), and the config naming them, so that the directory's config.toml re-runs alone."""
    copied: dict[str, bytes] = {}
    update: dict[str, str] = {}
    if hourly.parent != matpower_data_dir():
        name = files.HOURLY_COPY + hourly.suffix.lower()
        copied[name], update["hourly"] = hourly.read_bytes(), name
    case = base_dir / headroom.case
    if case.exists():  # as the capacity study does (sim/market/inputs.py)
        case_files, names = outputs.input_copies({"case": case})
        copied.update(case_files)
        update["case"] = names["case"]
    return copied, config.model_copy(update={"headroom": headroom.model_copy(update=update)})


def _study(config: ExperimentConfig, headroom: HeadroomConfig, base_dir: Path,
           progress: Progress) -> tuple[files.HeadroomOutcome, Path]:
    """The study's numbers, and the hourly file it read."""
    progress(f"network {headroom.case}")
    try:
        network = load_case(headroom.case, headroom.case_options(), base_dir)
    except GridError as error:
        raise ConfigError(f"headroom.case: {error}") from None
    buses = _buses(headroom, network)
    progress("hourly loads")
    series = read_hourly(headroom, network, base_dir)
    levels = (0.0, *headroom.curtailment)
    samples = following_withdrawals(network, series.load_mw, headroom.following)
    progress(f"{series.describe()}: shift factors and every limit's room in every hour")
    candidates = make_candidates(network, {bus: 1.0 for bus in buses})
    scenarios = Scenarios(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))
    rows = limit_rows(network, flow_model(network), scenarios, candidates, headroom.touch_factor)
    background = hourly_background(*rows, samples)
    del samples
    # Wide enough for (H-5) and for the CVaR of the largest level (tail_size in grid/capacity/rows/limits.py).
    tails = source_tails(background, int(math.floor(levels[-1] * background.hours + 1e-9)) + 2)
    found = hourly_headroom(rows[0], background, levels, touch_factor=headroom.touch_factor, tails=tails,
                            progress=progress)
    top = _top(found.capacity_mw[:, -1], headroom.top)
    series_top = headroom_series(rows[0], background, top, touch_factor=headroom.touch_factor)
    rows = (table_with_tails(rows[0], background, tails), rows[1])
    del background, tails
    joint, note = _joint(config, headroom, network, (scenarios, rows), buses, levels, found.capacity_mw, progress)
    return files.HeadroomOutcome(network, buses, series.hours, series.describe(), headroom.following, found, joint,
                                 note, tuple(int(k) for k in top), series_top), series.path


def _buses(headroom: HeadroomConfig, network: Network) -> tuple[int, ...]:
    if headroom.buses == "load":
        buses = network.load_buses
        if not buses:
            raise ConfigError(f"headroom.buses: case {network.name} has no bus with base load; list the buses")
        return buses
    for bus in headroom.buses:
        if not network.has_bus(bus):
            raise ConfigError(f"headroom.buses: bus {bus} is not a bus of case {network.name}; list its buses")
    return tuple(b for b in network.bus_numbers if b in set(headroom.buses))


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` largest finite values' columns, largest first (ties: bus order)."""
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.lexsort((finite, -values[finite]))]
    return order[:count]


def _joint(config: ExperimentConfig, headroom: HeadroomConfig, network: Network,
           inputs: tuple[Scenarios, tuple[LimitTable, ShiftRows]], buses: tuple[int, ...], levels: tuple[float, ...],
           alone: np.ndarray, progress: Progress) -> tuple[JointHeadroom | None, str]:
    """(H-7), or why it was not computed; ``inputs``: the hours as scenarios and their limit rows."""
    if not headroom.joint:
        return None, "joint: not computed ([headroom] joint = false)"
    finite = alone[np.isfinite(alone)]
    request = headroom.joint_request_mw or (REQUEST_MARGIN * float(finite.max()) if finite.size else math.inf)
    if not math.isfinite(request) or request <= 0:
        return None, "joint: not computed (no bus has finite stand-alone headroom above 0 MW to size the requests)"
    progress(f"every bus at once: the capacity study on the hours, {len(levels)} tiers")
    try:
        return joint_headroom(network, inputs[0], buses, levels, request_mw=request, touch_factor=headroom.touch_factor,
                              solver=config.solver, rows=inputs[1], progress=progress), ""
    except GridError as error:
        raise ConfigError(f"headroom.joint: {error}") from None


def command(args: argparse.Namespace, progress: Progress) -> int:
    """`dcmarket headroom TARGET`."""
    sets = list(args.sets or ())
    for flag, key in ((args.hourly, "headroom.hourly"), (args.curtailment, "headroom.curtailment")):
        if flag is not None:
            sets.append(parse_override(f"{key}={json.dumps(flag)}"))
    if args.no_joint:
        sets.append(parse_override("headroom.joint=false"))
    stem = Path(args.target).stem if args.target.lower().endswith(".toml") else Path(args.target).name
    out = args.out or Path("runs") / f"{stem}-headroom"
    result = run_headroom(args.target, out, sets=sets, overrides={"seed": args.seed, "solver": args.solver},
                          force=args.force, plots=not args.no_plots, progress=progress)
    print(result.report)
    print(f"\nHeadroom directory: {out}")
    return 0
