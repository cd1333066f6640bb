"""--jit_compile: the JEM and EBM training steps compiled with XLA."""

import numpy as np
import pytest

from keras_ebm.config import Config
from keras_ebm.training import experiment


def separable_data(n=64):
    """8x8 images whose class (0, 1, 2) is the bright third of the image."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.uniform(-1, -0.5, (n, 8, 8, 1)).astype("float32")
    for i, label in enumerate(y):
        x[i, :, label * 3:label * 3 + 2] = 0.8
    return x, y


@pytest.mark.parametrize("model_kind, chain_start",
                         [("jem", "class_gaussian"), ("jem", "uniform"), ("ebm", "uniform")])
def test_training_step_compiles_with_xla_and_learns(model_kind, chain_start):
    config = Config(model=model_kind, network="mlp", langevin_steps=2, buffer_size=64,
                    batch_size=16, chain_start=chain_start, refine_steps=0,
                    epochs=4, seed=0, jit_compile=True)
    config.validate()
    x, y = separable_data()
    model = experiment.build_model(config, (8, 8, 1), 3)
    if chain_start == "class_gaussian":
        model.fit_chain_start(x, y)
    experiment.compile_model(model, config, steps_per_epoch=4)
    assert model.jit_compile
    history = model.fit(x, y if model_kind == "jem" else None, batch_size=16, epochs=4,
                        verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    if model_kind == "jem":
        assert history["ce"][-1] < 0.5 * history["ce"][0]  # learns the classes


def test_jit_compile_is_refused_where_it_does_not_apply():
    with pytest.raises(ValueError, match="--jit_compile compiles the JEM and EBM"):
        Config(model="rbm", jit_compile=True).validate()
