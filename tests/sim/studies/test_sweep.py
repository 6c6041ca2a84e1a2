"""`dcmarket sweep` and `dcmarket results`: the runs a sweep file means, the same table however
the runs are executed (in process, on a pool, on a Dask LocalCluster, killed and resumed),
failures recorded, and queries against a hand computation."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from sim.cli import main
from sim.config.sweep import SweepConfig
from sim.studies.sweep import plan_runs, run_sweep
from tests.conftest import write_toml

REPO = Path(__file__).resolve().parents[3]
BASE = REPO / "experiments" / "paper_4bus_additive.toml"


def _sweep(folder: Path, data: dict, name: str = "sweep.toml") -> Path:
    return write_toml(folder, {"base": os.path.relpath(BASE, folder), **data}, name)


def test_parameter_sets_are_grid_times_points_times_sample_then_seeds():
    sweep = SweepConfig.model_validate({
        "base": "x.toml", "seeds": {"count": 2, "start": 5},
        "grid": {"auction.increment": [1, 2], "auction.max_rounds": [50]},
        "points": [{"mechanism.kind": "saa"}, {"mechanism.kind": "clock"}],
    })
    specs = plan_runs(sweep)
    assert len(specs) == 2 * 2 * 2
    assert [s.run for s in specs[:3]] == ["run-0001", "run-0002", "run-0003"]
    assert [s.seed for s in specs] == [5, 6] * 4
    assert specs[0].parameters == {"auction.increment": 1, "auction.max_rounds": 50, "mechanism.kind": "saa"}
    assert specs[2].parameters["mechanism.kind"] == "clock" and specs[4].parameters["auction.increment"] == 2
    assert sweep.swept_keys() == ["auction.increment", "auction.max_rounds", "mechanism.kind"]


def test_a_random_sample_is_seeded_and_each_parameter_draws_on_its_own():
    one = {"base": "x.toml", "sample": {"count": 50, "seed": 3, "auction.increment": {"uniform": [0.5, 5.0]}}}
    two = {"base": "x.toml", "sample": {"count": 50, "seed": 3, "auction.increment": {"uniform": [0.5, 5.0]},
                                        "auction.max_rounds": {"integers": [10, 20]}}}
    first = [s["auction.increment"] for s in SweepConfig.model_validate(one).parameter_sets()]
    second = SweepConfig.model_validate(two).parameter_sets()
    # A parameter whose name sorts first moves nothing either: each stream is seeded by its name.
    three = {"base": "x.toml", "sample": {**one["sample"], "aaa.first": {"uniform": [0.0, 1.0]}}}
    assert first == [s["auction.increment"] for s in SweepConfig.model_validate(three).parameter_sets()]
    assert first == [s["auction.increment"] for s in second]  # adding a parameter moves nothing
    assert all(0.5 <= x <= 5.0 for x in first) and len(set(first)) == 50
    assert {s["auction.max_rounds"] for s in second} <= set(range(10, 21))


@pytest.mark.parametrize("data, message", [
    ({"grid": {"seed": [1, 2]}}, "seed: sweep seeds with `seeds`"),
    ({"grid": {"auction.increment": []}}, "give at least one value"),
    ({"seeds": [1, 1]}, "distinct non-negative seeds"),
    ({"sample": {"count": 3, "x": {"normal": [0, 1]}}}, "give one of uniform, integers, choice"),
    ({"sample": {"count": 3, "x": {"uniform": [2, 1]}}}, "low <= high"),
    ({"grids": {}}, "unknown field 'grids'; did you mean 'grid'?"),
    ({"grid": {"seed ": [5, 6]}}, "without spaces around its parts"),
    ({"grid": {"bidders": ["x.csv"]}}, "bidders: the results table has a column of that name"),
    ({"grid": {"auction.increment": [1.0, float("inf")]}}, "auction.increment: inf is not a finite number"),
    ({"grid": {"auction.increment": [1]}, "points": [{"auction .increment": 2}]}, "without spaces"),
    # Ceilings: 10**30 crashed the table after every run; a sweep's runs are counted before listed.
    ({"grid": {"auction.increment": [1, 10**30]}}, "grid: auction.increment: 1.000e30 does not fit the results table"),
    ({"points": [{"auction.max_rounds": -(10**20)}]}, "points: auction.max_rounds: -1.000e20 does not fit"),
    ({"seeds": [2**63]}, "seeds: seed 9223372036854775808 is above 9223372036854775807"),
    ({"seeds": {"count": 3, "start": 2**63 - 2}}, "seeds: start + count - 1 must be at most 9223372036854775807"),
    ({"grid": {f"auction.x{i}": list(range(10)) for i in range(8)}},
     "the sweep has 100,000,000 runs (parameter sets times seeds); at most 10,000,000"),
    ({"sample": {"count": 3, "auction.increment": {"uniform": [-1e308, 1e308]}}}, "high - low overflows"),
    ({"sample": {"count": 3, "auction.max_rounds": {"integers": [1, 10**20]}}}, "low and high must fit the results table"),
    ({"grid": {"auction.increment": [1]}, "points": [{"auction.increment": 2}]}, None),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, capsys, data, message):
    path = _sweep(tmp_path, data)
    if message is None:  # the same path in the grid and a point: the point's value wins, no error
        assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet", "--workers", "1"]) == 0
        return
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "out").exists()  # refused before anything is written


SWEEP = {"seeds": {"count": 4}, "grid": {"auction.increment": [1, 2, -1]}}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep run in this process, uninterrupted: the table every other way must reproduce."""
    folder = tmp_path_factory.mktemp("sweep")
    result = run_sweep(_sweep(folder, SWEEP), folder / "out", workers=1, quiet=True)
    assert (result.runs, result.failed) == (12, 4)
    return folder / "out"


