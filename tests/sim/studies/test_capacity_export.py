"""`dcmarket capacity --export-pandapower` and `sim.api.pandapower_net`: the firm allocation on
the case as a pandapower net, here on a PSS/E RAW case the test writes
(tests/grid/network/raw_writer.py)."""

from __future__ import annotations

import csv
import dataclasses
import io

import pandapower as pp
import pytest

from sim import api
from sim.cli import main
from tests.grid.network import raw_writer as rw


@pytest.fixture(scope="module")
def raw_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    return rw.write_raw(folder / "ieee30x.raw", rw.rated_ieee30(), 35)


@pytest.mark.slow  # about 3.5 s: the whole command, its map included
def test_the_flag_writes_the_firm_allocation_as_a_pandapower_net(raw_case, tmp_path):
    out = tmp_path / "run"
    assert main(["capacity", str(raw_case), "--out", str(out), "--verify", "0", "--quiet", "--export-pandapower",
                 "--set", "ac.check=false", "--set", "ac.power_factor=0.9"]) == 0
    with open(out / "capacity.csv", newline="") as handle:
        firm = {int(row["bus"]): float(row["firm_mw"]) for row in csv.DictReader(handle)}
    net = pp.from_json(str(out / "allocation_pandapower.json"))
    new = net.load[net.load.name.str.startswith("new load")]
    assert sum(firm.values()) > 0
    assert dict(zip(new.bus.astype(int), new.p_mw)) == pytest.approx({b: mw for b, mw in firm.items() if mw > 0})
    assert (new.q_mvar / new.p_mw).to_numpy() == pytest.approx((1 - 0.9 ** 2) ** 0.5 / 0.9)
    pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi", enforce_q_lims=True, numba=False)
    assert net.converged


def test_the_api_gives_the_same_net(raw_case):
    config = {"network": {"case": str(raw_case), "demand_mw": 40.0}, "load": {"scenarios": 200},
              "products": {"risk_levels": [0.05]}, "ac": {"check": False}}
    result = api.run("capacity", config, verify=0, export_pandapower=True)
    exported = result.files["allocation_pandapower.json"]
    # Without the file (a run without the option), the function builds the same net from the study.
    without = dataclasses.replace(result, files={k: v for k, v in result.files.items() if k != "allocation_pandapower.json"})
    assert pp.to_json(api.pandapower_net(without)) == pp.to_json(pp.from_json(io.StringIO(exported.decode())))


def test_a_case_without_ac_data_is_refused_before_the_study(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["capacity", "ieee33bw", "--out", str(out), "--quiet", "--export-pandapower"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the pandapower export needs the full case data" in err
    assert not out.exists()
