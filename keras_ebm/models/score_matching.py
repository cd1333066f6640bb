"""Training an energy without MCMC: score matching.

The model's score ``s(x) = -grad_x E(x)`` is fitted to the data's score, so no Langevin
chain runs in the training loop (one forward pass and a double backward pass per step).

* ``objective="denoising"``: denoising score matching (Vincent 2011). Each example is
  perturbed by ``x~ = x + sigma * eps`` with ``sigma`` drawn from ``noise_levels`` and the
  loss is ``0.5 * ||sigma * s(x~) + eps||^2`` (the ``sigma^2``-weighted objective of
  Song & Ermon 2019, so every level contributes alike). The energy learns the data
  density smoothed by the noise. ``weight_power`` reweights the levels: the loss at level
  ``sigma`` is scaled by ``sigma^(weight_power - 2)`` (normalised to mean 1 over the
  levels), so each level's Fisher divergence ``||s(x~) - grad log p_sigma(x~)||^2`` weighs
  ``sigma^weight_power``. Below 2 the small levels set the density near the data while the
  large ones, whose noisy points are the only ones that reach far from it, still train the
  energy there. For Gaussian data and a quadratic energy (not annealed) the fit is the data
  smoothed by ``sigma_eff^2 = sum sigma^(p+2) / sum sigma^p`` (``p = weight_power``).
  With ``annealed=True`` the energy at level ``sigma`` is
  ``E(x) / sigma`` (Song & Ermon 2020), so one network serves every level, the loss becomes
  ``0.5 * ||eps - grad E(x~)||^2`` and samples come from annealed Langevin dynamics
  (:class:`~keras_ebm.samplers.langevin.AnnealedLangevinSampler`).
  With ``noise_conditional=True`` the network is told the level instead: its input carries
  one more channel on the last axis, filled with ``log sigma`` (NCSN's noise-conditional
  score network, here as an energy ``E(x, sigma)``). Each level then fits its own smoothed
  density, so the small levels can be sharp while the large ones train the energy far from
  the data. Samples come from annealed Langevin dynamics through ``E(x, sigma)``; the
  model's density is the one its probability-flow ODE carries down to the smallest level
  (:func:`~keras_ebm.samplers.flow.probability_flow_log_density`), not
  ``exp(-E(x, min(noise_levels)))``, whose energy away from the data no small level trains.
  With ``continuous_noise=True`` each example's ``sigma`` is drawn log-uniformly between the
  smallest and largest level rather than from the list, so that the energy is fitted at
  every level the flow passes through (the listed levels then set the annealed chain).
* ``objective="sliced"``: sliced score matching with variance reduction (Song et al.
  2019): ``v^T (ds/dx) v + 0.5 * ||s(x)||^2`` for random ``v ~ N(0, I)``, unbiased for the
  exact (unsmoothed) score-matching objective of Hyvärinen (2005).
"""

import math

import keras
import tensorflow as tf

from keras_ebm.models.base import NetworkEnergyModel, marginal_energy
from keras_ebm.samplers.flow import flow_log_density_fn
from keras_ebm.samplers.langevin import (AnnealedLangevinSampler, LangevinSampler,
                                       energy_gradient)

OBJECTIVES = ("denoising", "sliced")