def test_each_run_is_the_run_of_its_overrides(reference, tmp_path):
    """run-0005 is increment 2, seed 0: the same bytes as `dcmarket run --set ... --seed 0`."""
    record = json.loads((reference / "records" / "run-0005.json").read_text())
    assert record["parameters"] == {"auction.increment": 2} and record["seed"] == 0
    assert main(["run", str(BASE), "--out", str(tmp_path / "direct"), "--quiet", "--seed", "0",
                 "--set", "auction.increment=2"]) == 0
    for path in (tmp_path / "direct").iterdir():
        assert path.read_bytes() == (reference / "runs" / "run-0005" / path.name).read_bytes(), path.name


def test_the_table_has_one_row_per_run_with_failures_recorded(reference):
    table = pd.read_parquet(reference / "results.parquet")
    assert list(table["run"]) == [f"run-{i:04d}" for i in range(1, 13)]
    failed = table[table["status"] == "failed"]
    assert list(failed["auction.increment"]) == [-1] * 4
    assert all("auction.increment" in e and "\n" not in e for e in failed["error"])
    ok = table[table["status"] == "ok"]
    for _, row in ok.iterrows():
        summary = json.loads((reference / "runs" / row["run"] / "summary.json").read_text())
        assert row["welfare_usd"] == summary["welfare"]
        assert row["revenue_usd"] == pytest.approx(sum(summary["payments"].values()))
        assert row["rounds"] == summary["rounds"] and bool(row["equilibrium_holds"]) == summary["equilibrium"]["holds"]
    timings = pd.read_parquet(reference / "timings.parquet")
    assert list(timings["run"]) == list(table["run"]) and (timings["seconds"] >= 0).all()


@pytest.mark.slow
def test_a_process_pool_gives_the_same_table(reference, tmp_path):
    result = run_sweep(_sweep(tmp_path, SWEEP), tmp_path / "out", workers=2, quiet=True)
    assert result.runs == 12
    assert (tmp_path / "out" / "results.parquet").read_bytes() == (reference / "results.parquet").read_bytes()


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_same_table(reference, tmp_path, dask_cluster):
    run_sweep(_sweep(tmp_path, SWEEP), tmp_path / "out", scheduler=dask_cluster.scheduler_address, quiet=True)
    assert (tmp_path / "out" / "results.parquet").read_bytes() == (reference / "results.parquet").read_bytes()


