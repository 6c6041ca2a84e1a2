"""The command line of a study that reads one config table and writes one directory
(`dcmarket plan`, `dcmarket price`): load the config, refuse a bad --out before the work, run,
write the files with the effective config, print the report. One place for that sequence."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sim.config.schema import (
    ExperimentConfig,
    dump_config,
    effective_config,
    load_config,
)
from sim.errors import named_after
from sim.output import files as outputs


@dataclass(frozen=True)
class StudyResult:
    """What a study hands back: its summary, its files by name and its report for the terminal."""

    summary: dict[str, Any]
    files: dict[str, bytes]
    report: str


def study_command(args: argparse.Namespace, command: str, study: Callable[[ExperimentConfig], StudyResult],
                  label: str) -> int:
    """Run ``study`` on ``args.config`` and write ``runs/<config name>-<command>`` (or ``--out``)."""
    config = load_config(args.config, {"seed": args.seed, "solver": args.solver}, args.sets, table=command)
    out = args.out or Path("runs") / f"{args.config.stem}-{command}"
    outputs.check_out_dir(out, args.force)
    with named_after(args.config):
        result = study(config)
    files = dict(result.files)
    files[outputs.CONFIG] = dump_config(effective_config(config), command).encode("utf-8")
    outputs.write_run_directory(out, files, force=args.force)
    print(result.report)
    print(f"\n{label} directory: {out}")
    return 0
