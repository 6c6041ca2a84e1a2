"""Sweep tasks that misbehave on purpose, for the crash and kill tests (imported by the spawned
workers, so they live in a module of their own; it imports dcmarket only inside the tasks that
run studies, so that a worker of the dying task starts in milliseconds)."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOOMED = "run-0003"
STALL_FROM = 4  # runs from this index on never end


@dataclass(frozen=True)
class LightSpec:
    """What the pool reads of a run (sim.studies.sweep.RunSpec's fields), in a module a spawned
    worker imports in milliseconds: unpickling a RunSpec would import the whole config schema."""

    run: str
    index: int
    seed: int
    parameters: dict = field(default_factory=dict)


def dying_run(spec, **task):
    """DOOMED kills its worker; the others return a record without running a study (the pool's
    handling of a dead worker is the point, and real runs on the pool are tested on their own)."""
    if spec.run == DOOMED:
        os._exit(3)  # as an out-of-memory kill would: no exception, no record
    return {"run": spec.run, "status": "ok", "worker": str(os.getpid())}


def stalling_run(spec, **task):
    """Runs before STALL_FROM run; the others leave a half-written run folder, as a run killed
    while writing would (write_run_directory's staging name), and wait to be killed."""
    from sim.output.sweep_dir import RUNS_FOLDER
    from sim.studies.sweep import run_one

    if spec.index < STALL_FROM:
        return run_one(spec, **task)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.run}.tmp-", dir=Path(task["root"]) / RUNS_FOLDER))
    (staging / "summary.json").write_text("{")
    time.sleep(600)
    raise RuntimeError("stalling_run was not killed")


def stalled_sweep(sweep: str, out: str) -> int:
    """`dcmarket sweep SWEEP --out OUT` on a pool of one spawned worker whose task is
    stalling_run, so that a test can kill it with exactly the runs before STALL_FROM recorded."""
    from sim.cli import main
    from sim.studies import sweep as module

    pool = module._on_pool
    module._on_pool = lambda pending, task, workers: pool(pending, task, 1, work=stalling_run)
    return main(["sweep", sweep, "--out", out, "--workers", "2", "--quiet"])  # 2: through _on_pool
