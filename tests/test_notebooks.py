"""Execute the notebooks headless with small settings (their parameter cells are replaced)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")

SMALL = {
    "jem_mnist.ipynb": "SUBSET = 256\nEPOCHS = 1\nLANGEVIN_STEPS = 2\nSAMPLE_STEPS = 4\n"
                       "OUT_DIR = {out!r}\nSEED = 0\n",
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, tmp_path):
    nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "each notebook has exactly one cell tagged 'parameters'"
    params[0].source = SMALL[name].format(out=str(tmp_path))
    os.environ.setdefault("MPLBACKEND", "Agg")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": NOTEBOOKS}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("test accuracy" in o.get("text", "") for o in outputs)
    assert os.path.isfile(tmp_path / "samples.png") and os.path.isfile(tmp_path / "chain.png")
