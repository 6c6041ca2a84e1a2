"""Where studies write: a --out that cannot be written is refused before any work, by every
study; nothing is left behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sim.cli import main

REPO = Path(__file__).resolve().parents[3]
EXPERIMENTS = REPO / "experiments"


def _computing(*_, **__):
    raise AssertionError("the study started computing before refusing its --out")


# (command, its input, the function that does its work: it must not be reached)
STUDIES = [
    ("run", EXPERIMENTS / "paper_4bus_additive.toml", "sim.studies.auction.MarketModel"),
    ("capacity", EXPERIMENTS / "paper_4bus_additive.toml", "sim.studies.capacity.capacity_study"),
    ("plan", EXPERIMENTS / "ieee33bw_plan.toml", "sim.studies.plan.run_plan_study"),
    ("price", EXPERIMENTS / "ieee37_price.toml", "sim.studies.price.run_price_study"),
    ("sweep", EXPERIMENTS / "sweep_4bus_increment.toml", "sim.studies.sweep.load_config"),
]


def _immutable(folder: Path) -> bool:
    """Make ``folder`` immutable (chattr +i, root on Linux); False where that cannot be done."""
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def places(tmp_path):
    """Impossible --out paths: under a regular file, under /proc, in an immutable folder."""
    (tmp_path / "file").write_text("not a folder")
    found = {"under a file": (tmp_path / "file" / "out", f"{tmp_path / 'file'} is a file, not a folder")}
    if Path("/proc/self").exists():
        found["under /proc"] = (Path("/proc/dcmarket/out"), "cannot write in /proc (")
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    if _immutable(frozen):
        found["immutable"] = (frozen / "out", f"cannot write in {frozen} (Operation not permitted)")
    yield found
    if frozen.exists():
        subprocess.run(["chattr", "-i", str(frozen)], capture_output=True, check=False)


@pytest.mark.parametrize("command, target, work", STUDIES, ids=[s[0] for s in STUDIES])
def test_an_impossible_out_is_refused_before_any_work(places, tmp_path, capsys, monkeypatch, command, target, work):
    monkeypatch.setattr(work, _computing)
    before = sorted(p.name for p in tmp_path.iterdir())
    for where, (out, expected) in places.items():
        assert main([command, str(target), "--out", str(out), "--quiet"]) == 2, where
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {out}: ") and expected in err, (where, err)
        assert "choose another --out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_report_refuses_a_folder_it_cannot_write_before_drawing(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["run", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(run), "--quiet",
                 "--set", "load.scenarios=200"]) == 0
    if not _immutable(run):
        pytest.skip("chattr +i is not available here (needs root on Linux)")
    try:
        monkeypatch.setattr("sim.report.html.run_page", _computing)
        assert main(["report", str(run)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {run}: cannot write in {run} (Operation not permitted)") and err.count("\n") == 1
    finally:
        subprocess.run(["chattr", "-i", str(run)], capture_output=True, check=False)
    assert not (run / "report.html").exists()
