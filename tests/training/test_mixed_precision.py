"""Compute settings: bfloat16/float16 layers with float32 scores and loss scaling for float16;
the training step compiled with XLA (--jit_compile).

CPU only here; no GPU was available to check speed or float16 numerics on one.
"""

import contextlib

import keras
import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

from keras_ebm import distribute
from keras_ebm.config import Config
from keras_ebm.models import networks
from keras_ebm.training import experiment
from keras_ebm.training.run_dir import RunError


def tiny_config(**kwargs):
    return Config(**{**dict(network="mlp", langevin_steps=2, buffer_size=64, batch_size=16,
                            chain_start="uniform",
                            epochs=4, seed=0), **kwargs})


def separable_data(n=64):
    """8x8 images whose class (0, 1, 2) is the bright third of the image."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.uniform(-1, -0.5, (n, 8, 8, 1)).astype("float32")
    for i, label in enumerate(y):
        x[i, :, label * 3:label * 3 + 2] = 0.8
    return x, y


@pytest.mark.parametrize("name, spectral_norm",
                         [(n, False) for n in networks.NETWORKS] + [("mlp", True)])
def test_networks_compute_in_bfloat16_and_return_float32_scores(name, spectral_norm):
    with distribute.precision("bfloat16"):
        network = networks.get_network(name, input_shape=(8, 8, 1), num_outputs=3,
                                       spectral_norm=spectral_norm)
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored
    hidden, head = network.layers[-2], network.layers[-1]
    assert hidden.compute_dtype == "bfloat16" and head.compute_dtype == "float32"
    assert {w.dtype for w in network.weights} == {"float32"}
    assert network(np.zeros((2, 8, 8, 1), "float32")).dtype == "float32"


def test_precision_restores_the_policy_after_an_error():
    with pytest.raises(RuntimeError):
        with distribute.precision("float16"):
            assert keras.mixed_precision.dtype_policy().name == "mixed_float16"
            raise RuntimeError
    assert keras.mixed_precision.dtype_policy().name == "float32"
    with pytest.raises(ValueError, match="mixed_precision=float8 is not one of none"):
        with distribute.precision("float8"):
            pass


def fit_losses(config, x, y):
    model = experiment.build_model(config, (8, 8, 1), 3)
    experiment.compile_model(model, config, steps_per_epoch=len(x) // config.batch_size)
    history = model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, verbose=0)
    return model, history.history


def test_jem_trains_under_mixed_bfloat16():
    x, y = separable_data()
    model, mixed = fit_losses(tiny_config(mixed_precision="bfloat16"), x, y)
    _, full = fit_losses(tiny_config(), x, y)
    assert model.network.layers[1].compute_dtype == "bfloat16"
    assert np.all(np.isfinite(mixed["loss"]))
    assert mixed["ce"][-1] < 0.5 * mixed["ce"][0]  # learns the classes
    # Same seeds and data: bfloat16 (8-bit mantissa) follows the float32 run closely.
    np.testing.assert_allclose(mixed["ce"], full["ce"], rtol=0.1)
    assert model.generate(2, steps=2).dtype == "float32"


def first_update(config, optimizer):
    """Weight change of one ``train_step`` (same seeds, batch and initial weights)."""
    x, y = separable_data(16)
    model = experiment.build_model(config, (8, 8, 1), 3)
    model.compile(optimizer)
    before = [w.numpy().copy() for w in model.network.trainable_weights]
    model.train_on_batch(x, y)
    return np.concatenate([(w.numpy() - b).ravel()
                           for w, b in zip(model.network.trainable_weights, before)])


def test_float16_uses_loss_scaling_and_matches_float32_updates():
    # Langevin steps 0: negatives straight from the (identically seeded) replay buffer.
    config = tiny_config(mixed_precision="float16", langevin_steps=0)
    compiled = experiment.compile_model(experiment.build_model(config, (8, 8, 1), 3), config, 4)
    assert isinstance(compiled.optimizer, keras.optimizers.LossScaleOptimizer)
    mixed = first_update(config, keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    full = first_update(tiny_config(langevin_steps=0), keras.optimizers.SGD(0.1))
    # Without optimizer.scale_loss in train_step the float16 update is 2**15 times too small.
    assert np.linalg.norm(mixed) == pytest.approx(np.linalg.norm(full), rel=0.01)
    np.testing.assert_allclose(mixed, full, atol=0.01 * np.abs(full).max())


@contextlib.contextmanager
def op_determinism(on):
    """Op determinism is process-wide (other tests turn it on) and Keras declines XLA under it."""
    was_on = tf_config.is_op_determinism_enabled()
    (tf_config.enable_op_determinism if on else tf_config.disable_op_determinism)()
    try:
        yield
    finally:
        (tf_config.enable_op_determinism if was_on else tf_config.disable_op_determinism)()


@pytest.fixture
def without_op_determinism():
    with op_determinism(False):
        yield


@pytest.mark.usefixtures("without_op_determinism")
@pytest.mark.parametrize("model_kind, chain_start",
                         [("jem", "class_gaussian"), ("jem", "uniform"), ("ebm", "uniform")])
def test_training_step_compiles_with_xla_and_learns(model_kind, chain_start):
    config = tiny_config(model=model_kind, chain_start=chain_start, refine_steps=0,
                         jit_compile=True)
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
    with pytest.raises(ValueError, match="--jit_compile and --deterministic exclude each other"):
        Config(jit_compile=True, deterministic=True).validate()
    config = tiny_config(jit_compile=True)
    with op_determinism(True), pytest.raises(RunError, match="Keras cannot compile this model"):
        experiment.compile_model(experiment.build_model(config, (8, 8, 1), 3), config, 4)
