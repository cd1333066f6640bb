"""Toy densities with exact log-densities: ``--dataset toy:NAME`` trains on draws from one
of ``DENSITIES``; their distances to a model are in :mod:`keras_ebm.evaluation.distances`.

All densities are ``tfp.distributions`` objects. Two moons and rings are
mixtures of isotropic Gaussians spaced evenly along the curves (spacing at
most half their width, so the density ripples along a curve by < 1e-30), so
their log-density is exact for the data drawn from them.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_ebm.data.splits import Splits

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class ToyDensity:
    """A known density on ``[low, high]^dim`` (``box = (low, high)``)."""

    name: str
    distribution: tfd.Distribution
    box: tuple

    @property
    def dim(self):
        return int(self.distribution.event_shape[0])

    def log_prob(self, x):
        """Exact log-density of points ``[N, dim]``."""
        return self.distribution.log_prob(tf.convert_to_tensor(x, tf.float32))

    def sample(self, num_samples, seed=0):
        """``num_samples`` exact draws, float32 ``[num_samples, dim]``; deterministic per seed."""
        seed = tf.constant([seed, 0], tf.int32)
        return self.distribution.sample(int(num_samples), seed=seed).numpy().astype(np.float32)


def _gaussian_mixture(weights, means, stds):
    means = np.asarray(means, np.float32)
    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=(np.asarray(weights) / np.sum(weights)).astype(np.float32)),
        tfd.MultivariateNormalDiag(
            loc=means, scale_diag=np.broadcast_to(np.asarray(stds, np.float32)[:, None],
                                                  means.shape).copy()),
    )


def _along_curves(points_per_curve, std):
    points = np.concatenate(points_per_curve).astype(np.float32)
    return _gaussian_mixture(np.ones(len(points)), points, np.full(len(points), std))


def gaussian1d():
    """N(5, 1): the 1-D example of the Langevin Monte Carlo tutorial seed."""
    return ToyDensity("gaussian1d", tfd.MultivariateNormalDiag([5.0], [1.0]), (0.0, 10.0))


def mixture1d():
    """0.3 N(-2, 0.5^2) + 0.7 N(1.5, 0.8^2)."""
    return ToyDensity("mixture1d", _gaussian_mixture([0.3, 0.7], [[-2.0], [1.5]], [0.5, 0.8]),
                      (-5.0, 5.0))


def two_moons(std=0.2, points_per_moon=80):
    """scikit-learn's two moons, centred and scaled by 2, width ``std``."""
    t = np.linspace(0.0, np.pi, points_per_moon)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    moons = [2.0 * (m - [0.5, 0.25]) for m in (upper, lower)]
    return ToyDensity("two_moons", _along_curves(moons, std), (-4.0, 4.0))


def rings(radii=(1.0, 2.0, 3.0), std=0.15, points_per_unit_radius=90):
    """Concentric circles, uniform along their length (outer rings hold more mass)."""
    circles = []
    for r in radii:
        angle = np.linspace(0.0, 2 * np.pi, int(points_per_unit_radius * r), endpoint=False)
        circles.append(r * np.stack([np.cos(angle), np.sin(angle)], axis=1))
    return ToyDensity("rings", _along_curves(circles, std), (-4.0, 4.0))


def eight_gaussians(radius=2.5, std=0.25):
    """Eight equal Gaussians on a circle."""
    angle = np.arange(8) * np.pi / 4
    means = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return ToyDensity("eight_gaussians", _gaussian_mixture(np.ones(8), means, np.full(8, std)),
                      (-4.0, 4.0))


def checkerboard():
    """Uniform on the 8 dark squares of a 4x4 board of side-2 squares on [-4, 4]^2."""
    corners = np.array([(x, y) for x in range(4) for y in range(4) if (x + y) % 2 == 0],
                       np.float32) * 2.0 - 4.0
    squares = tfd.Independent(tfd.Uniform(low=corners, high=corners + 2.0), 1)
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=np.zeros(8, np.float32)), squares)
    return ToyDensity("checkerboard", mixture, (-4.0, 4.0))


DENSITIES = {f.__name__: f for f in (gaussian1d, mixture1d, two_moons, rings, eight_gaussians,
                                     checkerboard)}


def get_density(name):
    if name not in DENSITIES:
        raise ValueError(f"Unknown toy density {name!r}; choose one of {', '.join(DENSITIES)}.")
    return DENSITIES[name]()


def load_splits(name, num_train=20000, validation_size=2000, num_test=5000, subset=None, seed=0):
    """Exact draws from toy density ``name`` as :class:`keras_ebm.data.Splits`
    (float32 points ``[N, dim]``, all labels 0, ``value_range`` the density's box)."""
    density = get_density(name)
    x_train = density.sample(subset or num_train, seed=seed)
    x_val = density.sample(validation_size, seed=seed + 1) if validation_size else \
        np.zeros((0, density.dim), np.float32)
    x_test = density.sample(num_test, seed=seed + 2)
    labels = [np.zeros(len(x), np.int32) for x in (x_train, x_val, x_test)]
    return Splits(x_train, labels[0], x_val, labels[1], x_test, labels[2],
                  value_range=density.box)
