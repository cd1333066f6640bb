"""Execute the notebooks headless with small settings (their parameter cells are replaced)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")


def run_notebook(name, parameters):
    nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "each notebook has exactly one cell tagged 'parameters'"
    params[0].source = parameters
    os.environ.setdefault("MPLBACKEND", "Agg")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": NOTEBOOKS}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    return outputs


def text_of(outputs):
    return "".join(o.get("text", "") for o in outputs)


def test_jem_mnist_notebook(tmp_path):
    outputs = run_notebook(
        "jem_mnist.ipynb",
        f"SUBSET = 256\nEPOCHS = 1\nLANGEVIN_STEPS = 2\nSAMPLE_STEPS = 4\n"
        f"OUT_DIR = {str(tmp_path)!r}\nSEED = 0\n",
    )
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert "test accuracy" in text_of(outputs)
    assert os.path.isfile(tmp_path / "samples.png") and os.path.isfile(tmp_path / "chain.png")


@pytest.mark.slow  # the search itself: training/test_tuning.py
def test_tuning_notebook(tmp_path):
    outputs = run_notebook(
        "tuning.ipynb",
        f"SUBSET = 256\nEPOCHS = 1\nMAX_TRIALS = 2\nSAMPLES_PER_CLASS = 2\nSCORE_STEPS = 3\n"
        f"OUT_DIR = {str(tmp_path)!r}\nSEED = 0\n",
    )
    assert "python train.py --langevin_steps" in text_of(outputs)
    assert os.path.isfile(tmp_path / "best_hyperparameters.json")


def test_savedmodel_notebook(tmp_path):
    import keras

    from keras_ebm import JEM, LangevinSampler, export, get_network

    model = JEM(get_network("mlp", num_outputs=10, hidden_units=(16,)), buffer_size=10,
                sampler=LangevinSampler(steps=1), seed=0)
    model.compile(keras.optimizers.Adam(1e-3))
    export.export_model(model, str(tmp_path / "export"))
    outputs = run_notebook(
        "savedmodel.ipynb", f"EXPORT_DIR = {str(tmp_path / 'export')!r}\nSTEPS = 3\nNUM_TEST = 50\n"
    )
    text = text_of(outputs)
    assert "accuracy on 50 test digits" in text
    assert text.count("AUROC") == 3
    assert any("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.slow  # its parts: data/test_toy.py, samplers/test_mcmc.py
def test_toy_densities_notebook(tmp_path):
    outputs = run_notebook(
        "toy_densities.ipynb",
        f"TRAIN_STEPS = 60\nTRAIN_STEPS_2D = 30\nDENSITIES_2D = ['two_moons']\n"
        f"NUM_PARTICLES = 200\nOUT_DIR = {str(tmp_path)!r}\nSEED = 0\n",
    )
    text = text_of(outputs)
    assert "TV(p_theta, p): untrained" in text and "decaying step 1 / (k + 1): TV" in text
    assert "two_moons: TV(p_theta, p)" in text and "HMC on two_moons: acceptance" in text
    assert os.path.isfile(tmp_path / "final_landscape.png")
    assert any("image/png" in o.get("data", {}) for o in outputs)