@pytest.mark.slow
def test_a_sweep_killed_mid_way_resumes_the_missing_runs_to_the_same_table(reference, tmp_path):
    """SIGKILL the sweep's whole process group with some runs recorded and others half-written;
    the same sweep then runs only the rest, clears the half-written folders and writes the
    uninterrupted sweep's table, byte for byte. The killed sweep's workers stall from run 5 on
    (tests/sweep_crash.py), so the kill lands with exactly runs 1-4 and the 4 invalid ones recorded."""
    from tests.sweep_crash import STALL_FROM

    path = _sweep(tmp_path, SWEEP)
    out = tmp_path / "out"
    driver = "import sys; from tests.sweep_crash import stalled_sweep; sys.exit(stalled_sweep(*sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", driver, str(path), str(out)], cwd=REPO, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    invalid = 4  # increment -1: recorded as failed before any run starts
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (len(list((out / "records").glob("*.json"))) < STALL_FROM + invalid
                                           or not list((out / "runs").glob(".run-*"))):
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert len(list((out / "records").glob("*.json"))) == STALL_FROM + invalid
    assert len(list((out / "runs").glob(".run-*"))) == 1  # the stalled worker's half-written run
    assert not (out / "results.parquet").exists()
    result = run_sweep(path, out, workers=1, quiet=True)
    assert result.ran == 12 - STALL_FROM - invalid
    assert not list((out / "runs").glob(".run-*"))
    assert (out / "results.parquet").read_bytes() == (reference / "results.parquet").read_bytes()


