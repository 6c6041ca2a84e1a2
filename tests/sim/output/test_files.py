"""Where studies write: a --out that cannot be written is refused before any work, by every
study, and nothing is left behind; a run replaced with --force is, at every instant, the old run
or the new one, whenever the writer is killed; what killed writers leave is cleared."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sim.output.files as files
from sim.cli import main

REPO = Path(__file__).resolve().parents[3]
EXPERIMENTS = REPO / "experiments"


def _computing(*_, **__):
    raise AssertionError("the study started computing before refusing its --out")


# (command, its input, the function that does its work: it must not be reached)
STUDIES = [
    ("run", EXPERIMENTS / "paper_4bus_additive.toml", "sim.studies.auction.MarketModel"),
    ("capacity", EXPERIMENTS / "paper_4bus_additive.toml", "agents.capacity_products.capacity_study"),
    ("plan", EXPERIMENTS / "ieee33bw_plan.toml", "sim.studies.plan.run_plan_study"),
    ("price", EXPERIMENTS / "ieee37_price.toml", "sim.studies.price.study.run_price_study"),
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


# --------------------------------------------------------------------------------------------
# run --force swaps the new run in; what killed writers leave is cleared at the next start

CONFIG = EXPERIMENTS / "paper_4bus_additive.toml"
SMALL = ["--quiet", "--set", "load.scenarios=200"]
# Runs `dcmarket` in a fresh process; KILL_AT names the step at which it dies as a SIGKILL
# would (no cleanup): "swap" right after the one-step swap, "second" between the two renames
# of the fallback (the swap switched off).
DRIVER = """
import os, sys
import sim.output.files as files
kill_at = os.environ.get("KILL_AT")
real_exchange, real_replace = files._exchange, os.replace
def exchange(first, second):
    if kill_at == "second":
        return False
    done = real_exchange(first, second)
    if kill_at == "swap":
        os._exit(9)
    return done
renames = []
def replace(source, target):
    renames.append(target)
    if kill_at == "second" and len(renames) == 2:
        os._exit(9)
    return real_replace(source, target)
files._exchange = exchange
files.os.replace = replace
from sim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _dcmarket(*args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **({"KILL_AT": kill_at} if kill_at else {})}
    return subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False)


def _fresh_start(monkeypatch) -> None:
    """Make the next in-process command start as a new `dcmarket` process would: temporaries
    made until now count as made before its start, and no folder counts as cleared yet. Only
    the killed writer needs a process of its own; the calls around it run here."""
    monkeypatch.setattr(files, "_STARTED", time.time())
    monkeypatch.setattr(files, "_CLEARED", set())


def _in_process(capsys, *args: str) -> tuple[int, str]:
    """`dcmarket ARGS` in this process: its exit code and its stderr."""
    code = main(list(args))
    return code, capsys.readouterr().err


def _seed(run: Path) -> int:
    return json.loads((run / "summary.json").read_text())["seed"]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_force_killed_after_the_swap_leaves_the_new_run_and_the_next_start_clears_the_old(tmp_path, capsys,
                                                                                         monkeypatch):
    run = tmp_path / "run"
    assert _in_process(capsys, "run", str(CONFIG), "--out", str(run), *SMALL, "--seed", "1")[0] == 0
    killed = _dcmarket("run", str(CONFIG), "--out", str(run), *SMALL, "--seed", "2", "--force", kill_at="swap")
    assert killed.returncode == 9
    assert _seed(run) == 2  # swapped in one step: at no instant was there no run
    assert [name.split("-")[0] for name in _hidden(tmp_path)] == [".run.tmp"]  # the old run, on its way out
    _fresh_start(monkeypatch)
    code, err = _in_process(capsys, "run", str(CONFIG), "--out", str(run), *SMALL)
    assert code == 2 and "already exists; pass --force" in err
    assert _hidden(tmp_path) == [] and _seed(run) == 2


def test_force_killed_between_two_renames_is_put_back_at_the_next_start(tmp_path, capsys, monkeypatch):
    """Where the swap is not available: the old run was moved aside, the new one not yet in
    place. It used to survive only inside a hidden .run.old-*."""
    run = tmp_path / "run"
    assert _in_process(capsys, "run", str(CONFIG), "--out", str(run), *SMALL, "--seed", "1")[0] == 0
    killed = _dcmarket("run", str(CONFIG), "--out", str(run), *SMALL, "--seed", "2", "--force", kill_at="second")
    assert killed.returncode == 9 and not run.exists()
    assert [name.split("-")[0] for name in _hidden(tmp_path)] == [".run.old", ".run.tmp"]
    _fresh_start(monkeypatch)
    code, err = _in_process(capsys, "run", str(CONFIG), "--out", str(run), *SMALL)
    assert code == 2 and "put back the run that an interrupted --force left" in err
    assert _seed(run) == 1 and _hidden(tmp_path) == []


def test_only_temporaries_of_gone_writers_made_before_this_start_are_cleared(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert _in_process(capsys, "run", str(CONFIG), "--out", str(run), *SMALL)[0] == 0
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    past, future = time.time() - 3600, time.time() + 3600
    made = {
        tmp_path / f".run.tmp-{gone}-a1b2c3d4": past,  # a killed run's staging
        tmp_path / f".run.old-{gone}-d4e5f6g7": past,  # a killed --force's old run (the run is there)
        run / f".report.html.tmp-{gone}": past,  # a killed report
        tmp_path / f".notes.old-{gone}": past,  # a folder, but not ours (no tempfile suffix): never touched
        tmp_path / f".vimrc.tmp-{gone}": past,  # not a file dcmarket writes: never touched
        tmp_path / f".run.tmp-{os.getppid()}-g7h8i9j0": time.time(),  # a writer that still runs
        tmp_path / f".run.tmp-{gone}-j1k2l3m4": future,  # made after the next start began
    }
    for path, when in made.items():
        if not path.name.startswith((".run", ".notes")):
            path.write_text("<html")
        else:
            (path / "run").mkdir(parents=True)
            (path / "run" / "summary.json").write_text("{}")
        os.utime(path, (when, when))
    _fresh_start(monkeypatch)
    assert _in_process(capsys, "report", str(run))[0] == 0
    assert _in_process(capsys, "run", str(CONFIG), "--out", str(run), *SMALL, "--force")[0] == 0
    kept = sorted([f".run.tmp-{gone}-j1k2l3m4", f".run.tmp-{os.getppid()}-g7h8i9j0", f".notes.old-{gone}",
                   f".vimrc.tmp-{gone}"])
    assert sorted(p.name for p in made if p.exists()) == kept
    assert _hidden(run) == []
