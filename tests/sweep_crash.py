"""A sweep task that kills its worker process on one run, for the crash test (imported by the
spawned workers, so it lives in a module of its own)."""

from __future__ import annotations

import os

from sim.studies.sweep import run_one

DOOMED = "run-0003"


def dying_run(spec, **task):
    if spec.run == DOOMED:
        os._exit(3)  # as an out-of-memory kill would: no exception, no record
    return run_one(spec, **task)
