"""The command line of a study that reads one config table and writes one directory
(`dcmarket plan`, `dcmarket price`): load the config, refuse a bad --out before the work, run,
write the files with the effective config, print the report. One place for that sequence."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from sim.config.schema import (
    ExperimentConfig,
    dump_config,
    effective_config,
    load_config,
)
from sim.errors import named_after
from sim.output import files as outputs
from sim.studies.result import StudyResult


def study_command(args: argparse.Namespace, command: str, study: Callable[[ExperimentConfig], StudyResult],
                  label: str, table: str | None = None, page: str | None = None) -> int:
    """Run ``study`` on ``args.config`` and write ``runs/<config name>-<command>`` (or ``--out``); the
    config's ``table`` (default: the command's name) must be there, shown on docs/studies/``page``.md."""
    config = load_config(args.config, {"seed": args.seed, "solver": args.solver}, args.sets, table=table or command,
                         command=command, page=page)
    out = args.out or Path("runs") / f"{args.config.stem}-{command}"
    outputs.check_out_dir(out, args.force)
    with named_after(args.config):
        result = with_config(study(config), config, command)
    result.write(out, force=args.force)
    print(result.report)
    print(f"\n{label} directory: {out}")
    return 0


def with_config(result: StudyResult, config: ExperimentConfig, command: str) -> StudyResult:
    """A study's result as its own directory: its files and the effective config that re-runs it."""
    files = {**result.files, outputs.CONFIG: dump_config(effective_config(config), command).encode("utf-8")}
    return StudyResult(result.summary, files, result.report)
