"""`dcmarket results DIR`: query a sweep's results table with DuckDB.

The table is results.parquet (one row per run) joined with timings.parquet (seconds per run).
``--where`` is a SQL condition on its columns (quote dotted parameter names:
``--where '"auction.increment" >= 2 and status = ''ok'''``); ``--group-by`` summarises per group:
runs, failures, mean welfare and efficiency, revenue and its spread, rounds, the share of
equilibrium verdicts and seconds; or, with ``--metric``, the mean, sd, min and max of any column.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Sequence

from sim.config.sweep import MAX_RUNS, RESERVED_COLUMNS
from sim.output import files as outputs
from sim.output.sweep_dir import (
    PLOTS_FOLDER,
    RESULTS,
    TIMINGS,
    read_sweep_copy,
    read_table,
)
from sim.report.text import format_table

# What a row listing shows besides the swept parameters, and what a group summary aggregates: the
# columns of a run sweep and of a plan sweep (each sweep's table has one kind; absent ones are skipped).
SHOWN = ("welfare_usd", "efficiency", "revenue_usd", "rounds", "equilibrium_holds", "sample_hubs", "sample_units",
         "sample_objective_usd", "sample_fresh_expected_ens_mwh", "sample_fresh_stabilized_share", "seconds")
# A group summary's default columns: (aggregate, column).
SUMMARY = (("avg", "welfare_usd"), ("avg", "efficiency"), ("min", "efficiency"), ("avg", "revenue_usd"),
           ("stddev_samp", "revenue_usd"), ("avg", "rounds"), ("avg", "sample_objective_usd"),
           ("avg", "sample_units"), ("avg", "sample_fresh_expected_ens_mwh"), ("avg", "sample_fresh_stabilized_share"),
           ("avg", "seconds"))
_LABELS = {"avg": "mean", "stddev_samp": "sd", "min": "min", "max": "max"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def query(run_dir: Path, *, where: str | None = None, group_by: Sequence[str] = (),
          metrics: Sequence[str] = (), limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The selected rows, or one row per group: (column names, rows). ``metrics`` replace a group
    summary's default columns by the mean, sd, min and max of each."""
    import duckdb

    results, timings = run_dir / RESULTS, run_dir / TIMINGS
    if not results.is_file():
        raise outputs.OutputError(f"{run_dir}: no {RESULTS}; is it a sweep directory (dcmarket sweep)? An "
                                  "unfinished sweep writes it when the same command runs it to the end")
    # The tables are read here and handed to DuckDB by name: a path is never pasted into SQL
    # (a quote would break it, and DuckDB would read "*" or "[...]" in it as a glob).
    connection = duckdb.connect()
    connection.register("r", read_table(run_dir, RESULTS))
    if timings.is_file():
        connection.register("t", read_table(run_dir, TIMINGS))
    source = "r LEFT JOIN t USING (run)" if timings.is_file() else "r"
    columns = [row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    for flag, names in (("--group-by", group_by), ("--metric", metrics)):
        for name in names:
            if name not in columns:
                raise outputs.OutputError(f"{flag}: no column {name!r}; the columns are {', '.join(columns)}")
    condition = f" WHERE {where}" if where else ""
    if group_by:
        keys = ", ".join(_quote(c) for c in group_by)
        parts = [f"{keys}", "count(*) AS runs", "count(*) FILTER (WHERE status <> 'ok') AS failed"]
        chosen = ([(how, m) for m in metrics for how in _LABELS] if metrics
                  else [(how, m) for how, m in SUMMARY if m in columns])
        parts += [f"{how}({_quote(m)}) AS {_quote(_LABELS[how] + ' ' + m)}" for how, m in chosen]
        if "equilibrium_holds" in columns:
            # Among the runs with a verdict: VCG and the queue have none.
            parts.append("avg(CASE WHEN equilibrium_holds THEN 1.0 ELSE 0.0 END) "
                         "FILTER (WHERE status = 'ok' AND equilibrium_holds IS NOT NULL) AS \"share equilibrium\"")
        sql = f"SELECT {', '.join(parts)} FROM {source}{condition} GROUP BY {keys} ORDER BY {keys}"
    else:
        swept = [c for c in columns if c not in RESERVED_COLUMNS]
        shown = ["run", "status", "seed", *swept, *(c for c in SHOWN if c in columns), "error"]
        sql = f"SELECT {', '.join(_quote(c) for c in shown)} FROM {source}{condition} ORDER BY run"
        if limit is not None:
            if not 0 <= limit <= MAX_RUNS:
                raise outputs.OutputError(f"--limit: give a number of runs from 0 to {MAX_RUNS:,}")
            sql += f" LIMIT {int(limit)}"
    try:
        cursor = connection.execute(sql)
    except duckdb.Error as error:
        first = str(error).strip().splitlines()[0]
        what = "--where" if where else "the query"
        raise outputs.OutputError(f"{what}: {first}; columns: {', '.join(columns)}") from None
    names = [d[0] for d in cursor.description]
    return names, cursor.fetchall()


def cell(value: Any) -> str:
    """A value as a table shows it: '-' for missing, yes/no, numbers to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def plot(run_dir: Path, parameter: str, metrics: Sequence[str]) -> Path:
    """``--plot PARAMETER``: the chosen metrics (default: efficiency, revenue, welfare, rounds)
    against one swept parameter, with bands over seeds, into DIR/plots/."""
    from sim.report.figures.sweep import file_name, plot_metrics_against

    query(run_dir, limit=0)  # a clear error for a directory that is not a finished sweep
    keys = read_sweep_copy(run_dir).swept_keys()
    if parameter not in keys:
        raise outputs.OutputError(f"--plot: {parameter!r} is not a swept parameter; the sweep varies {', '.join(keys)}")
    table = read_table(run_dir, RESULTS, keys).to_pandas()
    if (run_dir / TIMINGS).is_file():
        table = table.merge(read_table(run_dir, TIMINGS).to_pandas(), on="run")
    for metric in metrics:
        if metric not in table.columns or table[metric].dtype.kind not in "ifb":
            numeric = [c for c in table.columns if table[c].dtype.kind in "if" and c not in (*keys, "seed")]
            raise outputs.OutputError(f"--metric: {metric!r} is not a numeric column; use one of {', '.join(numeric)}")
    table = table[table["status"] == "ok"]
    if table.empty:
        raise outputs.OutputError(f"{run_dir}: no successful run to plot")
    outputs.check_writable(run_dir / PLOTS_FOLDER)
    path = run_dir / PLOTS_FOLDER / file_name(parameter, metrics)
    plot_metrics_against(table, parameter, [k for k in keys if k != parameter], path, f"Sweep {run_dir.name}",
                         metrics)
    return path


def command(args: argparse.Namespace) -> int:
    """`dcmarket results DIR`."""
    if args.plot is not None:
        print(f"Plot: {plot(args.run_dir, args.plot, args.metric or ())}")
        return 0
    names, rows = query(args.run_dir, where=args.where, group_by=args.group_by or (), metrics=args.metric or (),
                        limit=args.limit)
    if args.csv:
        print(outputs.csv_bytes(names, [dict(zip(names, row)) for row in rows]).decode("utf-8"), end="")
        return 0
    print(format_table(names, [tuple(cell(v) for v in row) for row in rows],
                       [not isinstance(v, str) for v in (rows[0] if rows else [""] * len(names))]))
    print(f"\n{len(rows):,} {'groups' if args.group_by else 'runs'}")
    return 0
