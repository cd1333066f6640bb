"""JEM training throughput: keras_ebm vs an eager-loop version vs PyTorch, side by side.

    python benchmarks/bench_train.py [--iterations 10] [--repeats 3] [--threads N] [--no_record]

Times training iterations of the default JEM of ``python train.py`` (``cnn_wide``,
batch 128, 20 Langevin steps from a 10000-image replay buffer, Adam), interleaved
in one run:

* keras_ebm: the ``train_function`` that ``model.fit`` calls, fed by the same
  ``tf.data`` pipeline as ``train.py`` (bundled MNIST, shuffled);
* eager: the same model and loss, with the sampler written as the Generative
  Deep Learning notebook's eager Python loop and the step run eagerly;
* PyTorch (channels-first and channels-last): ``benchmarks/torch_reference.py``'s
  JEM step (same network, buffer, sampler, loss and Adam) on random
  MNIST-shaped batches, in its own process; skipped when torch is absent.

Prints iterations/s, the projected time of one epoch (55000 / 128 iterations)
and how fast the input pipeline alone delivers batches, and appends the table
to ``benchmarks/RESULTS.md`` (``--no_record``: print only).
"""

import argparse
import os
import time

from bench_mnist import append_results, machine
from bench_sampler import (LABELS, TORCH_VARIANTS, best_torch, eager_langevin,  # before TF
                           interleaved, set_threads,
                           start_torch_worker, thread_settings)
import tensorflow as tf
from keras_ebm import data
from keras_ebm.training import experiment
from keras_ebm.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_IMAGES = 55000  # MNIST training images after the 5000-image validation split


def build(config, splits):
    prepared = experiment.prepare_data(config, splits)
    model = experiment.build_model(config, prepared.input_shape, splits.num_classes)
    experiment.set_up(model, config, splits)
    experiment.compile_model(model, config, prepared.steps_per_epoch)
    return model, prepared.train


def eager_train_step(model, x, y, steps):
    """The JEM step with the notebook's eager sampler loop, run eagerly."""
    starts, slots = model.buffer.sample(tf.shape(x)[0])
    negatives = eager_langevin(model.energy, starts, steps)
    model.buffer.update(slots, negatives)
    with tf.GradientTape() as tape:
        loss = model.compute_metrics(x, y, negatives, training=True)["loss"]
    grads = tape.gradient(loss, model.network.trainable_variables)
    model.optimizer.apply(grads, model.network.trainable_variables)


def main(iterations, repeats, threads, record, bfloat16=False):
    threads = set_threads(threads)
    torch_worker = start_torch_worker(threads)
    config = Config()
    splits = data.load_dataset(config.dataset, config.data_file, config.validation_size,
                               config.subset, config.seed)
    model, train = build(config, splits)
    model.fit(train.take(1), epochs=1, verbose=0)  # builds the optimizer, traces the step
    batches = iter(train.repeat())
    eager_model, eager_train = build(config, splits)
    eager_batches = iter(eager_train.repeat())

    def keras_ebm():
        for _ in range(iterations):
            model.train_function(batches)
        model.optimizer.iterations.numpy()

    def eager():
        for _ in range(iterations):
            x, y = next(eager_batches)
            eager_train_step(eager_model, x, y, config.langevin_steps)

    def pipeline():
        for _ in range(iterations):
            next(batches)[0].numpy()

    jobs = {"keras_ebm": keras_ebm, "eager": eager}
    if bfloat16:
        bf16_model, bf16_train = build(Config(mixed_precision="bfloat16"), splits)
        bf16_model.fit(bf16_train.take(1), epochs=1, verbose=0)
        bf16_batches = iter(bf16_train.repeat())

        def keras_ebm_bf16():
            for _ in range(iterations):
                bf16_model.train_function(bf16_batches)
            bf16_model.optimizer.iterations.numpy()
        jobs["keras_ebm_bf16"] = keras_ebm_bf16
    if torch_worker:
        torch_worker.check_same_network(config.network, model.network, splits.num_classes)
        for impl, (channels_last, compiled) in TORCH_VARIANTS.items():
            request = dict(task="train", network=config.network, batch_size=config.batch_size,
                           langevin_steps=config.langevin_steps, iterations=iterations,
                           channels_last=channels_last, compiled=compiled)
            jobs[impl] = lambda request=request: torch_worker.seconds(**request)
    jobs["pipeline"] = pipeline
    load_before = os.getloadavg()
    seconds = interleaved(jobs, repeats)
    load_after = os.getloadavg()
    if torch_worker:
        torch_worker.close()

    steps_per_epoch = TRAIN_IMAGES // config.batch_size
    rate = {impl: iterations / s for impl, s in seconds.items()}
    lines = [f"\n## JEM training iterations: keras_ebm vs eager loop vs PyTorch ({time.strftime('%Y-%m-%d %H:%M')})\n",
             f"Command: `python benchmarks/bench_train.py --iterations {iterations} --repeats {repeats}"
             + (f" --threads {threads}" if threads != os.cpu_count() else "")
             + (" --bfloat16" if bfloat16 else "") + "`\n",
             f"Machine: {machine()}, CPU only; {thread_settings(torch_worker)}. Load average (1 min) "
             f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. The default JEM of `train.py` "
             f"(`{config.network}`, batch {config.batch_size}, {config.langevin_steps} Langevin steps, "
             f"buffer {config.buffer_size}, Adam); median of {repeats} interleaved runs of {iterations} "
             f"iterations. Epoch = {steps_per_epoch} iterations.\n",
             "| implementation | iterations/s | projected epoch | keras_ebm speed-up |",
             "|---|---|---|---|"]
    for impl in (i for i in LABELS if i in rate):
        lines.append(f"| {LABELS[impl]} | {rate[impl]:.2f} | {steps_per_epoch / rate[impl] / 60:.1f} min | "
                     f"{rate['keras_ebm'] / rate[impl]:.2f}x |")
    best = best_torch(rate)
    if best:
        lines.append(f"\nkeras_ebm against the best PyTorch variant ({LABELS[best]}): "
                     f"**{rate['keras_ebm'] / rate[best]:.2f}x**.")
    lines.append(f"\nThe `tf.data` input pipeline alone delivers {rate['pipeline'] * config.batch_size:,.0f} "
                 f"images/s ({rate['pipeline'] / rate['keras_ebm']:,.0f}x what training consumes).\n")
    section = "\n".join(lines)
    print(section)
    if record:
        append_results(section)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for TensorFlow and PyTorch (default: all cores)")
    parser.add_argument("--no_record", dest="record", action="store_false",
                        help="print only; do not append to RESULTS.md")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also time keras_ebm with the network computing in bfloat16")
    args = parser.parse_args()
    main(args.iterations, args.repeats, args.threads, args.record, args.bfloat16)
