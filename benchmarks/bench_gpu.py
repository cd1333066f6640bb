"""The GPU check: the sampler and the JEM training step under each GPU setting, then the
default JEM's training time, in one run of a few minutes.

    python benchmarks/bench_gpu.py                       # on a machine with a GPU
    python benchmarks/bench_gpu.py --allow_cpu --quick   # a dry run of the script on a CPU

Settings: float32, float32 with XLA (``jit_compile``), mixed float16, mixed bfloat16, and
mixed float16 with XLA. For each one:

* sampler: image-steps/s of a 60-step Langevin chain on ``cnn_wide`` at batch 128 and 512
  (``bench_sampler.py``'s chain, median of ``--repeats``), and whether it is correct: the
  float32 energy of its final states must have fallen by the float32 chain's drop within 10%;
* training: iterations/s of the default JEM's ``train_function`` (``bench_train.py``'s
  model), and whether its loss stays finite.

Then ``train.py`` with the defaults and the fastest correct training setting
(``--mixed_precision``, ``--jit_compile``) runs for 1 and 2 epochs; the difference projects the default run's training time on this device. The table
goes to ``benchmarks/RESULTS.md`` with the device named (``--no_record``: print only).
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

from bench_mnist import append_results  # noqa: I001  (first: imports keras_ebm before TF)
from bench_sampler import XLASampler, chain_setup, interleaved
from bench_train import build
import numpy as np
import tensorflow as tf
from keras_ebm import data
from keras_ebm.config import Config
from keras_ebm.samplers.langevin import LangevinSampler

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# name -> (mixed precision policy, XLA)
SETTINGS = {"float32": ("none", False), "float32 + XLA": ("none", True),
            "mixed float16": ("float16", False), "mixed bfloat16": ("bfloat16", False),
            "mixed float16 + XLA": ("float16", True)}


def device_name():
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU (no GPU found)"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def why(err):
    """An exception in one line: its type and the last line of its message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"({type(err).__name__}: {lines[-1][:300] if lines else ''})"


def sampler_rates(batch_sizes, steps, repeats):
    """``{(setting, batch): (image-steps/s, correct)}`` for every setting."""
    results = {}
    for batch_size in batch_sizes:
        _, energy32, x0, reference = chain_setup("cnn_wide", batch_size, steps)
        x_reference = reference(energy32, x0, seed=[0, 1])
        drop = float(tf.reduce_mean(energy32(x0)) - tf.reduce_mean(energy32(x_reference)))
        for setting, (policy, xla) in SETTINGS.items():
            sampler_class = XLASampler if xla else LangevinSampler
            try:
                _, energy, _, sampler = chain_setup("cnn_wide", batch_size, steps, sampler_class,
                                                    mixed_precision=policy)
                final = {}

                def chain():
                    final["x"] = sampler(energy, x0, seed=[0, 1]).numpy()

                seconds = interleaved({setting: chain}, repeats)[setting]
                own_drop = float(tf.reduce_mean(energy32(x0))
                                 - tf.reduce_mean(energy32(tf.constant(final["x"]))))
                correct = abs(own_drop - drop) <= 0.1 * abs(drop)
                results[setting, batch_size] = (batch_size * steps / seconds, correct)
            except Exception as err:  # a setting this device or TensorFlow build cannot run
                print(f"sampler, {setting}, batch {batch_size}: failed {why(err)}", flush=True)
                results[setting, batch_size] = (None, False)
    return results


def training_rates(iterations, repeats):
    """``{setting: (iterations/s, loss finite)}`` for the default JEM's training step."""
    results = {}
    splits = None
    for setting, (policy, xla) in SETTINGS.items():
        config = Config(mixed_precision=policy)
        splits = splits or data.load_dataset(config.dataset, config.data_file,
                                             config.validation_size, config.subset, config.seed)
        try:
            model, train = build(config, splits)
            model.jit_compile = xla
            history = model.fit(train.take(2), epochs=1, verbose=0)  # traces the step
            batches, logs = iter(train.repeat()), dict(history.history)

            def step():
                for _ in range(iterations):
                    logs.update(model.train_function(batches))

            seconds = interleaved({setting: step}, repeats)[setting]
            results[setting] = (iterations / seconds, math.isfinite(float(np.mean(logs["loss"]))))
        except Exception as err:
            print(f"training, {setting}: failed {why(err)}", flush=True)
            results[setting] = (None, False)
    return results


