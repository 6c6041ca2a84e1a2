"""The notebooks in experiments/notebooks/ are stored without outputs, and each runs from top to
bottom without an error on a kernel of this interpreter, in an empty working folder, printing the
numbers the docs give."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "experiments" / "notebooks"
STORED = sorted(NOTEBOOKS.glob("*.ipynb"))

# What each notebook must print, measured with it (the capacities are those of docs/studies/capacity.md, whose
# risk check draws 100,000 fresh scenarios where the notebook draws 20,000).
PRINTED = {
    "capacity_ieee118.ipynb": [
        "IEEE 118: 297.4 MW firm and 1,036.2 MW flexible at 5 % over 99 buses",  # after the AC correction
        "flexible, promised 5%: worst realised interruption 3.55%",
        "verdicts: {'within': 23}",  # the corrected tiers keep the linear study's risk
    ],
    "population_auction.ipynb": [
        "12 bidders, 8 products, 5 rounds with bids",
        "equilibrium under the increment's allowance: True",
        "closed after 6 rounds; same outcome as api.run: True",
    ],
}


def test_the_notebooks_are_the_ones_tested():
    assert [path.name for path in STORED] == sorted(PRINTED)


@pytest.mark.parametrize("path", STORED, ids=[path.name for path in STORED])
def test_a_stored_notebook_has_no_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} hold outputs; clear them before committing (Clear All Outputs)"


def _kernel(folder: Path):
    """A kernel manager whose only kernel is ipykernel on this interpreter, so the notebooks run
    on the virtualenv under test whatever kernels the user has installed."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec = folder / "kernels" / "dcmarket-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dcmarket tests", "language": "python"}))
    return KernelManager(kernel_name="dcmarket-test",
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder / "kernels")]))


@pytest.mark.parametrize("path", STORED, ids=[path.name for path in STORED])
def test_a_notebook_runs_and_prints_its_numbers(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    kernel = _kernel(tmp_path)
    client = NotebookClient(notebook, km=kernel, timeout=600, resources={"metadata": {"path": str(work)}})
    # This checkout's packages first, and the kernel's own plotting backend.
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    try:
        client.execute(env={**env, "PYTHONPATH": str(REPO)})  # a cell that raises fails here, with its traceback
    finally:  # nbclient leaves a kernel it was handed running, and its client polling it
        if client.kc is not None:
            client.kc.stop_channels()
        if kernel.has_kernel:
            kernel.shutdown_kernel(now=True)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    for line in PRINTED[path.name]:
        assert line in printed
    assert any("image/png" in output.get("data", {}) for output in outputs)  # the map, the price paths
    assert not any(output.output_type == "error" for output in outputs)
