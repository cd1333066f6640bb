"""The density a noise-conditional energy defines, by its probability-flow ODE.

A family of energies ``E(x, sigma)``, one per level of Gaussian noise added to the data
(``p_sigma = p * N(0, sigma^2 I)``), moves points along the probability-flow ODE of the
variance-exploding diffusion (Song et al. 2021), ``dx / dsigma = sigma * grad_x E(x, sigma)``,
which carries ``p_sigma_min`` onto ``p_sigma_max``. Along it
``d log p_sigma(x(sigma)) / dsigma = -sigma * laplacian_x E(x(sigma), sigma)``, so

    log p_sigma_min(x) = -E(x(sigma_max), sigma_max) + int sigma * laplacian E dsigma + const.

Unlike ``-E(x, sigma_min)`` this is set by the large levels wherever the small ones were never
trained (far from the data), since their share of the integral shrinks with ``sigma``.
"""

import math

import tensorflow as tf

MAX_EXACT_DIMS = 64


def probability_flow_log_density(level_energy, x, sigma_min, sigma_max, steps=25):
    """``log p_sigma_min(x)`` up to one constant for all ``x``, by the probability-flow ODE.

    Args:
        level_energy: ``(x, sigma) -> [batch]`` energies of the data smoothed at ``sigma`` (a
            scalar tensor; levels between the trained ones are the network's interpolation).
        x: points ``[batch, dim]``; the Laplacian is exact (one second-derivative pass per
            coordinate), so ``dim`` is at most 64.
        sigma_min, sigma_max: the noise levels at the ends of the flow.
        steps: Runge-Kutta (4th order) steps, evenly spaced in ``log sigma``.

    Returns:
        ``[batch]`` log-densities (add a constant to normalise).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    if len(x.shape) != 2:
        raise ValueError(_points_message(f"shape {tuple(x.shape)}."))
    return flow_log_density_fn(level_energy, x.shape[-1], sigma_min, sigma_max, steps)(x)


def flow_log_density_fn(level_energy, dim, sigma_min, sigma_max, steps=25):
    """:func:`probability_flow_log_density` compiled once for points of ``dim`` coordinates
    (any batch size): a function ``x -> [batch]``."""
    if not 0 < int(dim) <= MAX_EXACT_DIMS:
        raise ValueError(_points_message(f"dim {dim}. Score such data by the energy itself."))
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"Need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}.")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    low, high, steps = math.log(sigma_min), math.log(sigma_max), int(steps)

    @tf.function(input_signature=[tf.TensorSpec([None, int(dim)], tf.float32)])
    def log_density(x):
        return _integrate(level_energy, x, low, high, steps)

    return log_density


def _points_message(got):
    return (f"The flow density takes points [batch, dim] with dim <= {MAX_EXACT_DIMS} (its "
            f"Laplacian is exact, one pass per coordinate); got {got}")


def _velocity_and_divergence(level_energy, x, log_sigma):
    """``d x / d log sigma = sigma^2 grad E`` and its divergence ``sigma^2 laplacian E``."""
    sigma = tf.exp(log_sigma)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            energy = level_energy(x, sigma)
        grad = inner.gradient(energy, x)
    laplacian = tf.linalg.trace(outer.batch_jacobian(grad, x))
    return sigma**2 * grad, sigma**2 * laplacian


def _integrate(level_energy, x, log_sigma_min, log_sigma_max, steps):
    h = (log_sigma_max - log_sigma_min) / steps
    log_density = tf.zeros(tf.shape(x)[:1])
    for i in tf.range(steps):  # classic Runge-Kutta on (x, log density)
        u = log_sigma_min + tf.cast(i, tf.float32) * h
        v1, d1 = _velocity_and_divergence(level_energy, x, u)
        v2, d2 = _velocity_and_divergence(level_energy, x + 0.5 * h * v1, u + 0.5 * h)
        v3, d3 = _velocity_and_divergence(level_energy, x + 0.5 * h * v2, u + 0.5 * h)
        v4, d4 = _velocity_and_divergence(level_energy, x + h * v3, u + h)
        x = x + h / 6.0 * (v1 + 2.0 * v2 + 2.0 * v3 + v4)
        log_density += h / 6.0 * (d1 + 2.0 * d2 + 2.0 * d3 + d4)
    return log_density - level_energy(x, tf.exp(log_sigma_max))
