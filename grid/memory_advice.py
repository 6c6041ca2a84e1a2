"""Whether numpy asks the kernel for huge pages on its large arrays while a study runs.

numpy advises transparent huge pages (madvise MADV_HUGEPAGE) for every array of 4 MB or more.
Where the kernel compacts memory on that advice before it hands the pages out
(/sys/kernel/mm/transparent_hugepage/defrag = madvise, the reference machine's setting), a fresh
array can wait for seconds. In the N-1 study the first chunk of each pass's pair tails took 1.1 to
2.2 s instead of 0.2 s, and adding a pass's pairs to the table 5.7 s instead of 2.0 s
(docs/models/capacity.md#memory-advice). The capacity studies turn the advice off while they run
and give it back after.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np


def _advice_switch() -> Callable[[bool], bool] | None:
    """numpy's own switch (it returns the setting it replaces), where this numpy has one."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


@contextmanager
def without_hugepage_advice() -> Iterator[None]:
    """A context (or decorator) in which numpy gives no huge-page advice for new arrays."""
    switch = _advice_switch()
    if switch is None:
        yield
        return
    before = switch(False)
    try:
        yield
    finally:
        switch(before)
