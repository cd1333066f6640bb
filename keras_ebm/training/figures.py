"""Callbacks that draw what a model generates: sample grids, chain snapshots and, for toy
densities, energy landscapes and particle flows."""

import logging
import os

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import plotting
from keras_ebm.evaluation import distances

log = logging.getLogger("keras_ebm")


def sample_rows(model, real_images, num_per_row=10, steps=200, seed=0):
    """Rows of a sample grid: real images, samples from noise, buffer states and,
    for a classifier-EBM, one class-conditional row per class."""
    n = num_per_row
    rows = {"real": np.asarray(real_images[:n])}
    rows["noise -> E(x)"] = model.generate(n, steps=steps, seed=seed).numpy()
    if model.buffer is not None:  # None: an RBM trained by CD keeps no chains
        rng = np.random.default_rng(seed)
        buffer = model.buffer.samples
        shown = rng.choice(buffer.shape[0], min(n, buffer.shape[0]), replace=False)
        rows["buffer"] = tf.gather(buffer, shown).numpy()
    if model.num_outputs > 1:
        labels = np.repeat(np.arange(model.num_outputs, dtype=np.int32), n)
        conditional = model.generate(len(labels), steps=steps, labels=labels, seed=seed + 1)
        conditional = conditional.numpy().reshape((model.num_outputs, n) + model.sample_shape)
        for label, images in enumerate(conditional):
            rows[f"E(x, y={label})"] = images
    return rows


class SampleGrid(keras.callbacks.Callback):
    """Every ``every`` epochs (and at the end), save a PNG of real images,
    samples from noise, buffer states and class-conditional rows.

    Args:
        directory: where ``epoch_XXX.png`` and ``final.png`` go.
        real_images: a few real images in the model's value range.
        every: epochs between grids; 0 writes only the final grid.
        steps: Langevin steps from noise during training.
        final_steps: Langevin steps from noise for the final grid.
        tensorboard_dir: if set, also write the grid as a TensorBoard image.
    """

    def __init__(self, directory, real_images, every=1, steps=200, final_steps=None,
                 tensorboard_dir=None, seed=0):
        super().__init__()
        self.directory = directory
        self.real_images = real_images
        self.every = every
        self.steps = steps
        self.final_steps = final_steps or steps
        self.seed = seed
        self.writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None

    def on_epoch_end(self, epoch, logs=None):
        if self.every and (epoch + 1) % self.every == 0:
            self.write(f"epoch_{epoch + 1:03d}", self.steps, epoch + 1)

    def on_train_end(self, logs=None):
        self.write("final", self.final_steps, step=None)

    def write(self, name, steps, step):
        rows = sample_rows(self.model, self.real_images, steps=steps, seed=self.seed)
        path = os.path.join(self.directory, f"{name}.png")
        kind = self.model.sampler_name
        plotting.save_grid(rows, path, title=f"{name}: {steps} {kind} steps from noise")
        log.info("Saved sample grid %s", path)
        if self.writer is not None:
            with self.writer.as_default():
                mosaic = plotting.tile(list(rows.values()))
                tf.summary.image("samples", mosaic[None], step=step or 0)
            self.writer.flush()


class ChainSnapshots(keras.callbacks.Callback):
    """At the end of training (and every ``every`` epochs) save one row per
    Langevin chain from noise, one column per ``steps / columns`` steps."""

    def __init__(self, directory, num_chains=8, steps=200, columns=10, every=0, seed=0):
        super().__init__()
        self.directory = directory
        self.num_chains = num_chains
        self.steps = steps
        self.columns = columns
        self.every = every
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        if self.every and (epoch + 1) % self.every == 0:
            self.write(f"chain_epoch_{epoch + 1:03d}")

    def on_train_end(self, logs=None):
        self.write("chain_final")

    def write(self, name):
        snapshot_every = max(1, self.steps // self.columns)
        _, snapshots = self.model.generate(
            self.num_chains, steps=self.steps, seed=self.seed, snapshot_every=snapshot_every
        )
        path = os.path.join(self.directory, f"{name}.png")
        plotting.save_chain(snapshots.numpy(), snapshot_every, path,
                            title=f"{self.model.sampler_name} chains "
                                  "from noise (columns: step)")
        log.info("Saved Langevin chain snapshots %s", path)


class DensityPlots(keras.callbacks.Callback):
    """For a toy density (:mod:`keras_ebm.data.toy`), save at the end of training (and every
    ``every`` epochs) ``<name>_landscape.png`` (learned energy, grid-normalised
    ``p_theta`` and the true density), ``<name>_flow.png`` (particles from uniform
    noise over ``steps`` Langevin steps) and ``<name>_histogram.png`` (where the
    particles end, against the true density)."""

    def __init__(self, directory, density, every=0, steps=500, num_particles=2000,
                 num_snapshots=6, resolution=200, seed=0):
        super().__init__()
        self.directory = directory
        self.density = density
        self.every = every
        self.steps = steps
        self.num_particles = num_particles
        self.num_snapshots = num_snapshots
        self.resolution = resolution
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        if self.every and (epoch + 1) % self.every == 0:
            self.write(f"epoch_{epoch + 1:03d}")

    def on_train_end(self, logs=None):
        self.write("final")

    def write(self, name):
        density, box, dim = self.density, self.density.box, self.density.dim
        points, centres = distances.grid_points(box, dim, self.resolution)
        cell = ((box[1] - box[0]) / self.resolution) ** dim
        shape = [self.resolution] * dim
        energy = distances.grid_values(self.model.density_energy, points)
        learned = distances.log_masses_of(-energy, dim, self.resolution)
        energy = energy.reshape(shape)
        truth = distances.grid_log_masses(density.log_prob, box, dim, self.resolution)
        path = os.path.join(self.directory, f"{name}_%s.png")
        plotting.save_landscape(centres, {"true p": np.exp(truth) / cell,
                                          "learned p_theta": np.exp(learned) / cell},
                                energy, box, path % "landscape", title=f"{density.name}: {name}")
        every = max(1, self.steps // (self.num_snapshots - 1))
        samples, snapshots = self.model.generate(self.num_particles, steps=self.steps,
                                                 seed=self.seed, snapshot_every=every)
        plotting.save_particle_flow(snapshots.numpy()[:, :300 if dim == 1 else None], every, box,
                                    path % "flow", title="Langevin particles from uniform noise")
        plotting.save_sample_histogram(samples.numpy(), centres, np.exp(truth) / cell, box,
                                       path % "histogram",
                                       title=f"{self.steps} Langevin steps from noise")
        log.info("Saved density plots %s", path % "{landscape,flow,histogram}")
