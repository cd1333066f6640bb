"""The probability-flow density of a noise-conditional energy against closed forms."""

import numpy as np
import pytest
import tensorflow as tf

from keras_ebm.evaluation import distances
from keras_ebm.samplers.flow import probability_flow_log_density

MEANS = np.array([-2.0, 2.0], np.float32)
WEIGHTS = np.array([0.3, 0.7], np.float32)
STD = 0.3


def mixture_energy(x, sigma):
    """Minus the log-density of the 1-D two-Gaussian mixture smoothed at ``sigma``."""
    variance = STD**2 + sigma**2
    log_terms = (np.log(WEIGHTS) - 0.5 * (x - MEANS) ** 2 / variance
                 - 0.5 * tf.math.log(2 * np.pi * variance))
    return -tf.reduce_logsumexp(log_terms, axis=-1)


def test_flow_density_of_a_gaussian_family_is_the_smallest_levels_gaussian():
    mean, variance = tf.constant([1.0, -0.5]), 0.3
    energy = lambda x, sigma: tf.reduce_sum((x - mean) ** 2, -1) / (2 * (variance + sigma**2))  # noqa: E731
    x = tf.constant(np.random.default_rng(0).normal(size=(500, 2)).astype("float32") * 2)
    flow = probability_flow_log_density(energy, x, 0.02, 5.0, steps=50).numpy()
    exact = -np.sum((x.numpy() - mean.numpy()) ** 2, -1) / (2 * (variance + 0.02**2))
    np.testing.assert_allclose(flow - flow.mean(), exact - exact.mean(), atol=2e-3)


def test_flow_density_keeps_the_mode_weights_where_the_smallest_level_is_wrong():
    # The small levels get a spurious 40-nat well between the modes (where their
    # noisy points never go). exp(-E(x, sigma_min)) puts its mass there; the flow barely moves.
    def spoiled(x, sigma):
        well = 40.0 * tf.exp(-0.5 * (x[:, 0] / 0.2) ** 2) * tf.cast(sigma < 0.03, tf.float32)
        return mixture_energy(x, sigma) - well

    box, resolution = (-4.0, 4.0), 400
    truth = np.exp(distances.grid_log_masses(lambda x: -mixture_energy(x, 0.02), box, 1,
                                             resolution))
    flow = np.exp(distances.grid_log_masses(
        lambda x: probability_flow_log_density(spoiled, x, 0.02, 2.0), box, 1, resolution))
    at_smallest = np.exp(distances.grid_log_masses(lambda x: -spoiled(x, 0.02), box, 1,
                                                   resolution))
    assert distances.total_variation(truth, flow) < 0.02
    assert distances.total_variation(truth, at_smallest) > 0.5
    # The modes keep their weights 0.3 and 0.7.
    assert flow[:resolution // 2].sum() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("kwargs, message", [
    ({"x": tf.zeros([2, 28, 28, 1])}, "points \\[batch, dim\\] with dim <= 64"),
    ({"sigma_min": 1.0, "sigma_max": 0.5}, "0 < sigma_min < sigma_max"),
    ({"steps": 0}, "steps must be >= 1"),
])
def test_bad_flow_arguments_are_refused(kwargs, message):
    arguments = {"level_energy": mixture_energy, "x": tf.zeros([2, 1]), "sigma_min": 0.1,
                 "sigma_max": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        probability_flow_log_density(**arguments)
