"""Contract tests run on every energy network."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm.models import networks

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


@pytest.mark.parametrize("kernel_size, channels, size", [(5, 1, 28), (3, 2, 14), (4, 1, 8),
                                                         (1, 3, 6), (7, 1, 32), (3, 1, 7)])
def test_space_to_depth_conv_equals_conv2d(kernel_size, channels, size):
    # Same weights, same outputs and same gradients (inputs and kernel) as Conv2D;
    # the odd size (7) takes the Conv2D fallback.
    plain = keras.layers.Conv2D(4, kernel_size, strides=2, padding="same")
    fast = networks.SpaceToDepthConv2D(4, kernel_size, strides=2, padding="same")
    x = tf.random.stateless_uniform([3, size, size, channels], seed=[1, 2], minval=-1, maxval=1)
    plain.build(x.shape)
    fast.build(x.shape)
    kernel = tf.random.stateless_normal(plain.kernel.shape, seed=[3, 4])
    for layer in (plain, fast):
        layer.set_weights([kernel.numpy(), np.arange(4, dtype="float32")])

    def outputs_and_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        return [y, *tape.gradient(loss, [x, layer.kernel])]

    for a, b in zip(outputs_and_grads(plain), outputs_and_grads(fast)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_space_to_depth_conv_input_gradient_takes_the_block_route():
    # Forward as Conv2D; the input gradient through the 2x2 blocks (DepthToSpace).
    layer = networks.SpaceToDepthConv2D(4, 5, strides=2, padding="same")
    layer.build((None, 28, 28, 1))

    def op_types(fn, x):
        return {op.type for op in tf.function(fn).get_concrete_function(x).graph.get_operations()}

    def input_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, x)

    even, odd = tf.TensorSpec([2, 28, 28, 1]), tf.TensorSpec([2, 27, 27, 1])
    assert "SpaceToDepth" not in op_types(layer, even)
    assert "DepthToSpace" in op_types(input_gradient, even)
    assert "DepthToSpace" not in op_types(input_gradient, odd)


def test_space_to_depth_first_layer_keeps_the_network_function():
    x = tf.random.stateless_uniform([4, 28, 28, 1], seed=[7, 8], minval=-1, maxval=1)
    keras.utils.set_random_seed(0)
    fast = networks.get_network("cnn_wide")
    keras.utils.set_random_seed(0)
    plain = networks.cnn_wide(space_to_depth=False)
    assert isinstance(fast.layers[1], networks.SpaceToDepthConv2D)
    assert type(plain.layers[1]) is keras.layers.Conv2D
    plain.set_weights(fast.get_weights())
    np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