def test_another_sweep_in_the_directory_needs_force(reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    other = _sweep(tmp_path, {**SWEEP, "seeds": [7]}, "other.toml")
    assert main(["sweep", str(other), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"holds a different sweep ({out / 'sweep.toml'} differs from {other}" in err and "choose another --out, or pass --force" in err
    # In process (--workers 1): the guard is the point here, not the executor.
    assert main(["sweep", str(other), "--out", str(out), "--quiet", "--force", "--workers", "1"]) == 1  # increment -1 fails
    assert len(pd.read_parquet(out / "results.parquet")) == 3


def test_a_sweep_whose_every_set_is_invalid_stops_at_once(tmp_path, capsys):
    path = _sweep(tmp_path, {"grid": {"auction.incremnt": [1, 2]}})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "every parameter set is invalid" in capsys.readouterr().err


def test_results_groups_match_a_hand_computation(reference, capsys):
    table = pd.read_parquet(reference / "results.parquet").merge(pd.read_parquet(reference / "timings.parquet"),
                                                                 on="run")
    assert main(["results", str(reference), "--group-by", "auction.increment", "--csv"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out)).to_dict("records")
    by_group = {int(r["auction.increment"]): r for r in rows}
    assert set(by_group) == {-1, 1, 2}
    for increment, group in table.groupby("auction.increment"):
        row = by_group[int(increment)]
        assert row["runs"] == len(group) and row["failed"] == int((group["status"] != "ok").sum())
        ok = group[group["status"] == "ok"]
        if len(ok):
            assert row["mean rounds"] == pytest.approx(ok["rounds"].mean())
            assert row["mean revenue_usd"] == pytest.approx(ok["revenue_usd"].mean())
            assert row["min efficiency"] == pytest.approx((ok["welfare_usd"] / ok["efficient_welfare_usd"]).min())
            assert row["mean seconds"] == pytest.approx(group["seconds"].mean())
    assert main(["results", str(reference), "--where", "\"auction.increment\" = 2 and seed < 2", "--csv"]) == 0
    listed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(listed["run"]) == ["run-0005", "run-0006"]


def test_results_errors_are_one_line(reference, tmp_path, capsys):
    assert main(["results", str(reference), "--where", "nosuch > 1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --where:") and "\n" not in err
    assert main(["results", str(reference), "--group-by", "nosuch"]) == 2
    assert "--group-by: no column 'nosuch'" in capsys.readouterr().err
    assert main(["results", str(tmp_path)]) == 2
    assert "no results.parquet" in capsys.readouterr().err


PNG = b"\x89PNG\r\n\x1a\n"


def test_sweep_plots_are_written_and_the_same_bytes_twice(tmp_path):
    data = {"seeds": [0, 1], "grid": {"auction.increment": [1, 2, 4]}}
    for name in ("a", "b"):
        run_sweep(_sweep(tmp_path, data), tmp_path / name, workers=1, quiet=True, plots=True)
    first = tmp_path / "a" / "plots" / "sweep_auction_increment.png"
    assert first.read_bytes().startswith(PNG)
    assert first.read_bytes() == (tmp_path / "b" / "plots" / "sweep_auction_increment.png").read_bytes()


def test_run_plots_are_written_and_the_same_bytes_twice(tmp_path):
    for name in ("a", "b"):
        assert main(["run", str(BASE), "--out", str(tmp_path / name), "--quiet", "--plots"]) == 0
    for figure in ("price_path.png", "holdings.png", "capacity_map.png"):
        content = (tmp_path / "a" / figure).read_bytes()
        assert content.startswith(PNG) and content == (tmp_path / "b" / figure).read_bytes(), figure
    # --force recognises the figures as a run's files (the run replacing them need not draw its own).
    assert main(["run", str(BASE), "--out", str(tmp_path / "a"), "--quiet", "--force"]) == 0
    assert not (tmp_path / "a" / "price_path.png").exists()


def test_mechanisms_side_by_side_with_their_own_rules(tmp_path, capsys):
    """Points give each mechanism its own rules; the sweep plot draws them as bars side by side."""
    path = tmp_path / "mechanisms.toml"
    base = os.path.relpath(REPO / "experiments" / "ieee33bw_market.toml", tmp_path)
    path.write_text(tomli_w.dumps({"base": base, "seeds": [0, 1], "points": [
        {"mechanism.kind": "saa", "auction.increment": 2}, {"mechanism.kind": "vcg"}, {"mechanism.kind": "queue"}]}))
    result = run_sweep(path, tmp_path / "out", workers=1, quiet=True, plots=True)
    assert (result.runs, result.failed) == (6, 0)
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(table["mechanism"]) == ["saa", "saa", "vcg", "vcg", "queue", "queue"]
    assert table["auction.increment"].isna().sum() == 4  # the SAA's rule, empty for the others
    assert table.loc[table["mechanism"] == "vcg", "efficiency"].tolist() == pytest.approx([1.0, 1.0])  # VCG is efficient
    assert (table.loc[table["mechanism"] == "queue", "revenue_usd"] == 0.0).all()  # the queue charges nothing
    assert (tmp_path / "out" / "plots" / "sweep_mechanism_kind.png").read_bytes().startswith(PNG)
    assert not (tmp_path / "out" / "plots" / "sweep_auction_increment.png").exists()


def test_results_plots_a_chosen_metric_against_a_parameter(reference, capsys):
    assert main(["results", str(reference), "--plot", "auction.increment", "--metric", "rounds"]) == 0
    path = reference / "plots" / "sweep_auction_increment__rounds.png"
    assert f"Plot: {path}" in capsys.readouterr().out and path.read_bytes().startswith(PNG)
    assert main(["results", str(reference), "--plot", "seed"]) == 2
    assert "'seed' is not a swept parameter; the sweep varies auction.increment" in capsys.readouterr().err
    assert main(["results", str(reference), "--plot", "auction.increment", "--metric", "closed_by"]) == 2
    assert "--metric: 'closed_by' is not a numeric column" in capsys.readouterr().err


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_run_only(tmp_path):
    """A run that kills its worker process is recorded as failed; every other run completes."""
    from sim.studies.sweep import WORKER_DIED, _on_pool
    from tests.sweep_crash import DOOMED, LightSpec, dying_run

    sweep = SweepConfig.model_validate({"base": "x.toml", "seeds": {"count": 4}, "grid": {"auction.increment": [1, 2]}})
    specs = [LightSpec(s.run, s.index, s.seed, s.parameters) for s in plan_runs(sweep)]
    task = {"base": str(BASE), "root": str(tmp_path), "shown": "base.toml"}
    records = {r["run"]: r for r in _on_pool(specs, task, 2, work=dying_run)}
    assert sorted(records) == [s.run for s in specs]  # each run once: none lost, none run twice
    assert records[DOOMED]["status"] == "failed" and records[DOOMED]["error"] == WORKER_DIED
    assert all(r["status"] == "ok" for run, r in records.items() if run != DOOMED)


def test_review_fixes_paths_types_records_and_reruns(reference, tmp_path, capsys):
    """A sweep directory whose path has a quote and glob characters; an all-failed sweep keeps
    numeric columns; a damaged record is run again; a fixed sweep file runs without --force."""

    odd = tmp_path / "it's [x]*"
    shutil.copytree(reference, odd)
    assert main(["results", str(odd), "--group-by", "auction.increment", "--csv"]) == 0
    assert "run-" not in capsys.readouterr().err
    # Every run fails at run time (the case does not exist): the table and the report still work.
    path = _sweep(tmp_path, {"seeds": [0, 1], "grid": {"network.case": ["no-such-case"]}}, "fail.toml")
    assert main(["sweep", str(path), "--out", str(tmp_path / "fail"), "--quiet", "--workers", "1"]) == 1
    table = pd.read_parquet(tmp_path / "fail" / "results.parquet")
    assert (table["status"] == "failed").all() and table["welfare_usd"].dtype.kind == "f"
    assert "/" + str(tmp_path).strip("/") not in " ".join(table["error"])  # no absolute path in the table
    assert main(["results", str(tmp_path / "fail"), "--group-by", "network.case"]) == 0
    assert main(["report", str(tmp_path / "fail")]) == 0
    # A damaged record (valid JSON, wrong shape) is dropped and its run runs again.
    again = tmp_path / "again"
    shutil.copytree(reference, again)
    (again / "records" / "run-0002.json").write_text("[]")
    (again / "results.parquet").unlink()
    result = run_sweep(_sweep(tmp_path, SWEEP, "again.toml"), again, workers=1, quiet=True, force=True)
    assert result.runs == 12
    # A sweep file fixed after being refused runs into the same --out without --force.
    bad = _sweep(tmp_path, {"grid": {"auction.incremnt": [1]}}, "typo.toml")
    assert main(["sweep", str(bad), "--out", str(tmp_path / "typo"), "--quiet"]) == 2
    bad.write_text(bad.read_text().replace("incremnt", "increment"))
    assert main(["sweep", str(bad), "--out", str(tmp_path / "typo"), "--quiet", "--workers", "1"]) == 0


def test_report_json_cannot_close_its_script_element(tmp_path):
    assert main(["run", str(BASE), "--out", str(tmp_path / "r"), "--quiet",
                 "--set", 'bidders[0].name="</script><script>alert(1)</script>"']) == 0
    assert main(["report", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    data = page.split('<script type="application/json" id="rounds-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["rounds"][0]["standings"]  # the whole JSON, not cut at the name
    assert page.count("<script") == 2  # the data and the stepper; the name is text everywhere


def test_a_sweep_file_nested_past_the_ceiling_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.toml"
    path.write_text(f'base = "{os.path.relpath(BASE, tmp_path)}"\n[grid]\n"auction.increment" = ['
                    + "[" * 3000 + "1" + "]" * 3000 + "]\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {path}: lists or tables are nested more than 32 deep" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.toml"]


@pytest.mark.parametrize("name", ["results.parquet", "timings.parquet"])
@pytest.mark.parametrize("how", ["empty", "truncated", "random", "other table"])
def test_a_damaged_table_names_itself_and_the_sweep_rebuilds_it(reference, tmp_path, capsys, name, how):
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    content = (copy / name).read_bytes()
    other = "timings.parquet" if name == "results.parquet" else "results.parquet"
    (copy / name).write_bytes({"empty": b"", "truncated": content[: len(content) // 2], "random": os.urandom(4000),
                               "other table": (copy / other).read_bytes()}[how])
    before = sorted(p.name for p in copy.iterdir())
    for command in (["results", str(copy)], ["report", str(copy)],
                    ["results", str(copy), "--plot", "auction.increment"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {copy / name}: "), err
        assert f"run the same `dcmarket sweep SWEEP.toml --out {copy}` again: it rebuilds the tables from records/" in err
        assert sorted(p.name for p in copy.iterdir()) == before
    # As the message says: the same sweep again writes the table from the records, running nothing.
    result = run_sweep(_sweep(tmp_path, SWEEP), copy, workers=1, quiet=True)
    assert result.ran == 0 and (copy / name).read_bytes() == (reference / name).read_bytes()


def test_a_damaged_copy_of_the_sweep_file_or_base_is_named(reference, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    (copy / "sweep.toml").write_bytes(os.urandom(300))
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {copy / 'sweep.toml'}: the directory's copy of the sweep file is damaged") and \
        "copy the sweep file back over it" in err and err.count("\n") == 1, err
    assert not (copy / "report.html").exists()
    path = _sweep(tmp_path, SWEEP)
    shutil.copy(path, copy / "sweep.toml")
    (copy / "base.toml").write_bytes((copy / "base.toml").read_bytes()[:50])
    assert main(["sweep", str(path), "--out", str(copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"holds a different sweep ({copy / 'base.toml'} differs from {path.parent / os.path.relpath(BASE, tmp_path)}" \
        in err and "or damaged" in err, err


def test_a_record_nested_thousands_deep_is_run_again(reference, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    (copy / "records" / "run-0003.json").write_text("[" * 100_000 + "]" * 100_000)
    result = run_sweep(_sweep(tmp_path, SWEEP), copy, workers=1, quiet=True)
    assert result.ran == 1
    assert (copy / "results.parquet").read_bytes() == (reference / "results.parquet").read_bytes()


def test_an_unknown_key_in_a_seed_range_is_named_not_the_list_branch(tmp_path, capsys):
    path = _sweep(tmp_path, {"seeds": {"count": 3, "bogus": 1}})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: seeds: unknown field 'bogus'; allowed fields: count, start" in err and "list[" not in err
    assert not (tmp_path / "out").exists()


def test_workers_and_limit_have_ceilings(reference, tmp_path, capsys):
    assert main(["sweep", str(_sweep(tmp_path, SWEEP)), "--out", str(tmp_path / "out"), "--workers", str(10**9)]) == 2
    assert "--workers: give 1 to 1024 worker processes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # DuckDB answered a huge --limit with its INT128 conversion text.
    assert main(["results", str(reference), "--limit", str(10**40)]) == 2
    err = capsys.readouterr().err
    assert err == "error: --limit: give a number of runs from 0 to 10,000,000\n", err


@pytest.mark.parametrize("address", ["garbage", "tcp://127.0.0.1:1"])
def test_a_bad_scheduler_is_refused_in_seconds_and_leaves_nothing(tmp_path, capsys, monkeypatch, address):
    """Dask waited its own 30 s for an unreachable scheduler, and the sweep directory was made
    first and left behind. The wait is cut to 1 s here: the message says the wait it used."""
    import sim.execution.cluster as cluster_module

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 1)
    started = time.monotonic()
    assert main(["sweep", str(_sweep(tmp_path, SWEEP)), "--out", str(tmp_path / "out"), "--quiet",
                 "--scheduler", address]) == 2
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: --scheduler: cannot reach a Dask scheduler at '{address}'" in err, err
    assert "the wait is 1 s at most" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.toml"]


def test_values_the_table_cannot_hold_stop_the_sweep_before_any_run(tmp_path, capsys, monkeypatch):
    """Past the sweep file's own checks (switched off here), the table's parameter columns are
    built before the first run: 10**30 crashed the sweep after every run, with no table."""
    import sim.config.sweep as sweep_config

    monkeypatch.setattr(sweep_config, "_check_value", lambda key, value: None)
    path = _sweep(tmp_path, {"grid": {"auction.max_rounds": [10, 10**30]}})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: auction.max_rounds: its values cannot be a column of results.parquet"), err
    assert not (tmp_path / "out").exists()


def test_a_sweep_with_failed_runs_writes_its_table_and_exits_1(tmp_path, capsys):
    """It exited 0; 1 says "ran, with failures" (2 stays "refused, nothing written")."""
    out = tmp_path / "out"
    assert main(["sweep", str(_sweep(tmp_path, SWEEP)), "--out", str(out), "--quiet", "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "12 runs (12 run now, 0 recorded before), 4 failed" in captured.out
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: 4 of 12 runs failed (the first, run-0009: ")
    assert f"the table records each: dcmarket results {out} --where \"status <> 'ok'\"" in captured.err
    assert (pd.read_parquet(out / "results.parquet")["status"] == "failed").sum() == 4
    # Resumed with nothing left to run, it says the same.
    assert main(["sweep", str(_sweep(tmp_path, SWEEP)), "--out", str(out), "--quiet", "--workers", "1"]) == 1


def test_a_full_disk_names_the_file_and_says_so(reference, tmp_path, capsys, monkeypatch):
    """It said "check the path and its permissions", without the path."""
    import errno

    from matplotlib.figure import Figure

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    monkeypatch.setattr(Figure, "savefig", full)
    assert main(["sweep", str(_sweep(tmp_path, SWEEP)), "--out", str(copy), "--quiet", "--plots"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {copy / 'plots' / 'sweep_auction_increment.png'}: cannot write (No space left on "
                   "device): the disk may be full, or its quota used up; free some space, or choose another --out\n")
    monkeypatch.undo()
    real = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: full() if "report" in self.name else real(self, data))
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {copy / 'report.html'}: cannot write (No space left on device): the disk may be full")
    assert not [p for p in copy.rglob("*") if ".tmp" in p.name or p.name == "report.html"]


def test_a_plan_sweep_records_each_plans_outcome(tmp_path):
    """study = "plan": each run is `dcmarket plan` of its overrides (no frontier, no figures), and the
    table holds the plan's outcome columns, equal to that run's summary.json."""
    from tests.sim.studies.test_plan import PLAN

    base = write_toml(tmp_path, {"seed": 7, "plan": {**PLAN, "dro_radius": 0.0}}, "plan.toml")
    path = write_toml(tmp_path, {"base": "plan.toml", "study": "plan", "seeds": [7],
                                 "grid": {"plan.lambda": [0.0, 1.0]}}, "sweep.toml")
    assert base.is_file()
    out = tmp_path / "out"
    result = run_sweep(path, out, quiet=True)
    assert result.failed == 0
    table = pd.read_parquet(out / "results.parquet")
    assert list(table["plan.lambda"]) == [0.0, 1.0] and "welfare_usd" not in table.columns
    for row in table.itertuples():
        summary = json.loads((out / "runs" / row.run / "summary.json").read_text())
        sample = summary["plans"]["sample"]
        assert summary["frontier"] == [] and not list((out / "runs" / row.run).glob("*.png"))
        assert row.sample_objective_usd == sample["objective_usd"] and row.sample_hubs == " ".join(sample["open_hubs"])
        assert row.sample_units == sum(sum(u.values()) for u in sample["units_by_hub"].values())
        fresh = summary["evaluation"]["sample"]["out-of-sample"]
        assert row.sample_fresh_stabilized_share == fresh["stabilized_share"]
        assert pd.isna(row.dro_objective_usd)  # radius 0: no robust plan
    # The run directory is what `dcmarket plan` writes for the same overrides and seed.
    again = tmp_path / "again"
    assert main(["plan", str(base), "--out", str(again), "--quiet", "--no-frontier", "--no-plots",
                 "--set", "plan.lambda=1.0", "--seed", "7"]) == 0
    for name in ("summary.json", "scenario_costs.csv", "plan.csv"):
        assert (again / name).read_bytes() == (out / "runs" / "run-0002" / name).read_bytes(), name


def test_a_sweep_of_an_unknown_study_is_one_line(tmp_path, capsys):
    path = _sweep(tmp_path, {"study": "auction"})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "study" in err and "choose one of run, plan" in err and len(err.strip().splitlines()) == 1
