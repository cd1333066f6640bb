"""Langevin sampler throughput: keras_ebm vs the book's eager loop vs PyTorch, with a roofline.

    python benchmarks/bench_sampler.py [--networks cnn cnn_wide] [--batch_sizes 32 128 512]
                                       [--steps 20 60] [--repeats 3] [--threads N] [--no_record]
    python benchmarks/bench_sampler.py --scaling   # keras_ebm against batch and image size
    python benchmarks/bench_sampler.py --breakdown --batch_sizes 128 512   # where a step's time goes

For each network, batch size and chain length, in one run and interleaved
(keras_ebm, eager, torch, torch channels-last, keras_ebm, ...), it times one
Langevin chain of:

* keras_ebm's ``LangevinSampler`` (one ``tf.function``, a ``tf.while_loop``);
* the Generative Deep Learning book's loop (its Example 7-4), run eagerly as
  in its notebook, on the same Keras network and starting images;
* a plain PyTorch version of the same network and sampler
  (``benchmarks/torch_reference.py``, channels-first as usually written, and
  channels-last, PyTorch's faster CPU layout), in its own process; skipped
  with a message when torch is not installed.

Networks: ``cnn`` is the book's CNN on its 32x32 inputs with one score
output; ``cnn_wide`` is the JEM default on 28x28 MNIST with 10 logits. The
update is the book's (step 10, noise 0.005, gradient clip 0.03, clamp to
[-1, 1]). Prints medians in image-steps/s, the FLOPs per image-step counted
by the TensorFlow profiler, achieved FLOP/s against the machine's measured
matmul and convolution peaks, draws ``benchmarks/figures/roofline.png`` and
appends everything to ``benchmarks/RESULTS.md`` (``--no_record``: print only).
"""

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import roofline  # noqa: E402  (first: imports keras_ebm before TensorFlow)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_mnist import append_results, machine  # noqa: E402
from keras_ebm import distribute  # noqa: E402
from keras_ebm.models import networks  # noqa: E402
from keras_ebm.samplers.buffer import ReplayBuffer  # noqa: E402
from keras_ebm.samplers.langevin import LangevinSampler  # noqa: E402

STEP_SIZE, NOISE, CLIP = 10.0, 0.005, 0.03
# name -> (input shape, outputs): the book's CNN as in the book, the JEM default as in train.py.
NETWORKS = {"cnn": ((32, 32, 1), 1), "cnn_wide": ((28, 28, 1), 10)}
# PyTorch variants: (channels-last memory layout, torch.compile).
TORCH_VARIANTS = {"torch": (False, False), "torch_cl": (True, False),
                  "torch_compile": (False, True), "torch_cl_compile": (True, True)}
IMPLEMENTATIONS = ("keras_ebm", "keras_ebm_bf16", "eager", *TORCH_VARIANTS)
LABELS = {"keras_ebm": "keras_ebm", "keras_ebm_bf16": "keras_ebm bfloat16",
          "eager": "book eager loop", "torch": "PyTorch", "torch_cl": "PyTorch channels-last",
          "torch_compile": "PyTorch torch.compile",
          "torch_cl_compile": "PyTorch torch.compile channels-last"}


def best_torch(rates):
    """The fastest PyTorch variant among ``rates`` (implementation -> rate), or ``None``."""
    measured = [impl for impl in TORCH_VARIANTS if impl in rates]
    return max(measured, key=rates.get) if measured else None


def eager_langevin(energy_fn, x, steps, step_size=STEP_SIZE, noise=NOISE, clip=CLIP):
    """The book's Example 7-4 loop (score = -energy), run eagerly as in its notebook."""
    for _ in range(steps):
        x += tf.random.normal(x.shape, mean=0, stddev=noise)
        x = tf.clip_by_value(x, -1.0, 1.0)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = -energy_fn(x)
        grads = tape.gradient(score, x)
        grads = tf.clip_by_value(grads, -clip, clip)
        x += step_size * grads
        x = tf.clip_by_value(x, -1.0, 1.0)
    return x


