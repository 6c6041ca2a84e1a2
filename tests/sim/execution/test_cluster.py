"""`dcmarket capacity --scheduler` (sim/execution/cluster.py): the scenario tails computed on a Dask
cluster give the capacities of the study in process, and a scheduler that does not answer is one
line within seconds, before anything is written."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from sim.cli import main

CASE = ["capacity", "ieee118", "--scenarios", "400", "--verify", "2000", "--no-theory", "--no-plots", "--quiet",
        "--set", "ac.check=false"]


def _capacities(files: dict[str, bytes]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files["capacity.csv"].decode("utf-8"))))


def _tail_seconds(cluster) -> float:
    """The seconds the scheduler has recorded for line_block_tails tasks (0 before the first)."""
    prefix = cluster.scheduler.task_prefixes.get("line_block_tails")
    return 0.0 if prefix is None else prefix.all_durations["compute"]


@pytest.mark.slow
def test_a_two_worker_cluster_gives_the_capacities_of_the_study_in_process(tmp_path, dask_cluster):
    """ieee118 with 400 scenarios and three tiers (2.5, 5 and 10 %): the tails of its 186 lines in one block of
    lines per worker task, on the suite's two worker processes; every file but the config's copy the same
    bytes (the same numbers, to the last digit), and the risk check's counts the same."""
    from grid.capacity.rows import limits

    here, there = tmp_path / "here", tmp_path / "there"
    assert main([*CASE, "--risk", "0.025", "0.05", "0.1", "--out", str(here)]) == 0
    small = limits.LINE_BLOCK
    limits.LINE_BLOCK = 64   # three blocks of ieee118's lines, so that both workers get some
    before = _tail_seconds(dask_cluster)   # the cluster is the suite's: other tests may have run tails on it
    try:
        assert main([*CASE, "--risk", "0.025", "0.05", "0.1", "--out", str(there),
                     "--scheduler", dask_cluster.scheduler_address]) == 0
    finally:
        limits.LINE_BLOCK = small
    computed = _tail_seconds(dask_cluster) - before
    assert computed > 0   # the tails' blocks ran on the cluster's workers
    names = sorted(p.name for p in here.iterdir())
    assert names == sorted(p.name for p in there.iterdir())
    for name in names:
        assert (here / name).read_bytes() == (there / name).read_bytes(), name
    rows = list(csv.DictReader((here / "capacity.csv").open()))
    assert sum(float(r["flexible_10%_mw"]) for r in rows) > 0  # a study with something to compare


@pytest.mark.parametrize("address", ["garbage", "tcp://127.0.0.1:1"])
def test_a_scheduler_that_does_not_answer_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, address):
    import sim.execution.cluster as cluster_module

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 1)
    started = time.monotonic()
    assert main([*CASE, "--out", str(tmp_path / "out"), "--scheduler", address]) == 2
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: --scheduler: cannot reach a Dask scheduler at '{address}'" in err, err
    assert list(Path(tmp_path).iterdir()) == []


def _unaligned_copy(values):
    """``values`` in a buffer one byte off any 8-byte boundary, as Dask often hands a worker its
    arrays."""
    import numpy as np

    buffer = bytearray(values.nbytes + 8)
    raw = np.frombuffer(memoryview(buffer)[1:1 + values.nbytes], dtype=np.uint8)
    raw[:] = np.frombuffer(values.tobytes(), dtype=np.uint8)
    return raw.view(values.dtype).reshape(values.shape)


def test_a_task_gets_its_arrays_aligned_and_sums_them_as_this_process_does():
    """aligned_call (ClusterBlocks' wrapper on the worker): every array argument, positional or by
    name, reaches the function aligned and C-contiguous, so a reduction over 70,000 buses (numpy
    runs unaligned ones through buffers, in another order) gives this process's bits."""
    import numpy as np

    from sim.execution.cluster import aligned_call

    samples = np.random.default_rng(4).normal(size=(6, 70_000)) * 100.0
    unaligned = _unaligned_copy(samples)
    assert not unaligned.flags.aligned and np.array_equal(unaligned, samples)

    def per_scenario(values, *, more):
        assert values.flags.aligned and values.flags.c_contiguous and more.flags.aligned
        return values.T.sum(axis=0) + more.T.sum(axis=0)

    expected = samples.T.sum(axis=0) * 2.0
    assert np.array_equal(aligned_call(per_scenario, unaligned, more=_unaligned_copy(samples)), expected)
