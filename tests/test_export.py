"""The exported SavedModel, loaded in a fresh process that cannot import keras_ebm."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import export
from keras_ebm.cli import export as export_cli
from keras_ebm.models import networks
from keras_ebm.models.ebm import EBM, JEM
from keras_ebm.samplers.langevin import LangevinSampler

LOADER = textwrap.dedent("""
    import json, sys
    sys.modules["keras_ebm"] = None  # a process without the package: importing it fails
    import numpy as np
    import tensorflow as tf
    export_dir, images_path, out_path = sys.argv[1:]
    loaded = tf.saved_model.load(export_dir)
    images = np.load(images_path)
    out = {"energy": loaded.energy(images).numpy()}
    for seed in (1, 1, 2):
        out.setdefault(f"sample_{seed}", []).append(
            loaded.sample(num_samples=tf.constant(4), steps=tf.constant(30), seed=tf.constant(seed)).numpy())
    if hasattr(loaded, "classify"):
        out["logits"] = loaded.classify(images).numpy()
        labels = tf.constant([0, 3, 7, 9], tf.int32)
        cond = loaded.sample_class(labels=labels, steps=tf.constant(60), seed=tf.constant(5)).numpy()
        out["sample_class"] = cond
        out["sample_class_pred"] = loaded.classify(cond).numpy().argmax(-1)
    np.savez(out_path, **{k: np.asarray(v) for k, v in out.items()})
""")


def trained(model):
    model.compile(keras.optimizers.Adam(1e-3))
    x = tf.random.stateless_uniform([16, 28, 28, 1], seed=[0, 1], minval=-1, maxval=1)
    model.fit(x, tf.range(16) % 10, batch_size=8, epochs=1, verbose=0)
    return model


def load_in_clean_process(export_dir, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    script = tmp_path / "loader.py"
    script.write_text(LOADER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, str(script), str(export_dir), str(tmp_path / "images.npy"),
         str(tmp_path / "out.npz")], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "keras_ebm" not in result.stderr
    return dict(np.load(tmp_path / "out.npz"))


@pytest.mark.parametrize("pad", [0, 2])
def test_jem_export_matches_the_model(tmp_path, pad):
    keras.utils.set_random_seed(0)
    size = 28 + 2 * pad
    model = JEM(networks.get_network("cnn", input_shape=(size, size, 1), num_outputs=10),
                sampler=LangevinSampler(steps=5), buffer_size=50, seed=0)
    if pad:
        model.compile(keras.optimizers.Adam(1e-3))
    else:
        model = trained(model)
    export_dir = tmp_path / "export"
    export.export_model(model, str(export_dir), pad=pad)
    images = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype("float32")
    out = load_in_clean_process(export_dir, images, tmp_path)

    internal = images * 2 - 1
    if pad:
        internal = np.pad(internal, [(0, 0), (pad, pad), (pad, pad), (0, 0)], constant_values=-1)
    np.testing.assert_allclose(out["energy"], model.energy(internal).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["logits"], model(internal).numpy(), rtol=1e-5, atol=1e-5)
    first, again = out["sample_1"]
    assert first.shape == (4, 28, 28, 1) and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - out["sample_2"][0]).max() > 0
    # Class-conditional samples descend -f(x)[y]: the model itself reads them as y.
    assert out["sample_class"].shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(out["sample_class_pred"], [0, 3, 7, 9])


def test_export_samples_exactly_like_generate_with_fitted_starts_and_refinement(tmp_path):
    keras.utils.set_random_seed(0)
    model = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(16,)),
                sampler=LangevinSampler(steps=5), buffer_size=50, seed=0,
                chain_start="class_gaussian", start_rank=3, refine_steps=4)
    rng = np.random.default_rng(0)
    model.fit_chain_start(rng.uniform(-1, 1, (100, 28, 28, 1)), np.arange(100) % 10)
    export_dir = tmp_path / "export"
    export.export_model(model, str(export_dir))
    images = rng.uniform(0, 1, (2, 28, 28, 1)).astype("float32")
    out = load_in_clean_process(export_dir, images, tmp_path)
    to_unit = lambda x: (x.numpy() + 1) / 2  # noqa: E731
    np.testing.assert_allclose(out["sample_1"][0], to_unit(model.generate(4, steps=30, seed=1)),
                               atol=1e-5)
    np.testing.assert_allclose(
        out["sample_class"], to_unit(model.generate(4, steps=60, labels=[0, 3, 7, 9], seed=5)),
        atol=1e-5)


def test_ebm_export_has_energy_and_sample_only(tmp_path):
    model = EBM(networks.get_network("mlp", num_outputs=1, hidden_units=(16,)), buffer_size=10,
                sampler=LangevinSampler(steps=2), seed=0)
    export_dir = tmp_path / "export"
    export.export_model(model, str(export_dir))
    images = np.full((3, 28, 28, 1), 0.5, np.float32)
    out = load_in_clean_process(export_dir, images, tmp_path)
    np.testing.assert_allclose(out["energy"], model.energy(images * 2 - 1).numpy(), rtol=1e-5)
    assert "logits" not in out


def test_export_cli_from_a_run_directory_and_errors(tmp_path):
    model = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(8,)), buffer_size=10,
                sampler=LangevinSampler(steps=1), seed=0)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    model.save(run_dir / "checkpoints" / "best.keras")
    (run_dir / "config.json").write_text(json.dumps({"pad": 0}))
    assert export_cli.main([str(run_dir), str(tmp_path / "out")]) == 0
    assert os.path.isfile(tmp_path / "out" / "saved_model.pb")
    # An existing output directory is refused and left as it was.
    assert export_cli.main([str(run_dir), str(tmp_path / "out")]) == 2
    assert export_cli.main([str(tmp_path / "missing"), str(tmp_path / "out2")]) == 2
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes((run_dir / "checkpoints" / "best.keras").read_bytes()[:100])
    assert export_cli.main([str(truncated), str(tmp_path / "out3")]) == 2
    assert not os.path.exists(tmp_path / "out3")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".export-")]
