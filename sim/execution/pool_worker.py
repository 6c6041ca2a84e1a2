"""What each spawned worker of a sweep's process pool runs first. A module of its own, importing
nothing of dcmarket: the worker unpickles this initializer before anything else, and it should
cost the worker only what the runs need."""

from __future__ import annotations

import importlib
import os
import threading
import time


def warm_up(module: str) -> None:
    """Import what a run needs (``module``) once per worker process, not once per run; and end the
    worker if the sweep that started it dies (a SIGKILL gives the sweep no chance to shut its pool
    down)."""
    importlib.import_module(module)
    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True, name="dcmarket-orphan-watch").start()
