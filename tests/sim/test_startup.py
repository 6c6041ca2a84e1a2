"""`dcmarket --help` and `dcmarket log` import none of the heavy libraries (their start-up is
measured in experiments/bench_startup.py; no timing is asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pyomo", "pandas", "mesa", "pydantic", "matplotlib", "scipy", "numpy", "highspy")
PROBE = """
import json, sys
from sim.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["price", "--help"], ["log", "--help"]])
def test_help_imports_no_heavy_library(args):
    assert _loaded(*args) == []


def test_log_of_a_run_imports_no_heavy_library(tmp_path):
    from sim.cli import main

    assert main(["run", str(REPO / "experiments" / "paper_4bus_additive.toml"), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    assert _loaded("log", str(tmp_path / "r")) == []
