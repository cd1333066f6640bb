"""Contract tests run on every energy network."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import networks

SMALL = {"resnet": dict(filters=(8, 16), blocks_per_stage=1)}


@pytest.fixture(params=[(name, sn) for name in networks.NETWORKS for sn in (False, True)],
                ids=lambda p: f"{p[0]}{'-sn' if p[1] else ''}")
def network(request):
    name, spectral_norm = request.param
    keras.utils.set_random_seed(0)
    return networks.get_network(name, input_shape=(28, 28, 1), num_outputs=10,
                                spectral_norm=spectral_norm, **SMALL.get(name, {}))


def test_output_shape(network):
    assert network(tf.zeros([3, 28, 28, 1])).shape == (3, 10)


def test_input_gradient_matches_finite_differences(network):
    # Swish networks are smooth: the energy's input gradient is checked in float64.
    x = tf.random.stateless_uniform([2, 28, 28, 1], seed=[0, 1], minval=-1, maxval=1)
    energy = lambda z: -tf.reduce_logsumexp(network(z), axis=-1)  # noqa: E731
    with tf.GradientTape() as tape:
        tape.watch(x)
        e = tf.reduce_sum(energy(x))
    grad = tape.gradient(e, x).numpy().astype(np.float64)
    direction = tf.random.stateless_normal(x.shape, seed=[2, 3])
    eps = 1e-2
    fd = (tf.reduce_sum(energy(x + eps * direction)) - tf.reduce_sum(energy(x - eps * direction)))
    fd = fd.numpy() / (2 * eps)
    assert np.sum(grad * direction.numpy()) == pytest.approx(fd, rel=2e-2, abs=1e-4)


def test_save_load_gives_identical_outputs(network, tmp_path):
    path = str(tmp_path / "net.keras")
    network.save(path)
    restored = keras.saving.load_model(path)
    x = tf.random.stateless_uniform([4, 28, 28, 1], seed=[5, 6], minval=-1, maxval=1)
    np.testing.assert_array_equal(network(x).numpy(), restored(x).numpy())


def test_one_output_head_for_the_unconditional_ebm():
    net = networks.get_network("cnn", num_outputs=1)
    assert net(tf.zeros([2, 28, 28, 1])).shape == (2, 1)


def test_unknown_network_name():
    with pytest.raises(ValueError, match="Unknown network 'vgg'.*mlp, cnn"):
        networks.get_network("vgg")
