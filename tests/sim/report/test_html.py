"""`dcmarket report` and `dcmarket log` on a run directory whose files were damaged since it was
written (emptied, cut short, overwritten with random bytes): one line naming the file and how
to rebuild it, exit code 2, and no report.html."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sim.cli import main

BASE = Path(__file__).resolve().parents[3] / "experiments" / "paper_4bus_additive.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["run", str(BASE), "--out", str(out), "--quiet", "--plots", "--set", "load.scenarios=200"]) == 0
    return out


def damage(path: Path, how: str) -> None:
    content = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": content[: len(content) * 2 // 3].rstrip(b"\n"),
                      "random": os.urandom(3000)}[how])


@pytest.mark.parametrize("name, hows, commands", [
    ("rounds.csv", ("empty", "truncated", "random"), ("log", "report")),
    ("bids.csv", ("truncated", "random"), ("log",)),
    ("summary.json", ("empty", "truncated", "random"), ("log", "report")),
    ("config.toml", ("random",), ("report",)),
    ("price_path.png", ("empty", "truncated", "random"), ("report",)),
    ("capacity_map.png", ("truncated",), ("report",)),
])
def test_a_damaged_file_in_a_run_directory_is_named(run_dir, tmp_path, capsys, name, hows, commands):
    for how in hows:
        for command in commands:
            copy = tmp_path / f"{how}-{command}"
            shutil.copytree(run_dir, copy)
            damage(copy / name, how)
            before = sorted(p.name for p in copy.iterdir())
            assert main([command, str(copy)]) == 2, (how, command)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith(f"error: {copy / name}"), (how, command, err)
            assert "run its study again with --force to rebuild it" in err and "Traceback" not in err
            assert sorted(p.name for p in copy.iterdir()) == before  # no report.html, no temporary


def test_a_summary_nested_thousands_deep_is_named(run_dir, tmp_path, capsys):
    copy = tmp_path / "deep"
    shutil.copytree(run_dir, copy)
    (copy / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["report", str(copy)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {copy / 'summary.json'}: not valid JSON")
