"""`dcmarket evolve` (docs/studies/interconnection.md): the example's files, a byte-identical rerun
from its own config, the files adding up, and bad input as one line with exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sim.cli import main

EXAMPLE = Path(__file__).resolve().parents[3] / "experiments" / "interconnection_small.toml"


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["evolve", str(config), "--out", str(out), "--quiet", *extra])


def test_the_example_reruns_byte_for_byte_and_adds_up(tmp_path):
    out, again = tmp_path / "a", tmp_path / "b"
    assert _run(EXAMPLE, out) == 0
    assert _run(out / "config.toml", again) == 0
    for name in ("cycles.csv", "requests.csv", "summary.json", "config.toml", "connected.png", "outcomes.png"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert _run(EXAMPLE, tmp_path / "bare", "--no-plots") == 0
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["config.toml", "cycles.csv", "requests.csv",
                                                                     "summary.json"]
    assert (tmp_path / "bare" / "requests.csv").read_bytes() == (out / "requests.csv").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["regimes"]) == ["queue", "cluster", "batch", "auction"]
    with open(out / "requests.csv", newline="") as handle:
        requests = list(csv.DictReader(handle))
    with open(out / "cycles.csv", newline="") as handle:
        cycles = list(csv.DictReader(handle))
    for label, figures in summary["regimes"].items():
        mine = [r for r in requests if r["regime"] == label]
        assert len(mine) == figures["requests"] == summary["developers"]
        connected = [r for r in mine if r["status"] == "connected"]
        assert sum(float(r["granted_mw"]) for r in connected) == pytest.approx(figures["connected_mw"])
        last = [c for c in cycles if c["regime"] == label][-1]
        assert float(last["connected_mw"]) == pytest.approx(figures["connected_mw"])
        assert int(last["month"]) == (summary["cycles"] - 1) * summary["cycle_months"]
        # Firm grants never exceed the buses' firm headroom (800 MW), curtailable ones the flexible (1,450 MW).
        firm = sum(float(r["granted_mw"]) for r in connected if r["flexible"] == "False")
        assert firm <= 800.0 + 1e-6 and figures["connected_mw"] <= 1450.0 + 1e-6
    # Another seed, other arrivals.
    assert _run(EXAMPLE, tmp_path / "c", "--seed", "7") == 0
    assert (tmp_path / "c" / "requests.csv").read_bytes() != (out / "requests.csv").read_bytes()


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(EXAMPLE.read_text() + text)
    return path


@pytest.mark.parametrize("sets, message", [
    (["--set", "dynamics.regimes[0].threshold_mw=75"], "'threshold_mw' is a rule of the batch regime, not of queue"),
    (["--set", "dynamics.regimes[2].every_cycles=2"], "every_cycles: 2 is shorter than a study (4 cycles)"),
    (["--set", "dynamics.arrivals.mw=[800.0, 900.0]"], "arrivals.mw: the smallest request (800 MW) exceeds every bus"),
    (["--set", "dynamics.regimes[0].kind=\"lottery\""], "unknown regime kind 'lottery'"),
    (["--set", "dynamics.cycles=100000"], "dynamics.cycles"),
    (["--set", "dynamics.regimes[1].name=\"queue\""], "two regimes are called 'queue'"),
    (["--unset", "dynamics"], "dynamics: missing [dynamics]; dcmarket evolve reads"),
])
def test_bad_input_is_one_line(tmp_path, capsys, sets, message):
    out = tmp_path / "out"
    assert _run(EXAMPLE, out, *sets) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_the_python_api_gives_the_same_files(tmp_path):
    from sim import api

    assert _run(EXAMPLE, tmp_path / "cli") == 0
    result = api.run("evolve", EXAMPLE)
    for name in ("cycles.csv", "requests.csv", "summary.json", "config.toml", "connected.png", "outcomes.png"):
        assert result.files[name] == (tmp_path / "cli" / name).read_bytes(), name
    assert set(result.tables["requests"]["regime"]) == {"queue", "cluster", "batch", "auction"}