@keras.saving.register_keras_serializable(package="keras_ebm")
class ScoreMatching(NetworkEnergyModel):
    """An energy ``E(x) = -logsumexp f(x)`` trained by denoising or sliced score matching.

    Args:
        network: a ``keras.Model`` mapping inputs to scores ``[batch, k]``.
        objective: ``"denoising"`` or ``"sliced"`` (see the module docstring).
        noise_levels: the ``sigma`` values of denoising score matching (one is drawn per
            example); ignored by ``"sliced"``.
        num_projections: random directions ``v`` per example for ``"sliced"``.
        weight_power: ``"denoising"`` only: level ``sigma`` weighs ``sigma^weight_power`` in
            the Fisher divergence (2: every level alike; see the module docstring).
        annealed: ``"denoising"`` only: the energy at level ``sigma`` is ``E(x) / sigma`` and
            :meth:`generate` anneals through the levels.
        noise_conditional: ``"denoising"`` only: the energy at level ``sigma`` is the
            network's on the input with a ``log sigma`` channel appended (so the network
            takes one channel more than the samples have) and :meth:`generate` anneals
            through the levels; excludes ``annealed``.
        continuous_noise: with ``noise_conditional``: ``sigma`` log-uniform between the
            smallest and largest of ``noise_levels`` (weighted ``sigma^weight_power`` alike).
        sampler: a :class:`LangevinSampler` (or its config) for :meth:`generate`; with
            ``annealed`` or ``noise_conditional``, an :class:`AnnealedLangevinSampler` over
            ``noise_levels`` with the model's ``noise_conditional`` (default:
            step ``0.1 * min(noise_levels)^2`` at the smallest level).
        value_range: data range; samples start from uniform noise in it.
        seed: integer seed of the noise.

    Example:

    >>> model = ScoreMatching(get_network("mlp", input_shape=(2,), num_outputs=1),
    ...                       noise_levels=(0.05, 0.1, 0.2), seed=0)
    >>> model.compile(keras.optimizers.Adam(1e-3))
    >>> model.fit(points, epochs=10)
    """

    metric_names = ("loss", "score_norm")

    def __init__(self, network, objective="denoising", noise_levels=(0.1,), num_projections=1,
                 weight_power=2.0, annealed=False, noise_conditional=False,
                 continuous_noise=False, sampler=None, value_range=(-1.0, 1.0), seed=None,
                 **kwargs):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}.")
        noise_levels = tuple(float(s) for s in noise_levels)
        if not noise_levels or min(noise_levels) <= 0:
            raise ValueError(f"noise_levels must be positive numbers, got {noise_levels}.")
        weight_power = float(weight_power)
        if not math.isfinite(weight_power):
            raise ValueError(f"weight_power must be a finite number, got {weight_power}.")
        if weight_power != 2.0 and objective != "denoising":
            raise ValueError("weight_power weighs the noise levels of objective='denoising'; "
                             "sliced score matching has none, so leave it at 2.")
        if int(num_projections) < 1:
            raise ValueError(f"num_projections must be >= 1, got {num_projections}.")
        if annealed and objective != "denoising":
            raise ValueError("annealed=True needs objective='denoising' (sliced score matching "
                             "has no noise levels).")
        if noise_conditional and objective != "denoising":
            raise ValueError("noise_conditional=True needs objective='denoising' (sliced score "
                             "matching has no noise levels).")
        if noise_conditional and annealed:
            raise ValueError("annealed=True (E(x) / sigma) and noise_conditional=True "
                             "(E(x, sigma)) are two ways to give each noise level its energy; "
                             "pick one.")
        if continuous_noise and not (noise_conditional and min(noise_levels) < max(noise_levels)):
            raise ValueError("continuous_noise=True draws sigma between the smallest and largest "
                             "noise level of a noise-conditional energy; it needs "
                             "noise_conditional=True and at least two different noise_levels.")
        if noise_conditional and network.input_shape[-1] < 2:
            raise ValueError(
                f"A noise-conditional network takes the samples plus one log-sigma channel on "
                f"the last axis, so that axis needs at least 2 entries; got input shape "
                f"{network.input_shape[1:]}. Build the network for the samples' shape with one "
                "more channel.")
        levelled = bool(annealed or noise_conditional)
        if levelled and sampler is None:
            sampler = AnnealedLangevinSampler(noise_levels, value_range=value_range,
                                              noise_conditional=noise_conditional)
        super().__init__(network, sampler, value_range=value_range, seed=seed, **kwargs)
        if noise_conditional:
            self.sample_shape = self.sample_shape[:-1] + (self.sample_shape[-1] - 1,)
        if isinstance(self.sampler, AnnealedLangevinSampler) != levelled or (
                levelled and self.sampler.noise_conditional != bool(noise_conditional)):
            raise ValueError(
                "annealed=True and noise_conditional=True sample with an "
                "AnnealedLangevinSampler over the noise levels (noise_conditional as the "
                "model's), and only such a model can use one; pass sampler=None or the matching "
                f"kind, got {type(self.sampler).__name__} with annealed={bool(annealed)}, "
                f"noise_conditional={bool(noise_conditional)}.")
        if levelled and set(self.sampler.noise_levels) != set(noise_levels):
            raise ValueError(f"The sampler's noise levels {self.sampler.noise_levels} differ from "
                             f"the model's {noise_levels}; pass the same levels to both.")
        self.objective = objective
        self.noise_levels = noise_levels
        self.num_projections = int(num_projections)
        self.weight_power = weight_power
        scales = [sigma ** (weight_power - 2.0) for sigma in noise_levels]
        self.level_weights = tuple(w * len(scales) / sum(scales) for w in scales)
        self.annealed = bool(annealed)
        self.noise_conditional = bool(noise_conditional)
        self.continuous_noise = bool(continuous_noise)
        self._flow_log_density = None  # compiled on first use
        self.finish_init()

    def default_sampler(self):
        return LangevinSampler(parameterization="langevin", step_size=1e-3, grad_clip=None,
                               value_range=self.value_range)

    def draw_levels(self, batch_size):
        """One noise level per example and its loss weight (``None``: all 1)."""
        seed, exponent = self.next_seed(), self.weight_power - 2.0
        if self.continuous_noise:
            low, high = math.log(min(self.noise_levels)), math.log(max(self.noise_levels))
            sigma = tf.exp(tf.random.stateless_uniform([batch_size], seed, low, high))
            if exponent == 0.0:
                return sigma, None
            # sigma^(p - 2) over its mean under the log-uniform draw.
            mean = (math.exp(exponent * high) - math.exp(exponent * low)) / (
                exponent * (high - low))
            return sigma, sigma**exponent / mean
        pick = tf.random.stateless_uniform([batch_size], seed, 0, len(self.noise_levels),
                                           tf.int32)
        weight = None if exponent == 0.0 else tf.gather(tf.constant(self.level_weights), pick)
        return tf.gather(tf.constant(self.noise_levels), pick), weight

    def with_level(self, x, sigma):
        """``x`` with a channel of ``log sigma`` appended on the last axis (the input of a
        noise-conditional network); ``sigma`` is a number or one per example."""
        sigma = tf.convert_to_tensor(sigma, x.dtype)
        log_sigma = tf.reshape(tf.math.log(sigma), [-1] + [1] * (len(x.shape) - 1))
        return tf.concat([x, tf.broadcast_to(log_sigma, tf.concat(
            [tf.shape(x)[:-1], [1]], 0))], axis=-1)

    def call(self, x, training=False):
        if self.noise_conditional:
            x = self.with_level(x, min(self.noise_levels))
        return self.network(x, training=training)

    def energy(self, x, training=False, sigma=None):
        """``E(x)``; with ``noise_conditional``, ``E(x, sigma)`` (``sigma``: a number or one per
        example; default the smallest level)."""
        if not self.noise_conditional:
            if sigma is not None:
                raise ValueError("Only a noise-conditional model (noise_conditional=True) takes "
                                 "the noise level; this energy has none: call energy(x).")
            return super().energy(x, training=training)
        sigma = min(self.noise_levels) if sigma is None else sigma
        return marginal_energy(self.network(self.with_level(x, sigma), training=training))

    def score(self, x, training=False, sigma=None):
        """``s(x) = -grad_x E(x)`` (at level ``sigma`` with ``noise_conditional``),
        differentiable with respect to the weights."""
        return -energy_gradient(lambda z: self.energy(z, training=training, sigma=sigma), x)[1]

    def compute_metrics(self, x, training=False):
        """The score-matching loss for a batch ``x`` and the mean score norm."""
        x = tf.convert_to_tensor(x, tf.float32)
        flat = lambda t: tf.reshape(t, [tf.shape(t)[0], -1])  # noqa: E731
        if self.objective == "denoising":
            sigma, weight = self.draw_levels(tf.shape(x)[0])
            sigma = tf.reshape(sigma, [-1] + [1] * (len(x.shape) - 1))
            eps = tf.random.stateless_normal(tf.shape(x), self.next_seed())
            score = self.score(x + sigma * eps, training=training,
                               sigma=sigma if self.noise_conditional else None)
            # sigma times the score at level sigma: -grad E(x~) when annealed (E(x~) / sigma).
            scaled_score = score if self.annealed else sigma * score
            loss = 0.5 * tf.reduce_sum(flat(scaled_score + eps) ** 2, axis=1)
            if weight is not None:
                loss = loss * weight
        else:
            x = tf.repeat(x, self.num_projections, axis=0)
            v = tf.random.stateless_normal(tf.shape(x), self.next_seed())
            with tf.GradientTape() as tape:
                tape.watch(x)
                score = self.score(x, training=training)
                projected = tf.reduce_sum(flat(score * v), axis=1)
            # v^T (ds/dx) v: the gradient of v^T s(x) is (ds/dx)^T v.
            jacobian_v = tape.gradient(projected, x)
            loss = tf.reduce_sum(flat(jacobian_v * v), axis=1) + 0.5 * tf.reduce_sum(
                flat(score) ** 2, axis=1)
        return {"loss": tf.reduce_mean(loss),
                "score_norm": tf.reduce_mean(tf.norm(flat(score), axis=1))}

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            metrics = self.compute_metrics(x, training=True)
            loss = metrics["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(loss, self.network.trainable_variables)
        self.optimizer.apply(grads, self.network.trainable_variables)
        return self.update_trackers(metrics, tf.shape(x)[0])

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.update_trackers(self.compute_metrics(x, training=False), tf.shape(x)[0])

    def density_energy(self, x):
        """The density at the smallest level when the energy depends on it:
        ``E(x) / min(noise_levels)`` when annealed; when noise conditional, minus the
        log-density the levels' probability-flow ODE gives there (up to a constant; for points
        ``[batch, dim]``, see :mod:`keras_ebm.samplers.flow`); else ``E(x)``."""
        if self.noise_conditional and min(self.noise_levels) < max(self.noise_levels):
            if len(self.sample_shape) != 1:
                raise ValueError(
                    f"The density of a noise-conditional model comes from its probability-flow "
                    f"ODE, for points [batch, dim]; these samples have shape {self.sample_shape}. "
                    "Use energy(x) for the energy at the smallest level, E(x, sigma_min).")
            if self._flow_log_density is None:
                self._flow_log_density = flow_log_density_fn(
                    self.level_energy, self.sample_shape[0], min(self.noise_levels),
                    max(self.noise_levels))
            return -self._flow_log_density(tf.convert_to_tensor(x, tf.float32))
        energy = self.energy(x)  # with one noise-conditional level the flow has nowhere to go
        return energy / min(self.noise_levels) if self.annealed else energy

    def generate(self, num_samples, steps=None, seed=0, snapshot_every=0):
        """Langevin samples from uniform noise in ``value_range`` (with ``snapshot_every``,
        also the chain's states every that many steps)."""
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        seeds = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 2)
        x = self.uniform_noise(int(num_samples), seeds[0])
        energy_fn = self.level_energy if self.noise_conditional else self.energy
        return self.sampler(energy_fn, x, seeds[1], steps=steps, snapshot_every=snapshot_every)

    def level_energy(self, x, sigma):
        """``E(x, sigma)`` of a noise-conditional model, as its annealed chain calls it."""
        return self.energy(x, sigma=sigma)

    def get_config(self):
        config = super().get_config()
        config.update(objective=self.objective, noise_levels=self.noise_levels,
                      num_projections=self.num_projections, weight_power=self.weight_power,
                      annealed=self.annealed, noise_conditional=self.noise_conditional,
                      continuous_noise=self.continuous_noise)
        return config
