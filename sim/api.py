"""dcmarket from Python: load a config, run any study in process, or step the Mesa model yourself.

    from sim import api

    config = api.load_config("experiments/paper_4bus_additive.toml", overrides={"auction.increment": 2})
    result = api.run("auction", config)              # an AuctionResult (sim/studies/result.py)
    result.summary["welfare"], result.table("price_paths")
    result.write(Path("runs/increment-2"))           # the directory `dcmarket run` writes, byte for byte

    model = api.market_model(config)                 # a mesa.Model: model.step(), model.running
    model.step()

The studies are the command line's own functions (sim/studies/), called with the same arguments,
so a result's files are the bytes `dcmarket` writes for the same config. The command line never
imports this module, so `dcmarket --help` stays fast. The guide is docs/api.md.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence, overload

from sim.config.overrides import Override, parse_path, parse_unset, parse_value
from sim.config.schema import (
    ExperimentConfig,
    parse_config,
    with_overrides,
)
from sim.config.schema import (
    load_config as load_config_file,
)
from sim.errors import ConfigError, named_after
from sim.studies.registry import DEFAULT_VERIFY, STUDIES

if TYPE_CHECKING:  # the studies load when they run, not when this module is imported
    from sim.market.model import MarketModel
    from sim.studies.result import AuctionResult, CapacityResult, StudyResult
    from sim.studies.sweep import SweepResult

__all__ = ["load_config", "market_model", "pandapower_net", "run", "STUDY_NAMES"]

Progress = Callable[[str], None]
PathLike = str | os.PathLike[str]
# A config as a file, its tables as a dict (what the TOML file would hold), or one loaded already.
Config = ExperimentConfig | PathLike | Mapping[str, Any]

# How a config given as a dict (or loaded from one) is named in error messages.
DICT_SOURCE = "config"


def load_config(source: PathLike | Mapping[str, Any], *, overrides: Mapping[str, Any] | None = None,
                unset: Sequence[str] | None = None, seed: int | None = None,
                solver: str | None = None) -> ExperimentConfig:
    """The validated config of a TOML file, or of a dict of its tables.

    ``overrides`` sets fields by their ``--set`` paths (``{"auction.increment": 2,
    "bidders[0].values.firm@3": 40}``), ``unset`` removes tables or fields (``["price"]``, as
    ``--unset``); the paths in ``unset`` are removed first, then the ``overrides`` set in order.
    ``seed`` and ``solver`` replace the config's. A config that cannot run raises the one-line
    ``ConfigError`` the command line prints.
    """
    sets = [*_unsets(unset), *_overrides(overrides)]
    options = {"seed": seed, "solver": solver}
    if isinstance(source, Mapping):
        raw = with_overrides(source, sets)
        raw.update({k: v for k, v in options.items() if v is not None})
        return parse_config(raw, source=DICT_SOURCE)
    return load_config_file(Path(source), options, sets)


def _overrides(overrides: Mapping[str, Any] | None) -> list[Override]:
    out = []
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"overrides: {key!r} names no field; write a --set path, e.g. \"auction.increment\"")
        try:
            path = parse_path(key)
        except ValueError as error:
            raise ConfigError(f"overrides: {error}") from None
        out.append(Override(path, value, f"{key}={_as_written(value)}"))
    return out


def _as_written(value: Any) -> str:
    """The value as ``--set`` would take it, for messages: a plain string bare, others as TOML
    (JSON's spelling of numbers, booleans and lists is TOML's)."""
    if isinstance(value, str) and parse_value(value) == value:
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _unsets(unset: Sequence[str] | None) -> list[Override]:
    paths = [unset] if isinstance(unset, str) else list(unset or ())
    try:
        return [parse_unset(path) for path in paths]
    except (ValueError, TypeError, AttributeError) as error:
        raise ConfigError(f"unset: {error}") from None


def _resolve(config: Config, base_dir: PathLike | None) -> tuple[ExperimentConfig, Path]:
    """The config, and the path that names it in errors, whose folder is where its relative paths
    start: a file's own path (in ``base_dir`` when given), else ``config`` in ``base_dir`` or the
    current folder."""
    if isinstance(config, (ExperimentConfig, Mapping)):
        loaded = config if isinstance(config, ExperimentConfig) else load_config(config)
        return loaded, Path(base_dir if base_dir is not None else ".") / DICT_SOURCE
    path = Path(config)
    return load_config(path), path if base_dir is None else Path(base_dir) / path.name


# -- the studies ---------------------------------------------------------------------------------
def _auction(config: ExperimentConfig, name: Path, *, plots: bool = False, summary_only: bool = False,
             progress: Progress | None = None) -> "AuctionResult":
    from sim.studies.auction import auction_study

    return auction_study(config, name, plots=plots, summary_only=summary_only, progress=progress or _quiet)


def _capacity(config: ExperimentConfig, name: Path, *, verify: int = DEFAULT_VERIFY, theory: bool = True,
              export_pandapower: bool = False, plots: bool = True, scheduler: str | None = None,
              progress: Progress | None = None) -> "CapacityResult":
    from sim.execution.cluster import cluster_blocks
    from sim.studies.capacity import capacity_run, require_grid

    if isinstance(verify, bool) or not isinstance(verify, int) or verify < 0:
        raise ConfigError(f"verify: {verify!r} is not a non-negative integer (fresh scenarios of the risk check; "
                          "0 skips it)")
    require_grid(config, str(name))
    with cluster_blocks(scheduler) as block_map:
        return capacity_run(config, name.parent, source=str(name), verify=verify, theory=theory,
                            export_pandapower=bool(export_pandapower), plots=plots, block_map=block_map,
                            progress=progress or _quiet)


def _plan(config: ExperimentConfig, name: Path, *, frontier: bool = True, plots: bool = True,
          progress: Progress | None = None, workers: int = 1, scheduler: str | None = None) -> "StudyResult":
    from sim.studies.command import with_config
    from sim.studies.plan import run_plan_study

    with named_after(name):
        return with_config(run_plan_study(config, name.parent, frontier=frontier, plots=plots,
                                          progress=progress or _quiet, workers=workers, scheduler=scheduler),
                           config, "plan")


def _price(config: ExperimentConfig, name: Path, *, plots: bool = True,
           progress: Progress | None = None, workers: int = 1) -> "StudyResult":
    from sim.studies.command import with_config
    from sim.studies.price.study import run_price_study

    with named_after(name):
        return with_config(run_price_study(config, plots=plots, progress=progress or _quiet, workers=workers),
                           config, "price")


def _headroom(config: ExperimentConfig, name: Path, *, plots: bool = True,
              progress: Progress | None = None) -> "StudyResult":
    from sim.studies.headroom.study import headroom_run

    return headroom_run(config, name.parent, source=str(name), plots=plots, progress=progress or _quiet)


def _evolve(config: ExperimentConfig, name: Path, *, plots: bool = True,
            progress: Progress | None = None) -> "StudyResult":
    from sim.studies.command import with_config
    from sim.studies.evolve import run_evolve_study

    if config.dynamics is None:
        raise ConfigError("dynamics: missing [dynamics]; the evolve study reads the config's [dynamics] table "
                          "(docs/studies/interconnection.md shows one)")
    with named_after(name):
        return with_config(run_evolve_study(config, progress or _quiet, plots=plots), config, "evolve")


def _quiet(_: str) -> None:
    pass


_IN_PROCESS: dict[str, Callable[..., Any]] = {"auction": _auction, "capacity": _capacity, "plan": _plan,
                                             "price": _price, "headroom": _headroom, "evolve": _evolve}
# Every study of the registry, in its order; a sweep runs from its file into a directory.
STUDY_NAMES: tuple[str, ...] = tuple(STUDIES)


@overload
def run(study: Literal["auction"], config: Config, *, base_dir: PathLike | None = None, plots: bool = False,
        summary_only: bool = False, progress: Progress | None = None) -> "AuctionResult": ...


@overload
def run(study: Literal["capacity"], config: Config, *, base_dir: PathLike | None = None, verify: int = DEFAULT_VERIFY,
        theory: bool = True, export_pandapower: bool = False, plots: bool = True, scheduler: str | None = None,
        progress: Progress | None = None) -> "CapacityResult": ...


@overload
def run(study: Literal["plan"], config: Config, *, base_dir: PathLike | None = None, frontier: bool = True,
        plots: bool = True, progress: Progress | None = None, workers: int = 1,
        scheduler: str | None = None) -> "StudyResult": ...


@overload
def run(study: Literal["price"], config: Config, *, base_dir: PathLike | None = None, plots: bool = True,
        progress: Progress | None = None, workers: int = 1) -> "StudyResult": ...


@overload
def run(study: Literal["headroom"], config: Config, *, base_dir: PathLike | None = None, plots: bool = True,
        progress: Progress | None = None) -> "StudyResult": ...


@overload
def run(study: Literal["evolve"], config: Config, *, base_dir: PathLike | None = None, plots: bool = True,
        progress: Progress | None = None) -> "StudyResult": ...


@overload
def run(study: Literal["sweep"], config: PathLike, *, out: PathLike, workers: int = 1, scheduler: str | None = None,
        force: bool = False, plots: bool = False, progress: Progress | None = None) -> "SweepResult": ...


def run(study: str, config: Any, *, base_dir: PathLike | None = None, **options: Any) -> Any:
    """Run ``study`` ("auction", "capacity", "plan", "price", "headroom" or "sweep") in this process.

    ``config`` is a loaded config (`load_config`), a TOML path or a dict of tables; relative
    paths in it (scenario files, case folders) start from ``base_dir``: by default the file's
    folder, or the current folder for a loaded config. The options are the command's:

    - auction: ``plots`` (price_path.png, holdings.png, capacity_map.png), ``summary_only``;
    - capacity: ``verify`` (fresh scenarios of the risk check, default 100,000; 0 skips it),
      ``theory`` (the Theorem 1 checks), ``export_pandapower`` (allocation_pandapower.json, see
      :func:`pandapower_net`), ``plots`` (capacity_map.png and standalone_map.png, default on),
      ``scheduler`` (a Dask scheduler's address: the scenario tails computed there);
    - plan: ``frontier`` (the cost-CVaR frontier), ``plots`` (its figures, default on), ``workers``
      (processes for the plans' MILPs and their Stage II, default 1; the same files), ``scheduler``
      (a Dask scheduler's address: those tasks there instead);
    - price: ``plots`` (its figures, default on), ``workers`` (processes for the hours of a
      day, default 1; the same files);
    - headroom: ``plots`` (headroom_duration.png and headroom_map.png, default on);
    - sweep: ``config`` is the sweep file and ``out`` its directory (required: every run is
      written there, and the same call resumes), ``workers``, ``scheduler``, ``force``, ``plots``;
    - all: ``progress``, a function of one line (``print``); silent by default.

    Returns the study's typed result (sim/studies/result.py), whose ``files`` are the bytes the
    command writes; a sweep returns its ``SweepResult`` (runs, failed, and the directory ``out``).
    """
    if study not in STUDIES:
        raise ConfigError(f"unknown study {study!r}; the studies are {', '.join(STUDY_NAMES)}")
    if study == "sweep":
        _check_options(study, _sweep, options, ("out",))
        if base_dir is not None:
            raise ConfigError("sweep: base_dir does not apply; the sweep file's base config is relative to the file")
        return _sweep(config, **options)
    runner = _IN_PROCESS.get(study)
    if runner is None:  # a study registered after this module was written
        raise ConfigError(f"{study}: no in-process runner in sim.api; run it with python -m sim.cli "
                          f"{STUDIES[study].command}")
    _check_options(study, runner, options)
    loaded, name = _resolve(config, base_dir)
    return runner(loaded, name, **options)


def _sweep(config: PathLike, *, out: PathLike, workers: int = 1, scheduler: str | None = None,
           force: bool = False, plots: bool = False, progress: Progress | None = None) -> "SweepResult":
    from sim.execution.ordered_pool import check_workers
    from sim.studies.sweep import run_sweep

    if isinstance(config, (ExperimentConfig, Mapping)):
        raise ConfigError("sweep: give the sweep file's path (a TOML file with base, seeds and the fields to "
                          "vary), not a loaded config")
    check_workers(workers)
    return run_sweep(Path(config), Path(out), workers=workers, scheduler=scheduler, force=force,
                     quiet=progress is None, plots=plots, progress=progress or _quiet)


def _check_options(study: str, runner: Callable[..., Any], options: Mapping[str, Any],
                   required: Sequence[str] = ()) -> None:
    """Unknown or missing options are a one-line error that lists the study's options."""
    taken = [p.name for p in inspect.signature(runner).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(taken))
    missing = [name for name in required if name not in options]
    if unknown or missing:
        what = (f"unknown option {', '.join(map(repr, unknown))}" if unknown
                else f"missing option {', '.join(map(repr, missing))}")
        raise ConfigError(f"{study}: {what}; its options are {', '.join(taken)}")


def pandapower_net(result: "CapacityResult", *, base_dir: PathLike | None = None) -> Any:
    """A capacity result's firm allocation on its case as a pandapower net, the one that
    ``dcmarket capacity --export-pandapower`` saves: the case at its own loads, each firm capacity
    drawn in full as a load "new load <bus>" at the [ac] power factor, the units following as the
    AC check schedules them (grid/ac/export.py). Run it with ``pandapower.runpp(net,
    calculate_voltage_angles=True, trafo_model="pi", enforce_q_lims=True)``; save it with
    ``pandapower.to_json``. ``base_dir`` is where a relative case path starts (the config's folder;
    default the current folder). A case without the full AC data (a feeder, a CSV folder) raises
    a one-line ConfigError.
    """
    import io

    import pandapower as pp

    from sim.output.files import ALLOCATION_PANDAPOWER
    from sim.studies.capacity import pandapower_export
    from sim.studies.result import CapacityResult

    if not isinstance(result, CapacityResult):
        raise ConfigError(f"pandapower_net: give the result of run(\"capacity\", ...), got {type(result).__name__}")
    text = result.files.get(ALLOCATION_PANDAPOWER) or pandapower_export(
        result.config, Path(base_dir if base_dir is not None else "."), result.study)
    return pp.from_json(io.StringIO(text.decode("utf-8")))


# -- step by step --------------------------------------------------------------------------------
def market_model(config: Config, *, base_dir: PathLike | None = None,
                 progress: Progress | None = None) -> "MarketModel":
    """The auction's Mesa model, built (the capacity study has run, the bidders are registered)
    and not yet stepped: ``model.step()`` plays one round, ``model.running`` turns False when
    the auction closes, ``model.datacollector.get_table_dataframe("rounds")`` (or "bids",
    "withdrawals") holds the history, and ``model.judge()`` the verdict on the outcome so far.
    ``model.run_auction()`` plays the remaining rounds."""
    from grid.solvers.names import check_solver
    from sim.market.model import MarketModel

    loaded, name = _resolve(config, base_dir)
    if loaded.network is not None:
        check_solver(loaded.solver)
    with named_after(name):
        return MarketModel(loaded, base_dir=name.parent, progress=progress or _quiet)
