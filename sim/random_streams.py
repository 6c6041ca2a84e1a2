"""Independent random streams derived from the one seed of a run.

Each consumer gets its own stream, keyed by a stable name, so adding a new consumer (or
drawing more scenarios) never shifts the numbers another consumer sees.
"""

from __future__ import annotations

import zlib

import numpy as np

# The streams a run uses today; later consumers add names here.
STREAM_NAMES = ("scenarios", "tie_break", "activation", "verification", "shocks", "shocks_out_of_sample",
                "shocks_shifted", "withdrawals")


def stream(seed: int, name: str) -> np.random.Generator:
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(key,)))


def stream_seed(seed: int, name: str) -> int:
    """An integer seed for libraries that want one (Mesa's activation order)."""
    return int(stream(seed, name).integers(2**63 - 1))
