"""Denoising and inpainting MNIST digits with the benchmark JEM's energy.

    python benchmarks/bench_restore.py [--model PATH] [--sigma 0.3] [--max_steps 100]

Corrupts 100 fixed test digits (the first 100 of the test set) in two ways:
Gaussian noise of std ``sigma`` in [0, 1] pixel units (clipped to [0, 1]) and a
missing bottom half (filled with black, the background), and restores them
with ``keras_ebm.restoration``:

* denoising by energy descent (the training sampler's clipped update, no noise),
* denoising by descending the posterior energy ``E(x) + |x - y|^2 / (2 sigma^2)``
  (plain gradient steps),
* inpainting by energy descent on the missing pixels, observed pixels clamped.

The number of steps of each is chosen on 100 other test digits (the last 100)
from snapshots every 5 steps up to ``--max_steps``; the first 100 are only used
for the reported PSNR. Prints the table, writes ``benchmarks/figures/restore_grid.png``
and appends both with the command to ``benchmarks/RESULTS.md``.

``--model`` takes a ``.keras`` file or a SavedModel export (``energy`` endpoint
on [0, 1] images). The default is the benchmark JEM: its ``best.keras`` when its
run directory is present, else its shipped export (the same weights).
"""

import argparse
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))

import keras_ebm  # noqa: E402,F401  (first: registers the model classes, sets TensorFlow options)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_mnist import ROOT, append_results, machine  # noqa: E402
from keras_ebm import data, plotting, restoration  # noqa: E402

RUN_CHECKPOINT = os.path.join(HERE, "runs", "jem-mnist-20261124-003322", "checkpoints",
                              "best.keras")
EXPORT = os.path.join(HERE, "models", "jem_mnist_savedmodel")
SNAPSHOT_EVERY = 5


def load_energy(path):
    """The energy on images in [-1, 1] from a .keras model or a SavedModel export."""
    if path.endswith(".keras"):
        return keras.saving.load_model(path).energy
    exported = tf.saved_model.load(path)
    return lambda x: exported.energy((x + 1.0) / 2.0)


def corrupt(clean, sigma, seed):
    """Gaussian noise (std ``sigma`` in [0, 1] units, clipped) and a missing bottom half."""
    rng = np.random.default_rng(seed)
    noisy = np.clip((clean + 1) / 2 + sigma * rng.normal(size=clean.shape), 0, 1) * 2 - 1
    mask = np.ones_like(clean)
    mask[:, clean.shape[1] // 2:] = 0.0
    masked = clean * mask - (1.0 - mask)  # missing pixels black (-1)
    return noisy.astype(np.float32), masked.astype(np.float32), mask


def methods(sigma):
    """name -> function(energy, noisy, masked, mask, max_steps) -> snapshots every 5 steps."""
    noise_var = (2 * sigma) ** 2  # sigma in [0, 1] units, images in [-1, 1]
    return {
        "denoise: energy descent": lambda e, noisy, masked, mask, n: restoration.denoise(
            e, noisy, steps=n, snapshot_every=SNAPSHOT_EVERY)[1],
        "denoise: descent on the posterior energy (fidelity 1 / sigma^2)": lambda e, noisy, masked, mask, n:
            restoration.denoise(e, noisy, steps=n, fidelity=1 / noise_var, step_size=0.2,
                            grad_clip=None, snapshot_every=SNAPSHOT_EVERY)[1],
        "inpaint bottom half: energy descent": lambda e, noisy, masked, mask, n: restoration.inpaint(
            e, masked, mask, steps=n, start=masked, snapshot_every=SNAPSHOT_EVERY)[1],
    }


def mean_psnr(images, clean):
    return float(np.mean(restoration.psnr(images, clean)))


def main(model_path, sigma, max_steps, seed=0):
    start = time.time()
    energy = load_energy(model_path)
    x_test = data.preprocess(data.load_dataset("mnist", validation_size=0).x_test).numpy()
    sets = {"report": x_test[:100], "select": x_test[-100:]}
    corrupted = {name: corrupt(clean, sigma, seed) for name, clean in sets.items()}
    rows, images = [], {}
    for name, run in methods(sigma).items():
        noisy, masked, mask = corrupted["select"]
        curve = [mean_psnr(s, sets["select"]) for s in run(energy, noisy, masked, mask, max_steps)]
        best = int(np.argmax(curve))
        noisy, masked, mask = corrupted["report"]
        restored = run(energy, noisy, masked, mask, best * SNAPSHOT_EVERY)[-1].numpy()
        before = noisy if name.startswith("denoise") else masked
        psnr_before = restoration.psnr(before, sets["report"]).numpy()
        psnr_after = restoration.psnr(restored, sets["report"]).numpy()
        gain = psnr_after - psnr_before
        rows.append((name, best * SNAPSHOT_EVERY, psnr_before.mean(), psnr_after.mean(),
                     gain.mean(), gain.std(ddof=1) / np.sqrt(len(gain)), np.mean(gain > 0)))
        images[name] = restored
    noisy, masked, _ = corrupted["report"]
    names = list(images)
    grid = {"clean": sets["report"][:10], f"noisy (sigma {sigma})": noisy[:10],
            "denoised": images[names[0]][:10], "masked": masked[:10],
            "inpainted": images[names[2]][:10]}
    figure = os.path.join(HERE, "figures", "restore_grid.png")
    plotting.save_grid(grid, figure, title="Restoration by energy descent on the JEM")
    table = ("| task and method | steps (chosen on 100 other digits) | PSNR corrupted | "
             "PSNR restored | gain (mean +- s.e.) | digits improved |\n|---|---|---|---|---|---|\n")
    table += "".join(f"| {n} | {s} | {b:.2f} dB | {a:.2f} dB | {g:+.2f} +- {e:.2f} dB | "
                     f"{100 * w:.0f}% |\n" for n, s, b, a, g, e, w in rows)
    command = "python benchmarks/bench_restore.py" + (
        f" --model {os.path.relpath(model_path, ROOT)}" if model_path != default_model() else "")
    section = (
        f"\n## Denoising and inpainting with the benchmark JEM ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `{command}` ({time.time() - start:.0f} s). Machine: {machine()}, CPU only. "
        f"Model: `{os.path.relpath(model_path, ROOT)}`. The first 100 MNIST test digits, "
        f"corrupted by Gaussian noise of std {sigma} in [0, 1] pixel units (clipped) or a "
        "missing bottom half (black); PSNR over the whole 28x28 image, peak 1. Energy descent is "
        "the training sampler's update without noise (step 10, gradient clipped to +-0.03); the "
        "posterior variant takes plain gradient steps of 0.2 on "
        f"`E(x) + |x - y|^2 / (2 * {2 * sigma:g}^2)` (images in [-1, 1]).\n\n"
        f"{table}\nFigure: `benchmarks/figures/restore_grid.png`.\n"
    )
    print(section)
    append_results(section)


def default_model():
    return RUN_CHECKPOINT if os.path.isfile(RUN_CHECKPOINT) else EXPORT


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--max_steps", type=int, default=100)
    args = parser.parse_args()
    main(os.path.abspath(args.model), args.sigma, args.max_steps)
