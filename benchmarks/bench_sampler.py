"""Langevin sampler throughput: keras_ebm vs the Generative Deep Learning notebook's eager loop.

    python benchmarks/bench_sampler.py [--batch_size 128] [--steps 60] [--repeats 5]

Both run the same book/UvA CNN (16/32/64/64 strided swish convolutions, the
same weights) on 32x32 inputs as in the book, with the book's update (add
noise, clamp, gradient, clip the gradient to +-0.03, step of 10, clamp), from
the same starting images. Prints image-steps per second for each and their
ratio, and appends a section to benchmarks/RESULTS.md.
"""

import argparse
import os
import platform
import statistics
import time

import keras
import tensorflow as tf

from keras_ebm import networks
from keras_ebm.sampler import LangevinSampler

HERE = os.path.dirname(os.path.abspath(__file__))
STEP_SIZE, NOISE, CLIP = 10.0, 0.005, 0.03


def book_generate_samples(model, inp_imgs, steps, step_size, noise):
    """The book's Example 7-4 loop, run eagerly as in its notebook."""
    for _ in range(steps):
        inp_imgs += tf.random.normal(inp_imgs.shape, mean=0, stddev=noise)
        inp_imgs = tf.clip_by_value(inp_imgs, -1.0, 1.0)
        with tf.GradientTape() as tape:
            tape.watch(inp_imgs)
            out_score = model(inp_imgs)
        grads = tape.gradient(out_score, inp_imgs)
        grads = tf.clip_by_value(grads, -CLIP, CLIP)
        inp_imgs += step_size * grads
        inp_imgs = tf.clip_by_value(inp_imgs, -1.0, 1.0)
    return inp_imgs


def timed(fn, repeats):
    fn()  # warm-up (tracing)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(batch_size, steps, repeats):
    keras.utils.set_random_seed(0)
    # The book's network outputs a score (-energy); keras_ebm reads it the same way.
    network = networks.cnn(input_shape=(32, 32, 1), num_outputs=1)
    x0 = tf.random.uniform([batch_size, 32, 32, 1], -1, 1)
    sampler = LangevinSampler(steps=steps, step_size=STEP_SIZE, noise_scale=NOISE, grad_clip=CLIP)
    energy = lambda x: -network(x)[:, 0]  # noqa: E731

    t_ours = timed(lambda: sampler(energy, x0, seed=[0, 1]).numpy(), repeats)
    t_eager = timed(lambda: book_generate_samples(network, x0, steps, STEP_SIZE, NOISE).numpy(),
                    max(1, repeats // 2))
    image_steps = batch_size * steps
    rows = [("keras_ebm LangevinSampler (tf.function + while_loop)", t_ours),
            ("book notebook loop (eager Python)", t_eager)]
    lines = [f"| {name} | {t:.3f} s | {image_steps / t:,.0f} |" for name, t in rows]
    cpu = platform.processor() or platform.machine()
    section = (
        f"\n## Langevin sampler throughput ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_sampler.py --batch_size {batch_size} --steps {steps} "
        f"--repeats {repeats}`\n\n"
        f"Machine: {os.cpu_count()} cores ({cpu}), CPU only, TensorFlow {tf.__version__}. "
        f"Book/UvA CNN on 32x32, batch {batch_size}, {steps} steps, median of {repeats} runs.\n\n"
        "| sampler | time per chain | image-steps/s |\n|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\nSpeed-up of keras_ebm over the eager loop, same run: **{t_eager / t_ours:.1f}x**.\n"
    )
    print(section)
    with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
        f.write(section)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    main(**vars(parser.parse_args()))
