"""`dcmarket sweep SWEEP.toml --out DIR`: many runs of one base config over overrides and seeds.

Each run is `dcmarket run` of the base config with its overrides (sim/config/overrides.py) and seed, in
a worker process that imports dcmarket once (a local process pool by default, a Dask cluster
with ``--scheduler``). What a sweep directory holds:

    sweep.toml, base.toml   copies of the sweep file and its base config, as they were run (a
                            later call resumes only if both are unchanged)
    runs/run-0001/ ...      each run's directory, as `dcmarket run` writes it
    records/run-0001.json   each finished run's record (status, error, metrics, seconds)
    results.parquet         one row per run, ordered by run: the swept parameters, the seed and
                            the outcome (welfare, revenue, rounds, verdicts)
    timings.parquet         run, seconds, worker: kept apart so that results.parquet is the
                            same bytes however and wherever the runs went
    plots/                  (--plots) each metric against each swept parameter

Nothing is lost: a record is written (atomically) when its run ends, so a sweep killed at any
moment and started again with the same command runs only the missing runs and ends with the
same results.parquet. A run that fails is recorded with its one-line error; the others go on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from sim.config.overrides import Override, parse_path
from sim.config.plan import SAMPLES
from sim.config.schema import load_config
from sim.config.sweep import SWEEP_STUDIES, SweepConfig
from sim.errors import USER_ERRORS, ConfigError, named_after, one_line
from sim.execution.cluster import connect
from sim.execution.ordered_pool import check_workers
from sim.execution.pool_worker import warm_up
from sim.output import files as outputs
from sim.output.sweep_dir import (
    BASE_FILE,
    PLOTS_FOLDER,
    RECORDS_FOLDER,
    RESULTS,
    RUNS_FOLDER,
    SWEEP_FILE,
    TIMINGS,
    read_sweep,
)

Progress = Callable[[str], None]
# The exit code of a sweep that ran and wrote its table, but with failed runs (2: refused before
# any run, nothing written; 130: interrupted).
RUNS_FAILED = 1

@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id, position, seed and overrides (parameter path -> value)."""

    run: str
    index: int
    seed: int
    parameters: dict[str, Any]


def plan_runs(sweep: SweepConfig) -> list[RunSpec]:
    """Every parameter set with every seed, numbered in that order (parameters outer)."""
    sets = sweep.parameter_sets() or [{}]
    seeds = sweep.seed_list()
    width = max(4, len(str(len(sets) * len(seeds))))
    return [RunSpec(f"run-{i + 1:0{width}d}", i, seed, dict(parameters))
            for i, (parameters, seed) in enumerate((p, s) for p in sets for s in seeds)]


def overrides_of(parameters: Mapping[str, Any]) -> list[Override]:
    return [Override(parse_path(key), value, f"{key}={json.dumps(value)}") for key, value in parameters.items()]


