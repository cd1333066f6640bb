"""FLOPs per Langevin step (counted by the TensorFlow profiler) and this machine's measured peaks.

    python benchmarks/roofline.py [--threads N]   # FLOPs per image-step, per-layer conv GFLOP/s, peaks

``benchmarks/bench_sampler.py`` uses these to turn image-steps/s into FLOP/s,
compare them with the peaks and draw ``benchmarks/figures/roofline.png``.
"""

import argparse
import collections
import functools
import time

from keras_ebm.models import networks  # noqa: E402  (before TensorFlow: keras_ebm sets its options)
from keras_ebm.samplers.langevin import LangevinSampler  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

INPUT_SHAPES = {"cnn": (32, 32, 1), "cnn_wide": (28, 28, 1), "mlp": (28, 28, 1), "resnet": (28, 28, 1)}


def langevin_step_flops(energy_fn, sample_shape, sampler=None):
    """FLOPs of one Langevin step of one image, by op type, counted on the pruned graph.

    The step's graph (energy, its input gradient, clip, noise, update) is traced
    for a batch of one, pruned to what the result needs (as Grappler prunes it:
    no weight gradients) and counted by ``tf.compat.v1.profiler`` (2 FLOPs per
    multiply-add). Random-number generation is not counted.
    """
    sampler = sampler or LangevinSampler()
    spec = tf.TensorSpec((1,) + tuple(sample_shape))
    step = tf.function(lambda x, noise: sampler.step(energy_fn, x, noise))
    concrete = step.get_concrete_function(spec, spec)
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(
        concrete.graph.as_graph_def(add_shapes=True), [t.op.name for t in concrete.outputs]
    )
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    per_op = {node.name: node.total_float_ops for node in profile.children}
    by_type = collections.Counter()
    for op in graph.get_operations():
        by_type[op.type] += per_op.get(op.name, 0)
    return profile.total_float_ops, dict(by_type)


def formula_flops(network):
    """2 * multiply-adds of the forward convolutions and of the dense layers (forward only)."""
    conv = dense = 0
    for layer in network.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            conv += 2 * h * w * cout * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            dense += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return conv, dense


def network_step_flops(name, num_outputs=10):
    """FLOPs per Langevin image-step of ``keras_ebm.models.networks.<name>`` with the JEM energy,
    by op type; the profiler's convolution and matmul counts are checked against the layer
    formula (each dense layer runs once forward and once for the input gradient).

    Counted with a plain ``Conv2D`` first layer: the shipped space-to-depth layer computes
    the same function with extra multiplications by zero, which are not useful work."""
    plain = {"space_to_depth": False} if name in ("cnn", "cnn_wide") else {}
    network = networks.get_network(name, input_shape=INPUT_SHAPES[name], num_outputs=num_outputs,
                                   **plain)
    energy = lambda x: -tf.reduce_logsumexp(network(x), axis=-1)  # noqa: E731
    total, by_type = langevin_step_flops(energy, INPUT_SHAPES[name])
    conv, dense = formula_flops(network)
    counted = (by_type.get("Conv2D", 0), by_type.get("MatMul", 0))
    if counted != (conv, 2 * dense):
        raise AssertionError(f"{name}: the profiler counts conv/matmul FLOPs {counted}, "
                             f"the layer formula {(conv, 2 * dense)}.")
    return total, by_type


def _best_rate(fn, flops, repeats):
    fn()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flops / best


def measure_peaks(repeats=5):
    """Measured float32 FLOP/s of a large matmul and a large convolution in TensorFlow."""
    n, inner = 2048, 10
    a = tf.random.normal([n, n])

    @tf.function
    def matmuls(a):
        return tf.while_loop(lambda i, x: i < inner,
                             lambda i, x: (i + 1, tf.matmul(x, a) * (1.0 / n)), (0, a))[1]

    batch, size, channels = 64, 32, 128
    images = tf.random.normal([batch, size, size, channels])
    kernel = tf.random.normal([3, 3, channels, channels]) * 0.03

    @tf.function
    def convs(x):
        return tf.while_loop(lambda i, x: i < inner,
                             lambda i, x: (i + 1, tf.nn.conv2d(x, kernel, 1, "SAME")), (0, x))[1]

    return {
        "matmul": _best_rate(lambda: matmuls(a).numpy(), inner * 2 * n**3, repeats),
        "conv2d": _best_rate(lambda: convs(images).numpy(),
                             inner * 2 * batch * size * size * channels * channels * 9, repeats),
    }


def conv_layer_rates(name, batch_size=128, repeats=5, calls=10):
    """FLOP/s of each convolution of ``networks.<name>``, timed alone at ``batch_size``:
    rows ``(description, forward, input gradient, FLOPs of one pass)``, each through the
    layer's own ``convolution_op`` (the shipped path, first for each layer); a
    :class:`SpaceToDepthConv2D` is also timed as a plain ``Conv2D``."""
    network = networks.get_network(name, input_shape=INPUT_SHAPES[name])
    rows = []
    for layer in (layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)):
        x = tf.random.normal((batch_size,) + tuple(layer.input.shape[1:]))
        kernel = tf.convert_to_tensor(layer.kernel)
        dy = tf.random.normal((batch_size,) + tuple(layer.output.shape[1:]))
        kh, kw, cin, cout = kernel.shape
        flops = 2 * batch_size * dy.shape[1] * dy.shape[2] * cout * kh * kw * cin
        description = f"{kh}x{kw} {cin}->{cout} on {x.shape[1]}x{x.shape[2]}"
        paths = [(description, layer.convolution_op)]
        if isinstance(layer, networks.SpaceToDepthConv2D):
            paths = [(description + " (space-to-depth input gradient, shipped)", layer.convolution_op),
                     (description + " (plain Conv2D)",
                      functools.partial(keras.layers.Conv2D.convolution_op, layer))]
        # `calls` different inputs per tf.function call and one number back: no dispatch or
        # copy costs in the timing, and no two convolutions alike for Grappler to merge.
        xs = [x + i for i in range(calls)]
        dys = [dy + i for i in range(calls)]
        for label, convolution in paths:
            @tf.function
            def forward(convolution=convolution):
                return sum(convolution(x, kernel)[0, 0, 0, 0] for x in xs)

            @tf.function
            def input_gradient(convolution=convolution):
                total = 0.0
                for dy in dys:
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        y = convolution(x, kernel)
                    total += tape.gradient(y, x, output_gradients=dy)[0, 0, 0, 0]
                return total

            rows.append((label, _best_rate(lambda: forward().numpy(), calls * flops, repeats),
                         _best_rate(lambda: input_gradient().numpy(), calls * flops, repeats),
                         flops))
    return rows


def main(threads):
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    for name in ("cnn", "cnn_wide"):
        total, by_type = network_step_flops(name, num_outputs=10)
        parts = sorted(((v, k) for k, v in by_type.items() if v), reverse=True)
        print(f"{name} {INPUT_SHAPES[name]}: {total / 1e6:.2f} MFLOP per Langevin image-step ("
              + ", ".join(f"{k} {v / 1e6:.2f}M" for v, k in parts) + ")")
        for layer, forward, backward, _ in conv_layer_rates(name):
            print(f"  conv {layer}, batch 128: forward {forward / 1e9:.1f} GFLOP/s, "
                  f"input gradient {backward / 1e9:.1f} GFLOP/s")
    for kind, rate in measure_peaks().items():
        print(f"measured {kind} peak: {rate / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: all)")
    main(parser.parse_args().threads)