def default_run_minutes(policy, epochs, extra=()):
    """Wall minutes of ``train.py`` with the defaults (and ``policy``, ``extra`` flags) for each
    count of ``epochs``."""
    minutes = []
    for count in epochs:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "train.py", "--epochs", str(count), "--mixed_precision",
                       policy, "--sample_every", "0", "--evaluate", "false", "--verbose", "2",
                       "--out", os.path.join(out, "run"), *extra]
            print("$ python", " ".join(command[1:]), flush=True)
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True)
            minutes.append((time.perf_counter() - start) / 60)
    return minutes


def main(args):
    device = device_name()
    if device.startswith("CPU") and not args.allow_cpu:
        sys.exit("error: no GPU found (tf.config.list_physical_devices('GPU') is empty). "
                 "Run this on a machine with a GPU, or pass --allow_cpu for a dry run.")
    steps = 10 if args.quick else 60
    batch_sizes = [16] if args.quick else [128, 512]
    sampling = sampler_rates(batch_sizes, steps, args.repeats)
    training = training_rates(2 if args.quick else 20, args.repeats)
    runnable = {s: r for s, (r, ok) in training.items() if r and ok}
    fastest = max(runnable, key=runnable.get) if runnable else "float32"
    epochs = Config().epochs
    policy, xla = SETTINGS[fastest]
    minutes = default_run_minutes(policy, [1] if args.quick else [1, 2],
                                  ["--jit_compile", str(xla).lower()]
                                  + (["--subset", "512"] if args.quick else []))
    one, per_epoch = minutes[0], (minutes[-1] - minutes[0] if len(minutes) > 1 else minutes[0])
    lines = [f"\n## GPU: sampler, training step and the default JEM ({time.strftime('%Y-%m-%d %H:%M')})\n",
             f"Command: `python benchmarks/bench_gpu.py{' --allow_cpu --quick' if args.quick else ''}`. "
             f"Device: **{device}**, TensorFlow {tf.__version__}. Sampler: `cnn_wide`, {steps} "
             f"Langevin steps, median of {args.repeats}; correct = its final states' float32 "
             "energy drop within 10% of the float32 chain's. Training: the default JEM's "
             "`train_function`; correct = finite loss.\n",
             "| setting | " + " | ".join(f"sampler, batch {b} (image-steps/s)" for b in batch_sizes)
             + " | training (iterations/s) |",
             "|---" * (len(batch_sizes) + 2) + "|"]
    for setting in SETTINGS:
        cells = []
        for b in batch_sizes:
            rate, ok = sampling[setting, b]
            cells.append(f"{rate:,.0f}{'' if ok else ' (wrong)'}" if rate else "failed")
        rate, ok = training[setting]
        cells.append(f"{rate:.2f}{'' if ok else ' (wrong)'}" if rate else "failed")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    lines.append(f"\nFastest correct training setting: **{fastest}** (`--mixed_precision {policy} "
                 f"--jit_compile {str(xla).lower()}`). `python train.py` with it: "
                 f"{per_epoch:.2f} min per epoch ({'one 1-epoch run' if args.quick else '2-epoch minus 1-epoch run'}), so the default "
                 f"{epochs} epochs train in about **{one + (epochs - 1) * per_epoch:.1f} min** "
                 "on this device.\n")
    section = "\n".join(lines)
    print(section)
    if args.record and not args.quick:
        append_results(section)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--allow_cpu", action="store_true", help="run without a GPU (dry run)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, nothing recorded: checks that the script runs")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure")
    parser.add_argument("--no_record", dest="record", action="store_false",
                        help="print the table only")
    main(parser.parse_args())