def metrics_of(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome of one `dcmarket run`, from its summary.json."""
    verdict = summary.get("equilibrium") or {}
    welfare, efficient = summary.get("welfare"), summary.get("efficient_welfare")
    return {
        "mechanism": summary.get("mechanism"),
        "products": len(summary.get("products", [])),
        "bidders": len(summary.get("payments", {})),
        "welfare_usd": welfare,
        "efficient_welfare_usd": efficient,
        "efficiency": welfare / efficient if welfare is not None and efficient else None,
        "revenue_usd": math.fsum(summary.get("payments", {}).values()),
        "rounds": summary.get("rounds"),
        "rounds_run": summary.get("rounds_run"),
        "closed_by": summary.get("closed_by"),
        "equilibrium_holds": verdict.get("holds"),
        "equilibrium_holds_true": verdict.get("holds_true_valuations"),
        "walrasian_exists": verdict.get("walrasian_exists"),
        "efficiency_gap_usd": verdict.get("efficiency_gap"),
    }


FRESH = SAMPLES[1]  # the study's label of its fresh (out-of-sample) scenarios


def plan_metrics_of(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome of one `dcmarket plan`, from its summary.json (PLAN_METRIC_TYPES); a plan the
    run did not make (no DRO plan at radius 0) or a sample it did not draw leaves its columns empty."""
    out: dict[str, Any] = {}
    for name in ("sample", "dro"):
        plan = summary.get("plans", {}).get(name, {})
        fresh = summary.get("evaluation", {}).get(name, {}).get(FRESH, {})
        units = plan.get("units_by_hub")
        out.update({f"{name}_plan_cost_usd": plan.get("plan_cost_usd"), f"{name}_objective_usd": plan.get("objective_usd"),
                    f"{name}_units": sum(sum(u.values()) for u in units.values()) if units is not None else None,
                    f"{name}_hubs": " ".join(plan["open_hubs"]) if "open_hubs" in plan else None})
        out.update({f"{name}_fresh_{key}": fresh.get(key) for key in
                    ("expected_cost_usd", "cvar_usd", "expected_ens_mwh", "stabilized_share")})
    return out


def _run_auction(base: Path, out: Path, seed: int, sets: Sequence[Override]) -> dict[str, Any]:
    from sim.studies.auction import run_experiment

    return metrics_of(run_experiment(base, out, seed=seed, force=True, sets=sets).summary)


def _run_plan(base: Path, out: Path, seed: int, sets: Sequence[Override]) -> dict[str, Any]:
    from sim.studies.command import with_config
    from sim.studies.plan import run_plan_study

    config = load_config(base, {"seed": seed}, sets, table="plan")
    with named_after(base):
        result = with_config(run_plan_study(config, base.parent, frontier=False, plots=False), config, "plan")
    result.write(out, force=True)
    return plan_metrics_of(result.summary)


# What each study of SWEEP_STUDIES runs: (base config, run directory, seed, overrides) -> its metrics;
# and the module a worker imports before its first run.
RUNNERS: dict[str, Callable[[Path, Path, int, Sequence[Override]], dict[str, Any]]] = {
    "run": _run_auction, "plan": _run_plan}
WARM_MODULES = {"run": "sim.studies.auction", "plan": "sim.studies.plan"}


def run_one(spec: RunSpec, base: str, root: str, shown: str, study: str = "run") -> dict[str, Any]:
    """Run one spec of ``study`` in this process and return its record (a worker's task: dcmarket
    stays imported between tasks). A failure is a record with the one-line error, never an
    exception. ``base`` and ``root`` are absolute (a worker may start elsewhere); errors name the
    base config as ``shown``, the path the user gave."""
    begun = time.perf_counter()
    record: dict[str, Any] = {"run": spec.run, "index": spec.index, "seed": spec.seed, "parameters": spec.parameters}
    try:
        metrics = RUNNERS[study](Path(base), Path(root) / RUNS_FOLDER / spec.run, spec.seed,
                                 overrides_of(spec.parameters))
        record.update(status="ok", error=None, metrics=metrics)
    except USER_ERRORS as error:
        record.update(status="failed", error=portable_error(one_line(str(error)), Path(base), shown), metrics={})
    except Exception as error:  # a crash in one run must not stop the others; say what it was
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        record.update(status="failed", error=f"{type(error).__name__}: {first}", metrics={})
    record.update(seconds=time.perf_counter() - begun, worker=f"{socket.gethostname()}:{os.getpid()}")
    return record


def portable_error(message: str, base: Path, shown: str) -> str:
    """An error as the sweep file names things: the base config as ``shown`` and files beside it
    relative to it, so that the table does not depend on where the sweep ran."""
    resolved = base.resolve()
    folder = str(Path(shown).parent) + os.sep
    names = {str(base): shown, str(resolved): shown, str(base.parent) + os.sep: folder,
             str(resolved.parent) + os.sep: folder}
    for name in sorted(names, key=len, reverse=True):  # a path can end with a shorter one
        message = message.replace(name, names[name])
    return message


def failed_record(spec: RunSpec, why: str) -> dict[str, Any]:
    """The record of a run that failed without running to its end: its parameter set was
    invalid, or its worker process died, or its task was lost."""
    return {"run": spec.run, "index": spec.index, "seed": spec.seed, "parameters": spec.parameters,
            "status": "failed", "error": why, "metrics": {}, "seconds": 0.0, "worker": "-"}


WORKER_DIED = "the worker process died during this run (killed, or out of memory)"


def execute(pending: Sequence[RunSpec], base: Path, root: Path, *, workers: int, client: Any = None,
            shown: str, study: str = "run") -> Iterator[dict[str, Any]]:
    """The records of ``pending``, as the runs end (in any order), on ``client`` (a Dask client,
    see ``connect``) or on ``workers`` local processes; errors name the base config as ``shown``
    (the sweep file's ``base``), so records do not depend on where the sweep runs."""
    if not pending:
        return
    task = {"base": str(base.resolve()), "root": str(root.resolve()), "shown": shown, "study": study}
    if client is not None:
        yield from _on_dask(pending, task, client)
    elif workers <= 1:
        for spec in pending:
            yield run_one(spec, **task)
    else:
        yield from _on_pool(pending, task, workers)


def _on_dask(pending: Sequence[RunSpec], task: Mapping[str, Any], client: Any) -> Iterator[dict[str, Any]]:
    from distributed import as_completed as dask_completed

    futures = client.map(run_one, list(pending), **task, pure=False)
    spec_of = {future.key: spec for future, spec in zip(futures, pending)}
    for future in dask_completed(futures):
        try:
            yield future.result()
        except Exception as error:  # e.g. KilledWorker: Dask gave up on the run after its retries
            yield failed_record(spec_of[future.key], f"{WORKER_DIED}: {type(error).__name__}")


def _on_pool(pending: Sequence[RunSpec], task: Mapping[str, Any], workers: int,
             work: Callable[..., dict[str, Any]] = run_one) -> Iterator[dict[str, Any]]:
    """The runs on a pool of spawned workers (a fresh interpreter each, safe whatever threads the
    parent started), each warmed up with the imports of ``work`` (a run's study for run_one). A
    worker that dies breaks the pool without saying which run killed it: the runs not yet
    recorded then go one at a time through a single worker (replaced when it dies), so that only
    a run that kills its worker is recorded as failed and the others complete."""
    recorded: set[str] = set()
    warm = (WARM_MODULES[task.get("study", "run")],) if work is run_one else (work.__module__,)

    def new_pool(size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=size, mp_context=get_context("spawn"), initializer=warm_up,
                                   initargs=warm)

    pool = new_pool(workers)
    try:
        futures = [pool.submit(work, spec, **task) for spec in pending]
        for future in as_completed(futures):
            record = future.result()
            recorded.add(record["run"])
            yield record
        return
    except BrokenProcessPool:
        pass
    finally:
        # Interrupted or done: drop the runs not started, let the running ones end, and leave
        # no worker behind.
        pool.shutdown(wait=True, cancel_futures=True)
    alone = new_pool(1)
    try:
        for spec in (s for s in pending if s.run not in recorded):
            try:
                yield alone.submit(work, spec, **task).result()
            except BrokenProcessPool:  # this run, alone in its worker, killed it
                yield failed_record(spec, WORKER_DIED)
                alone.shutdown(wait=True)
                alone = new_pool(1)
    finally:
        alone.shutdown(wait=True, cancel_futures=True)


class ProgressLine:
    """Runs done, failed and time left, on stderr: one line redrawn on a terminal, a line every
    10 seconds (and at the end) otherwise."""

    def __init__(self, total: int, done: int, failed: int, progress: Progress, quiet: bool) -> None:
        self.total, self.done, self.failed = total, done, failed
        self.already = done
        self.started = time.perf_counter()
        self.progress = progress
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def update(self, failed: bool, ran: bool = True) -> None:
        """One more run done; ``ran`` = False for one recorded without running (its time would
        skew the estimate of what is left)."""
        self.done += 1
        self.failed += int(failed)
        if not ran:
            self.already += 1
        now = time.perf_counter()
        if self.quiet:
            return
        if self.tty:
            print("\r" + self.text(now), end="", file=sys.stderr, flush=True)
            if self.done == self.total:
                print(file=sys.stderr)
        elif now - self.last >= 10.0 or self.done == self.total:
            self.last = now
            self.progress(self.text(now))

    def text(self, now: float) -> str:
        elapsed = now - self.started
        fresh = self.done - self.already
        left = (self.total - self.done) * elapsed / fresh if fresh else math.nan
        remaining = "" if math.isnan(left) else f", about {left:,.0f} s left"
        return f"sweep: {self.done:,}/{self.total:,} runs done, {self.failed:,} failed, {elapsed:,.0f} s{remaining}"


@dataclass(frozen=True)
class SweepResult:
    runs: int
    ran: int  # recorded in this call (the rest were recorded before)
    failed: int
    out: Path
    first_failure: str = ""  # "run-0003: its error", when a run failed


def _set_key(spec: RunSpec) -> str:
    """The spec's parameter set as text: runs that differ only in their seed share it."""
    return json.dumps(spec.parameters, sort_keys=True)


def run_sweep(path: Path, out: Path, *, workers: int = 1, scheduler: str | None = None, force: bool = False,
              quiet: bool = False, plots: bool = False, progress: Progress = lambda _: None) -> SweepResult:
    sweep = read_sweep(path)
    outputs.check_writable(out)  # before the checks of every parameter set, and the runs
    base = (path.parent / sweep.base)
    if not base.is_file():
        raise ConfigError(f"{path}: base: {sweep.base} is not a file (relative to the sweep file)")
    specs = plan_runs(sweep)
    # A parameter set the schema rejects fails its runs here, not in a worker; a sweep file that
    # is wrong throughout is refused before it leaves anything on disk.
    invalid: dict[str, str] = {}
    distinct = {_set_key(s) for s in specs}
    for parameters in distinct:
        try:
            load_config(base, sets=overrides_of(json.loads(parameters)), table=None if sweep.study == "run" else sweep.study)
        except ConfigError as error:
            invalid[parameters] = portable_error(one_line(str(error)), base, sweep.base)
    if len(invalid) == len(distinct):
        raise ConfigError(f"{path}: every parameter set is invalid; the first: {sorted(invalid.values())[0]}")
    # The table's parameter columns, built now: a value they cannot hold fails here, not after the runs.
    keys = sweep.swept_keys()
    for key in keys:
        try:
            _table_column(key, [s.parameters.get(key) for s in specs])
        except (ValueError, TypeError, OverflowError) as error:
            raise ConfigError(f"{path}: {key}: its values cannot be a column of {RESULTS} ({one_line(str(error))[:120]}); "
                              "give numbers that fit 64 bits, strings or booleans") from None
    files = {SWEEP_FILE: path.read_bytes(), BASE_FILE: base.read_bytes()}
    # Reach the cluster before making the directory: a wrong address leaves nothing behind.
    client = connect(scheduler) if scheduler is not None else None
    try:
        return _record_runs(path, out, sweep, specs, invalid, files, force=force, workers=workers, client=client,
                            quiet=quiet, plots=plots, progress=progress)
    finally:
        if client is not None:
            client.close()


def _record_runs(path: Path, out: Path, sweep: SweepConfig, specs: Sequence[RunSpec], invalid: Mapping[str, str],
                 files: Mapping[str, bytes], *, force: bool, workers: int, client: Any, quiet: bool, plots: bool,
                 progress: Progress) -> SweepResult:
    """The sweep checked by ``run_sweep``: its directory, each missing run's record, the tables."""
    base = path.parent / sweep.base
    _prepare(out, files, force, {SWEEP_FILE: str(path), BASE_FILE: str(base)})
    records = _read_records(out, specs)
    _clear_partial_runs(out)
    pending = [s for s in specs if s.run not in records]
    line = ProgressLine(len(specs), len(records), sum(r["status"] != "ok" for r in records.values()), progress, quiet)
    if records and not quiet:
        progress(f"resuming: {len(records):,} of {len(specs):,} runs already recorded")
    runnable = []
    for spec in pending:
        error = invalid.get(_set_key(spec))
        if error is None:
            runnable.append(spec)
            continue
        record = failed_record(spec, error)
        _write_record(out, record)
        records[spec.run] = record
        line.update(failed=True, ran=False)
    if not quiet:
        where = "the Dask scheduler" if client else f"{workers} worker process(es)"
        progress(f"{len(runnable):,} runs to go on {where}")
    for record in execute(runnable, base, out, workers=workers, client=client, shown=sweep.base, study=sweep.study):
        _write_record(out, record)
        records[record["run"]] = record
        line.update(failed=record["status"] != "ok")
    ordered = [records[s.run] for s in specs]
    _write_tables(out, ordered, sweep.swept_keys(), SWEEP_STUDIES[sweep.study])
    if plots:
        from sim.report.figures.sweep import sweep_figures

        sweep_figures(out / RESULTS, sweep.swept_keys(), out / PLOTS_FOLDER, f"Sweep {path.stem}")
    failures = [f"{r['run']}: {r['error']}" for r in ordered if r["status"] != "ok"]
    return SweepResult(len(specs), len(pending), len(failures), out, failures[0] if failures else "")


def _prepare(out: Path, files: Mapping[str, bytes], force: bool, sources: Mapping[str, str]) -> None:
    """A new sweep directory, or the same sweep's to resume; a different one needs --force.
    ``files`` are the copies it keeps by name, ``sources`` the paths they copy."""
    if out.exists():
        if not out.is_dir():
            raise outputs.OutputError(f"{out}: exists and is not a directory; choose another --out")
        same = all((out / name).is_file() and (out / name).read_bytes() == content for name, content in files.items())
        if same and not force:
            (out / RECORDS_FOLDER).mkdir(exist_ok=True)
            (out / RUNS_FOLDER).mkdir(exist_ok=True)
            return
        is_sweep = (out / SWEEP_FILE).is_file() and (out / RECORDS_FOLDER).is_dir()
        if not force and is_sweep:
            # Name the copy that differs: another sweep's, or one damaged since it was written.
            differs = next(name for name, content in files.items()
                           if not ((out / name).is_file() and (out / name).read_bytes() == content))
            raise outputs.OutputError(f"{out}: holds a different sweep ({out / differs} differs from "
                                      f"{sources[differs]}: another sweep's copy, or damaged); choose another --out, "
                                      "or pass --force to replace it")
        if not force:
            raise outputs.OutputError(f"{out}: holds files that are not a sweep; choose another --out")
        if not is_sweep and any(out.iterdir()):
            raise outputs.OutputError(f"{out}: holds files that are not a sweep; --force replaces only sweep "
                                      "directories, choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORDS_FOLDER).mkdir(exist_ok=True)
    (out / RUNS_FOLDER).mkdir(exist_ok=True)
    for name, content in files.items():
        outputs.write_atomically(out / name, content)


def _write_record(out: Path, record: Mapping[str, Any]) -> None:
    outputs.write_atomically(out / RECORDS_FOLDER / f"{record['run']}.json", outputs.json_bytes(record))


_RECORD_KEYS = frozenset({"run", "index", "seed", "parameters", "status", "error", "metrics", "seconds", "worker"})


def _read_records(out: Path, specs: Sequence[RunSpec]) -> dict[str, dict[str, Any]]:
    """Records that match their spec; a damaged or stale one is dropped (its run runs again)."""
    by_run = {s.run: s for s in specs}
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((out / RECORDS_FOLDER).glob("run-*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            path.unlink(missing_ok=True)
            continue
        spec = by_run.get(record.get("run")) if isinstance(record, dict) else None
        complete = isinstance(record, dict) and _RECORD_KEYS <= set(record) and isinstance(record["metrics"], dict)
        if spec is None or not complete or record["seed"] != spec.seed or record["parameters"] != spec.parameters:
            path.unlink(missing_ok=True)
            continue
        records[spec.run] = record
    return records


def _clear_partial_runs(out: Path) -> None:
    """Staging folders of runs killed mid-write (outputs.write_run_directory's temporary names)."""
    for entry in (out / RUNS_FOLDER).glob(".run-*"):
        shutil.rmtree(entry, ignore_errors=True)
    for entry in out.glob(".*.tmp-*"):
        entry.unlink(missing_ok=True)


def _column_type(values: Iterable[Any]):
    """A parameter column's type: bool, int64, float64 or string as its values allow; anything
    else (lists, tables, or a mix such as 1 and "abc") as JSON text."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_(), lambda v: v
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64(), lambda v: v
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64(), lambda v: None if v is None else float(v)
    if all(isinstance(v, str) for v in present):
        return pa.string(), lambda v: v
    return pa.string(), lambda v: None if v is None else json.dumps(v)  # lists and tables as JSON


def _table_column(key: str, values: Sequence[Any]) -> tuple[Any, Any]:
    """A field and column of results.parquet (pyarrow), typed as its values allow."""
    import pyarrow as pa

    kind, convert = _column_type(values)
    return pa.field(key, kind), pa.array([convert(v) for v in values], type=kind)


def _write_tables(out: Path, records: Sequence[Mapping[str, Any]], keys: Sequence[str],
                  metric_types: Mapping[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {
        "run": [r["run"] for r in records],
        "status": [r["status"] for r in records],
        "error": [r["error"] for r in records],
        "seed": [r["seed"] for r in records],
    }
    columns.update({key: [r["parameters"].get(key) for r in records] for key in keys})
    fields, arrays = [], []
    for name, values in columns.items():
        field, array = _table_column(name, values)
        fields.append(field)
        arrays.append(array)
    for metric, kind in metric_types.items():
        fields.append(pa.field(metric, pa.type_for_alias(kind)))
        arrays.append(pa.array([r["metrics"].get(metric) for r in records], type=pa.type_for_alias(kind)))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    timings = pa.table({"run": [r["run"] for r in records], "seconds": [float(r["seconds"]) for r in records],
                        "worker": [r["worker"] for r in records]})
    for name, data in ((RESULTS, table), (TIMINGS, timings)):
        buffer = pa.BufferOutputStream()
        pq.write_table(data, buffer)
        outputs.write_atomically(out / name, buffer.getvalue().to_pybytes())


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def command(args: argparse.Namespace, progress: Progress) -> int:
    """`dcmarket sweep SWEEP.toml`."""
    check_workers(args.workers)
    out = args.out or Path("runs") / f"{args.sweep.stem}-sweep"
    # A SIGTERM (a scheduler's kill, `timeout`) unwinds like Ctrl-C, so the worker pool is shut
    # down rather than left orphaned; the records so far stay.
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        result = run_sweep(args.sweep, out, workers=args.workers, scheduler=args.scheduler, force=args.force,
                           quiet=args.quiet, plots=args.plots, progress=progress)
    except KeyboardInterrupt:
        print(f"error: interrupted; the finished runs are recorded in {out}; run the same command again to "
              "finish the others", file=sys.stderr)
        return 130
    print(f"{result.runs:,} runs ({result.ran:,} run now, {result.runs - result.ran:,} recorded before), "
          f"{result.failed:,} failed")
    print(f"Sweep directory: {out} (results.parquet; query it with dcmarket results {out})")
    if result.failed:
        # The table holds every run; the exit code says that not every run succeeded.
        print(f"error: {result.failed:,} of {result.runs:,} runs failed (the first, {one_line(result.first_failure)}); "
              f"the table records each: dcmarket results {out} --where \"status <> 'ok'\"", file=sys.stderr)
        return RUNS_FAILED
    return 0
