"""Energy networks: plain functional ``keras.Model``s that return scores ``f(x)``.

A network returns ``num_outputs`` unnormalised scores. For a classifier-EBM
(JEM) these are the class logits and the energy is ``-logsumexp(f(x))``; for
an unconditional EBM ``num_outputs=1`` and the energy is ``-f(x)``.
Swish activations keep the input gradients smooth for Langevin sampling.
"""

import keras
import tensorflow as tf
from keras import layers

from keras_ebm.config import NETWORKS


def _dense(units, spectral_norm, **kwargs):
    layer = layers.Dense(units, **kwargs)
    if spectral_norm:
        return layers.SpectralNormalization(layer, dtype=layer.dtype_policy)
    return layer


def _scores(units, spectral_norm):
    """The output layer: float32 under mixed precision, so energies and their
    input gradients keep full precision."""
    return _dense(units, spectral_norm, dtype="float32")


@keras.saving.register_keras_serializable(package="keras_ebm")
class SpaceToDepthConv2D(layers.Conv2D):
    """``Conv2D`` (stride 2, ``"same"`` padding) whose *input gradient* is computed
    as a stride-1 convolution over 2x2 space-to-depth blocks of the input.

    The forward pass and the kernel gradient are ``Conv2D``'s; only the input
    gradient, which every Langevin step needs, takes the block route, because
    TensorFlow's CPU kernels are slow at the input gradient of a strided layer
    on thin inputs, e.g. the first 5x5 layer on 1-channel images
    (benchmarks/RESULTS.md, "Sampler and training speed: oneDNN kernels and the
    first layer's input gradient"). Same weights, config and gradients (to float rounding) as
    ``Conv2D``. Other shapes (odd sizes, other strides) are plain ``Conv2D``.
    """

    @staticmethod
    def _blocks_plan(kernel_size):
        """For one axis: zero rows to add to the kernel (before, after), the
        block kernel size and the block padding (before, after)."""
        pad_before = max(kernel_size - 2, 0) // 2  # "same" padding, stride 2, even size
        extra = pad_before % 2  # align the receptive field to a block
        blocks = (kernel_size + extra + 1) // 2
        before = (pad_before + extra) // 2
        return (extra, 2 * blocks - kernel_size - extra), blocks, (before, blocks - 1 - before)

    def _uses_blocks(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        return (tuple(self.strides) == (2, 2) and self.padding == "same"
                and self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and height is not None and width is not None
                and not height % 2 and not width % 2)

    def _input_gradient(self, upstream, inputs, kernel):
        """d outputs / d inputs as the transpose of the stride-1 block convolution."""
        kernel_h, kernel_w, channels, filters = kernel.shape
        grow_h, blocks_h, pad_h = self._blocks_plan(kernel_h)
        grow_w, blocks_w, pad_w = self._blocks_plan(kernel_w)
        kernel = tf.pad(kernel, [grow_h, grow_w, [0, 0], [0, 0]])
        kernel = tf.reshape(kernel, [blocks_h, 2, blocks_w, 2, channels, filters])
        kernel = tf.reshape(tf.transpose(kernel, [0, 2, 1, 3, 4, 5]),
                            [blocks_h, blocks_w, 4 * channels, filters])
        shape = tf.shape(inputs)
        blocks_shape = tf.stack([shape[0], shape[1] // 2, shape[2] // 2, 4 * channels])
        blocks = tf.nn.conv2d_transpose(upstream, kernel, blocks_shape, 1,
                                        [[0, 0], list(pad_h), list(pad_w), [0, 0]])
        return tf.nn.depth_to_space(blocks, 2)

    def convolution_op(self, inputs, kernel):
        if not self._uses_blocks(inputs):
            return super().convolution_op(inputs, kernel)
        plain = super().convolution_op

        @tf.custom_gradient
        def convolution(inputs, kernel):
            def gradient(upstream):
                kernel_gradient = tf.raw_ops.Conv2DBackpropFilter(
                    input=inputs, filter_sizes=tf.shape(kernel), out_backprop=upstream,
                    strides=[1, 2, 2, 1], padding="SAME")
                return self._input_gradient(upstream, inputs, kernel), kernel_gradient

            return plain(inputs, kernel), gradient

        return convolution(inputs, tf.convert_to_tensor(kernel))


def _conv(filters, kernel_size, strides, spectral_norm, space_to_depth=False, **kwargs):
    conv = SpaceToDepthConv2D if space_to_depth else layers.Conv2D
    layer = conv(filters, kernel_size, strides=strides, padding="same", **kwargs)
    return layers.SpectralNormalization(layer) if spectral_norm else layer


def mlp(input_shape=(28, 28, 1), num_outputs=10, hidden_units=(512, 256), spectral_norm=False):
    """The JEM-lite seed MLP: flattened image in, ``num_outputs`` scores out."""
    inputs = keras.Input(input_shape)
    x = layers.Flatten()(inputs)
    for units in hidden_units:
        x = _dense(units, spectral_norm, activation="swish")(x)
    outputs = _scores(num_outputs, spectral_norm)(x)
    return keras.Model(inputs, outputs, name="mlp")


def cnn(input_shape=(28, 28, 1), num_outputs=10, filters=(16, 32, 64, 64), dense_units=64,
        spectral_norm=False, space_to_depth=True):
    """The Generative Deep Learning / UvA swish CNN: four strided convolutions.

    The defaults are the book's 16/32/64/64 channels; ``filters`` widens it.
    ``space_to_depth`` makes the first layer a :class:`SpaceToDepthConv2D`
    (same results, a faster input gradient on CPU).
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for i, f in enumerate(filters):
        x = _conv(f, 5 if i == 0 else 3, 2, spectral_norm, activation="swish",
                  space_to_depth=space_to_depth and i == 0)(x)
    x = layers.Flatten()(x)
    x = _dense(dense_units, spectral_norm, activation="swish")(x)
    outputs = _scores(num_outputs, spectral_norm)(x)
    return keras.Model(inputs, outputs, name="cnn")


def cnn_wide(input_shape=(28, 28, 1), num_outputs=10, spectral_norm=False, space_to_depth=True):
    """The book CNN with 32/64/64/64 channels and 128 dense units: ~1.5x the
    sampling cost, and the accuracy a JEM on MNIST needs."""
    model = cnn(input_shape, num_outputs, filters=(32, 64, 64, 64), dense_units=128,
                spectral_norm=spectral_norm, space_to_depth=space_to_depth)
    model.name = "cnn_wide"
    return model


def resnet(input_shape=(28, 28, 1), num_outputs=10, filters=(16, 32, 64), blocks_per_stage=1,
           spectral_norm=False):
    """A small pre-activation residual CNN (no batch norm, which breaks EBM sampling).

    One stem convolution, then per stage ``blocks_per_stage`` residual blocks
    followed by a strided downsampling convolution, global average pooling and
    a linear head.
    """
    inputs = keras.Input(input_shape)
    x = _conv(filters[0], 3, 1, spectral_norm)(inputs)
    for stage, f in enumerate(filters):
        for _ in range(blocks_per_stage):
            h = layers.Activation("swish")(x)
            h = _conv(f, 3, 1, spectral_norm)(h)
            h = layers.Activation("swish")(h)
            h = _conv(f, 3, 1, spectral_norm)(h)
            x = layers.Add()([x, h])
        if stage + 1 < len(filters):
            x = layers.Activation("swish")(x)
            x = _conv(filters[stage + 1], 3, 2, spectral_norm)(x)
    x = layers.Activation("swish")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = _scores(num_outputs, spectral_norm)(x)
    return keras.Model(inputs, outputs, name="resnet")


def get_network(name, input_shape=(28, 28, 1), num_outputs=10, spectral_norm=False, **kwargs):
    """Build a network by name.

    Args:
        name: one of ``NETWORKS``: ``"mlp"``, ``"cnn"``, ``"cnn_wide"`` or ``"resnet"``.
        input_shape: shape of one input (an image ``(H, W, C)``, or ``(dim,)`` for points).
        num_outputs: scores per input (classes for a JEM, 1 for an EBM's energy).
        spectral_norm: wrap the weight layers in spectral normalisation.
        **kwargs: passed to the builder of that name (e.g. ``hidden_units`` of
            :func:`mlp`, ``filters`` and ``dense_units`` of :func:`cnn`).
    """
    builders = {"mlp": mlp, "cnn": cnn, "cnn_wide": cnn_wide, "resnet": resnet}
    if name not in builders:
        raise ValueError(f"Unknown network {name!r}; choose one of {', '.join(NETWORKS)}.")
    return builders[name](
        input_shape=tuple(input_shape), num_outputs=num_outputs, spectral_norm=spectral_norm,
        **kwargs,
    )