class TorchWorker:
    """``benchmarks/torch_reference.py`` serving timing requests from its own process."""

    def __init__(self, threads):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "torch_reference.py"), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.info = json.loads(self.process.stdout.readline())

    def ask(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def seconds(self, **request):
        return self.ask(**request)["seconds"]

    def check_same_network(self, name, network, num_outputs):
        """Fail unless the PyTorch version of ``name`` has ``network``'s parameter count."""
        params = self.ask(task="params", network=name, input_shape=network.input_shape[1:],
                          num_outputs=num_outputs)["params"]
        if params != network.count_params():
            raise AssertionError(f"PyTorch {name} has {params} parameters, "
                                 f"keras_ebm's {network.count_params()}.")

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def start_torch_worker(threads):
    if importlib.util.find_spec("torch") is None:
        print("torch is not installed: skipping the PyTorch columns "
              "(pip install -r benchmarks/requirements.txt).")
        return None
    return TorchWorker(threads)


def set_threads(threads):
    """Give TensorFlow ``threads`` intra- and inter-op threads (before it executes anything)."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return threads or os.cpu_count()


def thread_settings(torch_worker):
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    text = (f"TensorFlow intra-op threads {intra or 'default (' + str(os.cpu_count()) + ')'}, "
            f"inter-op {inter or 'default'}")
    if torch_worker:
        text += f"; PyTorch {torch_worker.info['version']}, torch.set_num_threads({torch_worker.info['threads']})"
    return text


def interleaved(jobs, repeats):
    """Median seconds of each job, timed in turns after one warm-up each (a job that
    returns a number reports its own seconds)."""
    for job in jobs.values():
        job()
    times = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            seconds = job()
            times[name].append(seconds if seconds is not None else time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def chain_setup(name, batch_size, steps, sampler_class=LangevinSampler, network_kwargs=None,
                mixed_precision="none"):
    """The benchmarked chain: network ``name`` (its layers computing in ``mixed_precision``),
    its marginal energy, a seeded uniform start and a sampler of ``sampler_class``."""
    input_shape, num_outputs = NETWORKS[name]
    keras.utils.set_random_seed(0)
    with distribute.precision(mixed_precision):
        network = networks.get_network(name, input_shape=input_shape, num_outputs=num_outputs,
                                       **(network_kwargs or {}))
    energy = lambda x: -tf.reduce_logsumexp(network(x), axis=-1)  # noqa: E731
    x0 = tf.random.uniform((batch_size,) + input_shape, -1.0, 1.0)
    sampler = sampler_class(steps=steps, step_size=STEP_SIZE, noise_scale=NOISE, grad_clip=CLIP)
    return network, energy, x0, sampler


def sampler_jobs(name, batch_size, steps, torch_worker, bfloat16=False):
    input_shape, num_outputs = NETWORKS[name]
    network, energy, x0, sampler = chain_setup(name, batch_size, steps)

    def ours():
        sampler(energy, x0, seed=[0, 1]).numpy()

    def eager():
        eager_langevin(energy, x0, steps).numpy()

    jobs = {"keras_ebm": ours, "eager": eager}
    if bfloat16:
        _, energy_bf16, _, sampler_bf16 = chain_setup(name, batch_size, steps,
                                                      mixed_precision="bfloat16")

        def ours_bf16():
            sampler_bf16(energy_bf16, x0, seed=[0, 1]).numpy()
        jobs["keras_ebm_bf16"] = ours_bf16
    if torch_worker:
        torch_worker.check_same_network(name, network, num_outputs)
        for impl, (channels_last, compiled) in TORCH_VARIANTS.items():
            request = dict(task="sample", network=name, input_shape=input_shape,
                           num_outputs=num_outputs, batch_size=batch_size, steps=steps,
                           channels_last=channels_last, compiled=compiled)
            jobs[impl] = lambda request=request: torch_worker.seconds(**request)
    return jobs


def plot_roofline(rates, flops, peaks, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(flops), figsize=(5.5 * len(flops), 4.2), squeeze=False)
    for ax, name in zip(axes[0], flops):
        for impl in IMPLEMENTATIONS:
            points = sorted((b, r) for (n, b, s, i), r in rates.items()
                            if n == name and i == impl and s == max(k[2] for k in rates))
            if points:
                ax.plot([b for b, _ in points], [r * flops[name] / 1e9 for _, r in points], "o-",
                        label=LABELS[impl])
        for kind, style in (("matmul", "--"), ("conv2d", ":")):
            ax.axhline(peaks[kind] / 1e9, color="k", linestyle=style,
                       label=f"measured TF {kind} peak {peaks[kind] / 1e9:.0f} GFLOP/s")
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="achieved GFLOP/s")
        ax.set_title(f"{name}: {flops[name] / 1e6:.2f} MFLOP per image-step, "
                     f"{max(k[2] for k in rates)}-step chains", fontsize=10)
        ax.set_xticks(sorted({k[1] for k in rates}), labels=sorted({k[1] for k in rates}),
                      minor=False)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class BoxMullerSampler(LangevinSampler):
    """Normal noise from uniform pairs (Box-Muller) instead of ``stateless_normal``."""

    def noise(self, shape, seed, dtype):
        u = tf.random.stateless_uniform(tf.stack([2, (tf.reduce_prod(shape) + 1) // 2]),
                                        seed=seed, minval=2.0**-24, maxval=1.0, dtype=dtype)
        radius, angle = tf.sqrt(-2.0 * tf.math.log(u[0])), 2.0 * math.pi * u[1]
        pairs = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], 0)
        return tf.reshape(pairs[: tf.reduce_prod(shape)], shape)


class OverlappingSampler(LangevinSampler):
    parallel_iterations = 2


class SplitBatchSampler(LangevinSampler):
    """The energy gradients of the batch's two halves as independent ops (one per core)."""

    def gradient(self, energy_fn, x):
        halves = []
        for half in tf.split(x, 2):
            halves.append(super().gradient(energy_fn, half))
        return tf.concat(halves, 0)


class XLASampler(LangevinSampler):
    def compile_run(self, run, input_signature):
        return tf.function(run, input_signature=input_signature, jit_compile=True)


# name -> (what is changed, environment, TF threads (intra, inter), sampler class,
#          network keyword arguments)
ABLATIONS = {
    "default": ("as shipped", {}, None, LangevinSampler, {}),
    "inter_op_1": ("1 inter-op thread", {}, (0, 1), LangevinSampler, {}),
    "one_core": ("1 intra-op and 1 inter-op thread (one core)", {}, (1, 1), LangevinSampler, {}),
    "eigen": ("TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's Eigen kernels, not oneDNN)",
              {"TF_ENABLE_ONEDNN_OPTS": "0"}, None, LangevinSampler, {}),
    "split_batch_2": ("energy gradients of the two batch halves side by side", {}, None,
                      SplitBatchSampler, {}),
    "parallel_iterations_2": ("while_loop parallel_iterations=2", {}, None, OverlappingSampler,
                              {}),
    "box_muller": ("Box-Muller noise from stateless_uniform", {}, None, BoxMullerSampler, {}),
    "xla": ("tf.function(jit_compile=True)", {}, None, XLASampler, {}),
    "plain_first_conv": ("first layer a plain Conv2D (no space-to-depth input gradient)", {}, None,
                         LangevinSampler, {"space_to_depth": False}),
}


def run_variant(name, network, batch_size, steps, repeats):
    """Median seconds of one chain under ablation ``name`` (run in a fresh process)."""
    threads, sampler_class, network_kwargs = ABLATIONS[name][2:]
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    _, energy, x0, sampler = chain_setup(network, batch_size, steps, sampler_class, network_kwargs)

    def chain():
        sampler(energy, x0, seed=[0, 1]).numpy()

    return interleaved({name: chain}, repeats)[name]


def buffer_update_seconds(updates=50, batch_size=128):
    """Seconds per replay-buffer write: in-place scatter (as shipped) vs a full-buffer copy."""
    buffer = ReplayBuffer(size=10000, sample_shape=(28, 28, 1), seed=0)
    states = tf.zeros((batch_size, 28, 28, 1))

    @tf.function
    def scatter(indices):
        buffer.update(indices, states)

    @tf.function
    def full_copy(indices):
        buffer.samples.assign(tf.tensor_scatter_nd_update(buffer.samples, indices[:, None], states))

    def timed(write):
        def job():
            for _ in range(updates):
                write(tf.range(batch_size))
            buffer.samples[0, 0, 0, 0].numpy()
        return job

    medians = interleaved({"scatter": timed(scatter), "full_copy": timed(full_copy)}, 3)
    return {name: seconds / updates for name, seconds in medians.items()}


def ablations(network, batch_size, steps, rounds, repeats, record):
    """Each variant in its own process, in turns for ``rounds`` rounds; median image-steps/s."""
    seconds = {name: [] for name in ABLATIONS}
    load_before = os.getloadavg()
    for _ in range(rounds):
        for name, (_, env, *_) in ABLATIONS.items():
            out = subprocess.run(
                [sys.executable, __file__, "--variant", name, "--networks", network,
                 "--batch_sizes", str(batch_size), "--steps", str(steps), "--repeats", str(repeats)],
                env={**os.environ, **env}, capture_output=True, text=True, check=True)
            seconds[name].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
            print(name, f"{batch_size * steps / seconds[name][-1]:,.0f} image-steps/s", flush=True)
    load_after = os.getloadavg()
    rate = {name: batch_size * steps / statistics.median(s) for name, s in seconds.items()}
    buffer = buffer_update_seconds()
    lines = [f"\n## Sampler speed: what was tried ({time.strftime('%Y-%m-%d %H:%M')})\n",
             f"Command: `python benchmarks/bench_sampler.py --ablations --networks {network} "
             f"--batch_sizes {batch_size} --steps {steps} --repeats {repeats} --rounds {rounds}`\n",
             f"Machine: {machine()}, CPU only. Load average (1 min) {load_before[0]:.1f} before, "
             f"{load_after[0]:.1f} after. `{network}`, batch {batch_size}, {steps} steps; each variant "
             f"in a fresh process, {rounds} rounds in turns, median of the rounds' medians of "
             f"{repeats} chains.\n",
             "| variant | change | image-steps/s | vs shipped |", "|---|---|---|---|"]
    for name, (change, *_) in ABLATIONS.items():
        lines.append(f"| {name} | {change} | {rate[name]:,.0f} | {rate[name] / rate['default']:.2f}x |")
    lines.append(f"\nReplay-buffer write of {128} samples into a 10000-image buffer: in-place scatter "
                 f"(shipped) {buffer['scatter'] * 1e3:.2f} ms, full-buffer copy "
                 f"{buffer['full_copy'] * 1e3:.2f} ms.\n")
    section = "\n".join(lines)
    print(section)
    if record:
        append_results(section)


def main(networks_, batch_sizes, steps_list, repeats, threads, record, bfloat16=False):
    threads = set_threads(threads)
    torch_worker = start_torch_worker(threads)
    load_before = os.getloadavg()
    rates = {}  # (network, batch, steps, implementation) -> image-steps/s
    for name in networks_:
        for batch_size in batch_sizes:
            for steps in steps_list:
                medians = interleaved(sampler_jobs(name, batch_size, steps, torch_worker,
                                                   bfloat16), repeats)
                for impl, seconds in medians.items():
                    rates[(name, batch_size, steps, impl)] = batch_size * steps / seconds
                print(name, batch_size, steps,
                      {impl: f"{batch_size * steps / s:,.0f}" for impl, s in medians.items()},
                      flush=True)
    load_after = os.getloadavg()
    flops = {name: roofline.network_step_flops(name, NETWORKS[name][1])[0] for name in networks_}
    peaks = roofline.measure_peaks()
    impls = [i for i in IMPLEMENTATIONS if any(k[3] == i for k in rates)]

    lines = [f"\n## Langevin sampler: keras_ebm vs eager loop vs PyTorch ({time.strftime('%Y-%m-%d %H:%M')})\n",
             f"Command: `python benchmarks/bench_sampler.py --networks {' '.join(networks_)} "
             f"--batch_sizes {' '.join(map(str, batch_sizes))} --steps {' '.join(map(str, steps_list))} "
             f"--repeats {repeats}" + (f" --threads {threads}" if threads != os.cpu_count() else "")
             + (" --bfloat16" if bfloat16 else "") + "`\n",
             f"Machine: {machine()}, CPU only; {thread_settings(torch_worker)}. Load average (1 min) "
             f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Median of {repeats} interleaved "
             "chains per cell, image-steps/s (higher is better).\n"]
    for name in networks_:
        shape, outputs = NETWORKS[name]
        lines.append(f"`{name}` on {shape[0]}x{shape[1]}, {outputs} output(s):\n")
        header = "| batch | steps | " + " | ".join(LABELS[i] for i in impls) + " | vs eager |"
        header += " vs the best PyTorch |" if "torch" in impls else ""
        lines.append(header + "\n|" + "---|" * (header.count("|") - 1))
        for batch_size in batch_sizes:
            for steps in steps_list:
                r = {i: rates[(name, batch_size, steps, i)] for i in impls}
                row = f"| {batch_size} | {steps} | " + " | ".join(f"{r[i]:,.0f}" for i in impls)
                row += f" | {r['keras_ebm'] / r['eager']:.1f}x |"
                best = best_torch(r)
                if best:
                    row += f" {r['keras_ebm'] / r[best]:.2f}x ({LABELS[best]}) |"
                lines.append(row)
        lines.append("")
    lines.append(f"Roofline: measured TensorFlow float32 peaks on this machine: matmul (2048x2048) "
                 f"{peaks['matmul'] / 1e9:.1f} GFLOP/s, conv2d (3x3, 128->128 channels, 32x32, "
                 f"batch 64) {peaks['conv2d'] / 1e9:.1f} GFLOP/s. FLOPs per Langevin image-step "
                 "counted by the TensorFlow profiler on the pruned step graph (forward, input "
                 "gradient, update; checked against the layer formula): "
                 + ", ".join(f"`{n}` {f / 1e6:.2f} MFLOP" for n, f in flops.items())
                 + ". Achieved GFLOP/s (fraction of the conv2d peak), longest chains:\n")
    steps = max(steps_list)
    lines.append("| network | batch | " + " | ".join(LABELS[i] for i in impls) + " |\n|"
                 + "---|" * (len(impls) + 2))
    for name in networks_:
        for batch_size in batch_sizes:
            cells = []
            for i in impls:
                achieved = rates[(name, batch_size, steps, i)] * flops[name]
                cells.append(f"{achieved / 1e9:.1f} ({achieved / peaks['conv2d']:.0%})")
            lines.append(f"| {name} | {batch_size} | " + " | ".join(cells) + " |")
    section = "\n".join(lines) + "\n"
    print(section)
    if torch_worker:
        torch_worker.close()
    if record:
        figure = os.path.join(HERE, "figures", "roofline.png")
        plot_roofline(rates, flops, peaks, figure)
        section += "\nFigure: `benchmarks/figures/roofline.png`.\n"
        append_results(section)
        print(f"Appended to benchmarks/RESULTS.md; figure {figure}.")


SCALING_BATCHES = (32, 64, 128, 256, 512, 1024)  # on 28x28x1
SCALING_SHAPES = ((28, 28, 1), (32, 32, 3), (64, 64, 3))  # at batch 128


def scaling(steps, repeats, threads, record):
    """keras_ebm's sampler on ``cnn_wide`` (built for each image shape): image-steps/s and the
    share of the measured conv peak, against the batch size and against the image size."""
    threads = set_threads(threads)
    peaks = roofline.measure_peaks()
    cells = [(SCALING_SHAPES[0], b) for b in SCALING_BATCHES]
    cells += [(shape, 128) for shape in SCALING_SHAPES[1:]]
    rows = []
    for shape, batch_size in cells:
        plain = networks.get_network("cnn_wide", input_shape=shape, num_outputs=10,
                                     space_to_depth=False)
        flops = roofline.langevin_step_flops(
            lambda x: -tf.reduce_logsumexp(plain(x), axis=-1), shape)[0]
        keras.utils.set_random_seed(0)
        network = networks.get_network("cnn_wide", input_shape=shape, num_outputs=10)
        energy = lambda x, network=network: -tf.reduce_logsumexp(network(x), axis=-1)  # noqa: E731
        x0 = tf.random.uniform((batch_size,) + shape, -1.0, 1.0)
        sampler = LangevinSampler(steps=steps, step_size=STEP_SIZE, noise_scale=NOISE,
                                  grad_clip=CLIP)

        def chain():
            sampler(energy, x0, seed=[0, 1]).numpy()

        rate = batch_size * steps / interleaved({"chain": chain}, repeats)["chain"]
        achieved = rate * flops
        rows.append(f"| {'x'.join(map(str, shape))} | {batch_size} | {flops / 1e6:.2f} | "
                    f"{rate:,.0f} | {achieved / 1e9:.1f} | {achieved / peaks['conv2d']:.0%} |")
        print(rows[-1], flush=True)
    section = "\n".join([
        f"\n## Langevin sampler scaling: batch and image size ({time.strftime('%Y-%m-%d %H:%M')})\n",
        f"Command: `python benchmarks/bench_sampler.py --scaling --steps {steps} --repeats {repeats}"
        + (f" --threads {threads}" if threads != os.cpu_count() else "") + "`\n",
        f"Machine: {machine()}, CPU only. keras_ebm's `LangevinSampler` on `cnn_wide` built for "
        f"each image shape (10 logits, JEM energy), {steps} steps, median of {repeats} chains. "
        "MFLOP per image-step counted by the TensorFlow profiler (plain first convolution). "
        f"Measured peaks in this run: conv2d {peaks['conv2d'] / 1e9:.1f} GFLOP/s, matmul "
        f"{peaks['matmul'] / 1e9:.1f} GFLOP/s.\n",
        "| image | batch | MFLOP / image-step | image-steps/s | GFLOP/s | share of the conv peak |",
        "|---|---|---|---|---|---|", *rows]) + "\n"
    print(section)
    if record:
        append_results(section)


def breakdown(batch_sizes, steps, repeats, threads, record):
    """Where a ``cnn_wide`` Langevin step's time goes, per batch size: its convolutions (forward
    and input gradient of each layer, timed alone at that batch on the shipped path) against
    the whole step; the rest is element-wise work (activations and their gradients, noise,
    clip, update), the dense layers and per-op overhead."""
    threads = set_threads(threads)
    peak = roofline.measure_peaks()["conv2d"]
    flops = roofline.network_step_flops("cnn_wide", num_outputs=NETWORKS["cnn_wide"][1])[0]
    rows = []
    for batch_size in batch_sizes:
        _, energy, x0, sampler = chain_setup("cnn_wide", batch_size, steps)

        def chain():
            sampler(energy, x0, seed=[0, 1]).numpy()

        step = interleaved({"chain": chain}, repeats)["chain"] / steps
        conv_seconds, conv_flops = 0.0, 0.0
        for label, forward, backward, layer_flops in roofline.conv_layer_rates(
                "cnn_wide", batch_size=batch_size):
            if label.endswith("(plain Conv2D)"):  # timed for comparison, not the shipped path
                continue
            conv_seconds += layer_flops / forward + layer_flops / backward
            conv_flops += 2 * layer_flops
        rows.append(f"| {batch_size} | {1e3 * step:.2f} | {batch_size * flops / step / 1e9:.1f} "
                    f"({batch_size * flops / step / peak:.0%}) | {1e3 * conv_seconds:.2f} "
                    f"({conv_seconds / step:.0%}) | {conv_flops / conv_seconds / 1e9:.1f} "
                    f"({conv_flops / conv_seconds / peak:.0%}) | {1e3 * (step - conv_seconds):.2f} "
                    f"({1 - conv_seconds / step:.0%}) |")
        print(rows[-1], flush=True)
    section = "\n".join([
        f"\n## Langevin step breakdown: convolutions and the rest ({time.strftime('%Y-%m-%d %H:%M')})\n",
        f"Command: `python benchmarks/bench_sampler.py --breakdown --batch_sizes "
        f"{' '.join(map(str, batch_sizes))} --steps {steps} --repeats {repeats}`\n",
        f"Machine: {machine()}, CPU only. keras_ebm's `LangevinSampler` on `cnn_wide` (28x28x1, "
        f"10 logits, JEM energy, {flops / 1e6:.2f} MFLOP per image-step), {steps} steps, median "
        f"of {repeats} chains; measured conv2d peak in this run {peak / 1e9:.1f} GFLOP/s. The "
        "convolutions' time is the sum over layers of forward and input gradient, each timed "
        "alone at the batch size (best of 5, `benchmarks/roofline.py`); the rest of the step is "
        "element-wise work (swish and its gradient, noise, clip, update), the dense layers and "
        "per-op overhead.\n",
        "| batch | step (ms) | step GFLOP/s (of peak) | convolutions alone (ms, share of step) "
        "| convolutions' own GFLOP/s (of peak) | rest of the step (ms, share) |",
        "|---|---|---|---|---|---|", *rows]) + "\n"
    print(section)
    if record:
        append_results(section)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[32, 128, 512])
    parser.add_argument("--steps", nargs="+", type=int, default=[20, 60])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for TensorFlow (intra- and inter-op) and PyTorch (default: all cores)")
    parser.add_argument("--no_record", dest="record", action="store_false",
                        help="print only; do not append to RESULTS.md or draw the figure")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also time keras_ebm with the network computing in bfloat16")
    parser.add_argument("--ablations", action="store_true",
                        help="A/B the speed options in ABLATIONS on the first network, batch and "
                             "steps instead (each in its own process)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --ablations")
    parser.add_argument("--scaling", action="store_true",
                        help="keras_ebm alone on cnn_wide: batch 32-1024 on 28x28x1, and "
                             "32x32x3 and 64x64x3 images at batch 128 (longest of --steps)")
    parser.add_argument("--breakdown", action="store_true",
                        help="keras_ebm alone on cnn_wide: each --batch_sizes step's time split "
                             "into its convolutions (timed alone) and the rest (longest of --steps)")
    parser.add_argument("--variant", choices=list(ABLATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        seconds = run_variant(args.variant, args.networks[0], args.batch_sizes[0], args.steps[0],
                              args.repeats)
        print(json.dumps({"seconds": seconds}))
    elif args.ablations:
        ablations(args.networks[0], args.batch_sizes[0], args.steps[0], args.rounds, args.repeats,
                  args.record)
    elif args.scaling:
        scaling(max(args.steps), args.repeats, args.threads, args.record)
    elif args.breakdown:
        breakdown(args.batch_sizes, max(args.steps), args.repeats, args.threads, args.record)
    else:
        main(args.networks, args.batch_sizes, args.steps, args.repeats, args.threads, args.record,
             args.bfloat16)
