"""Bernoulli-Bernoulli restricted Boltzmann machine, trained by CD-k or persistent CD (its
partition function and log-likelihood: :mod:`keras_ebm.evaluation.likelihood`).

Energy of visible ``v`` and hidden ``h`` (both binary):
``E(v, h) = -b_v . v - b_h . h - v W h``; summing out ``h`` gives the free energy
``F(v) = -b_v . v - sum_j softplus(v W + b_h)_j`` and ``p(v) = exp(-F(v)) / Z``.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_ebm.models.base import EnergyModel
from keras_ebm.samplers.buffer import ReplayBuffer


def bernoulli(probs, seed):
    """Stateless Bernoulli draws with success probabilities ``probs``."""
    return tf.cast(tf.random.stateless_uniform(tf.shape(probs), seed, dtype=probs.dtype) < probs,
                   probs.dtype)


def base_rate_logits(data_mean):
    """Log-odds of pixel means, clipped to [1e-3, 1 - 1e-3]: the visible biases of the
    independent-pixel (base-rate) model."""
    data_mean = np.clip(np.reshape(np.asarray(data_mean, np.float64), [-1]), 1e-3, 1 - 1e-3)
    return np.log(data_mean) - np.log1p(-data_mean)


@keras.saving.register_keras_serializable(package="keras_ebm")
class RBM(EnergyModel):
    """Bernoulli-Bernoulli RBM trained with CD-k (Hinton 2002) or PCD (Tieleman 2008).

    Images in ``value_range`` are read as per-pixel probabilities and binarised
    stochastically at every step (a fresh draw each time an image is seen).
    Each training step runs ``cd_steps`` of block Gibbs sampling ``v -> h -> v``
    from the data (CD) or from ``num_chains`` persistent chains (PCD) and minimises
    ``mean F(v_data) - mean F(v_sample)``, whose gradient is the CD/PCD gradient.
    The persistent chains live in a :class:`ReplayBuffer` (no restarts, every
    chain advanced every step), so ``.keras`` files and ``BackupAndRestore`` keep them.

    Metrics: ``recon_error`` (mean squared error per pixel between ``v`` and
    ``p(v | h)``, ``h ~ p(h | v)``), ``pseudo_log_likelihood`` (nats per image,
    the one-random-bit-flip estimate of scikit-learn's ``BernoulliRBM.score_samples``),
    ``energy_real`` / ``energy_sample`` (mean free energies) and, in training,
    ``loss = energy_real - energy_sample``.

    Args:
        visible_shape: shape of one image, e.g. ``(28, 28, 1)``; flattened inside.
        num_hidden: number of hidden units.
        cd_steps: Gibbs steps per training step (the k of CD-k / PCD-k).
        persistent: PCD (chains kept across steps) instead of CD (chains start at the data).
        num_chains: number of persistent chains (PCD).
        temperatures: with PCD, the number of replicas of the chains in a parallel-tempering
            ladder (1: plain PCD). Replica ``r`` samples ``p(v, h)^beta_r`` with ``beta``
            spaced evenly from 1 down to ``min_beta``; adjacent replicas swap states (see
            :meth:`tempered_gibbs`) and the swap acceptance is a training metric.
        min_beta: the hottest replica's inverse temperature, in (0, 1).
        sample_steps: default Gibbs steps of :meth:`generate`.
        value_range: pixel range of the input images (and of generated images).
        seed: integer seed of the weights' initialisation and all Bernoulli draws.

    Example:

    >>> rbm = RBM((28, 28, 1), num_hidden=500, persistent=True, num_chains=100, seed=0)
    >>> rbm.compile(keras.optimizers.Adam(1e-3))
    >>> rbm.fit(images_dataset, epochs=5)
    >>> digits = rbm.generate(16, steps=1000, seed=0)
    """

    sampler_name = "Gibbs"  # for figure titles
    metric_names = ("loss", "recon_error", "pseudo_log_likelihood", "energy_real",
                    "energy_sample")

    def __init__(self, visible_shape, num_hidden=500, cd_steps=1, persistent=False,
                 num_chains=100, sample_steps=1000, temperatures=1, min_beta=0.5,
                 value_range=(-1.0, 1.0), seed=None, **kwargs):
        super().__init__(visible_shape, value_range=value_range, seed=seed, **kwargs)
        for name, value in (("num_hidden", num_hidden), ("cd_steps", cd_steps),
                            ("num_chains", num_chains), ("temperatures", temperatures)):
            if int(value) <= 0:
                raise ValueError(f"{name} must be > 0, got {value}.")
        if temperatures > 1 and not persistent:
            raise ValueError("temperatures > 1 tempers persistent chains; pass persistent=True.")
        if not 0 < min_beta < 1:
            raise ValueError(f"min_beta must be in (0, 1), got {min_beta}.")
        self.temperatures = int(temperatures)
        self.min_beta = float(min_beta)
        self.visible_shape = self.sample_shape
        self.num_visible = int(np.prod(self.visible_shape))
        self.num_hidden = int(num_hidden)
        self.cd_steps = int(cd_steps)
        self.persistent = bool(persistent)
        self.num_chains = int(num_chains)
        self.sample_steps = int(sample_steps)
        # Small random weights, zero biases (Hinton 2010, "A practical guide to training RBMs").
        self.kernel = self.add_weight(
            shape=(self.num_visible, self.num_hidden), name="kernel",
            initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
        )
        self.visible_bias = self.add_weight(shape=(self.num_visible,), name="visible_bias",
                                            initializer="zeros")
        self.hidden_bias = self.add_weight(shape=(self.num_hidden,), name="hidden_bias",
                                           initializer="zeros")
        self.buffer = None
        if self.persistent:
            self.buffer = ReplayBuffer(size=self.num_chains, sample_shape=self.visible_shape,
                                       reinit_prob=0.0, value_range=self.value_range, seed=seed,
                                       name="persistent_chains")
        self.hot_chains = None  # the replicas above beta = 1, kept like the buffer
        if self.temperatures > 1:
            self.metric_names = RBM.metric_names + ("swap_acceptance",)
            self.betas = np.linspace(1.0, self.min_beta, self.temperatures).astype("float32")
            self.hot_chains = self.add_weight(
                shape=(self.temperatures - 1, self.num_chains, self.num_visible),
                name="hot_chains", trainable=False,
                initializer=keras.initializers.RandomUniform(0.0, 1.0, seed=seed))
        self._compiled_gibbs = tf.function(self._gibbs, reduce_retracing=True)
        self.finish_init()

    def call(self, x):
        """Hidden-unit probabilities ``p(h = 1 | v)`` of images ``x`` (features)."""
        return tf.sigmoid(self.hidden_logits(self.to_visible(x)))

    # --- images <-> visible vectors ---------------------------------------------------
    def to_visible(self, x):
        """Images in ``value_range`` -> flat pixel probabilities in [0, 1]."""
        low, high = self.value_range
        x = tf.reshape(tf.convert_to_tensor(x, self.kernel.dtype), [-1, self.num_visible])
        return (x - low) / (high - low)

    def to_images(self, v):
        """Flat visible vectors in [0, 1] -> images in ``value_range``."""
        low, high = self.value_range
        return tf.reshape(low + (high - low) * v, (-1,) + self.visible_shape)

    def initialize_visible_bias(self, images):
        """Set ``b_v`` to the log-odds of the pixel means of ``images`` (or of their mean
        image), as Hinton (2010, "A practical guide to training RBMs") advises: pixels that
        are never on start firmly off, instead of at 1/2 where spurious modes can grow."""
        data_mean = tf.reduce_mean(self.to_visible(images), axis=0).numpy()
        self.visible_bias.assign(base_rate_logits(data_mean).astype("float32"))

    def binarize(self, x, seed):
        """Images -> binary visible vectors, each pixel 1 with its intensity as probability."""
        return bernoulli(self.to_visible(x), seed)

    # --- energy and conditionals -------------------------------------------------------
    def hidden_logits(self, v):
        return tf.matmul(v, self.kernel) + self.hidden_bias

    def visible_logits(self, h):
        return tf.matmul(h, self.kernel, transpose_b=True) + self.visible_bias

    def free_energy(self, v):
        """``F(v) = -b_v . v - sum_j softplus(v W + b_h)_j`` for visible vectors ``[batch, D]``."""
        return (-tf.linalg.matvec(v, self.visible_bias)
                - tf.reduce_sum(tf.nn.softplus(self.hidden_logits(v)), axis=-1))

    def energy(self, x, training=False):
        """Free energy ``F(v)`` of images ``x`` in ``value_range`` read as pixel probabilities."""
        return self.free_energy(self.to_visible(x))

    def log_likelihood(self, v, log_z):
        """``log p(v) = -F(v) - log Z`` in nats, given a (e.g. AIS) estimate of ``log Z``."""
        return -self.free_energy(v) - log_z

    def gibbs_step(self, v, seed):
        """One block Gibbs step ``h ~ p(h | v)``, ``v ~ p(v | h)``; returns ``(v, p(v | h))``."""
        seeds = tf.random.experimental.stateless_split(seed, 2)
        h = bernoulli(tf.sigmoid(self.hidden_logits(v)), seeds[0])
        v_mean = tf.sigmoid(self.visible_logits(h))
        return bernoulli(v_mean, seeds[1]), v_mean

    def gibbs(self, v, k, seed):
        """``k`` block Gibbs steps from visible states ``v`` ``[batch, D]`` (binary or
        probabilities) with seed ``[2]``; returns the final ``(v, p(v | h))``."""
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        k = tf.convert_to_tensor(k, tf.int32)
        run = self._gibbs if tf.inside_function() else self._compiled_gibbs
        return run(tf.convert_to_tensor(v, self.kernel.dtype), k, seed)

    def _gibbs(self, v, k, seed):
        def body(i, v, v_mean):
            v, v_mean = self.gibbs_step(v, tf.random.experimental.stateless_fold_in(seed, i))
            return i + 1, v, v_mean

        _, v, v_mean = tf.while_loop(lambda i, *_: i < k, body, (tf.constant(0), v, v),
                                     parallel_iterations=1)
        return v, v_mean

    # --- parallel tempering ---------------------------------------------------------------
    def joint_energy(self, v, h):
        """``E(v, h) = -b_v . v - b_h . h - v W h`` for states ``[..., D]`` and ``[..., H]``."""
        return (-tf.linalg.matvec(v, self.visible_bias) - tf.linalg.matvec(h, self.hidden_bias)
                - tf.reduce_sum(tf.matmul(v, self.kernel) * h, axis=-1))

    def tempered_gibbs(self, v, betas, steps, seed):
        """Parallel tempering (replica exchange) of block Gibbs chains.

        ``v``: binary states ``[R, batch, D]``, replica ``r`` at inverse temperature
        ``betas[r]`` (``p_beta(v, h) ~ exp(-beta E(v, h))``; ``betas[0]`` is 1, the model; hotter
        replicas mix across modes). Each step runs one Gibbs step in every replica, then
        proposes to swap the states of adjacent replicas (even and odd pairs in turn, starting
        with either at random, so every pair is proposed even when ``steps`` is 1), accepted
        with probability ``min(1, exp((b_r - b_r+1)(E_r - E_r+1)))``.
        Returns the final states, and the accepted and proposed swaps of each adjacent pair
        ``[R - 1]`` (their ratio is the pair's acceptance rate).
        """
        betas = tf.convert_to_tensor(betas, self.kernel.dtype)
        num_replicas = int(betas.shape[0])
        scale = betas[:, None, None]
        pair = tf.range(num_replicas - 1)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        # Two replicas have no odd pair: start with the even one.
        first_parity = tf.random.stateless_uniform(
            [], tf.random.experimental.stateless_fold_in(seed, -1),
            maxval=2 if num_replicas > 2 else 1, dtype=tf.int32)

        def body(i, v, accepted, proposed):
            seeds = tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(seed, i), 3)
            h = bernoulli(tf.sigmoid(scale * self.hidden_logits(v)), seeds[0])
            v = bernoulli(tf.sigmoid(scale * self.visible_logits(h)), seeds[1])
            energy = self.joint_energy(v, h)  # [R, batch]
            log_ratio = (betas[:-1, None] - betas[1:, None]) * (energy[:-1] - energy[1:])
            uniform = tf.random.stateless_uniform(tf.shape(log_ratio), seeds[2],
                                                  dtype=log_ratio.dtype)
            active = tf.cast(pair % 2 == (i + first_parity) % 2, log_ratio.dtype)[:, None]
            swap = tf.cast(tf.math.log(uniform) < log_ratio, log_ratio.dtype) * active
            # Replica r takes r+1's state where pair r swaps, r+1 takes r's.
            pad = tf.zeros_like(swap[:1])
            from_above = tf.concat([swap, pad], 0)[..., None]
            from_below = tf.concat([pad, swap], 0)[..., None]
            above = tf.concat([v[1:], v[-1:]], 0)
            below = tf.concat([v[:1], v[:-1]], 0)
            v = v * (1 - from_above - from_below) + above * from_above + below * from_below
            return (i + 1, v, accepted + tf.reduce_sum(swap, axis=1),
                    proposed + tf.reduce_sum(active, axis=1) * tf.cast(tf.shape(v)[1], v.dtype))

        zeros = tf.zeros([num_replicas - 1], self.kernel.dtype)
        _, v, accepted, proposed = tf.while_loop(
            lambda i, *_: i < steps, body,
            (tf.constant(0), tf.convert_to_tensor(v, self.kernel.dtype), zeros, zeros),
            parallel_iterations=1)
        return v, accepted, proposed

    # --- sampling ----------------------------------------------------------------------
    def negatives(self, v):
        """Negative samples for a training step on binary data ``v``, and the sampler's own
        metrics (the swap acceptance of tempered chains)."""
        if not self.persistent:
            return self.gibbs(v, self.cd_steps, self.next_seed())[0], {}
        chains = self.to_visible(self.buffer.samples)
        sampler_metrics = {}
        if self.hot_chains is None:
            samples = self.gibbs(chains, self.cd_steps, self.next_seed())[0]
        else:
            replicas = tf.concat([chains[None], tf.round(self.hot_chains)], 0)
            replicas, accepted, proposed = self.tempered_gibbs(
                replicas, self.betas, self.cd_steps, self.next_seed())
            self.hot_chains.assign(replicas[1:])
            samples = replicas[0]
            sampler_metrics["swap_acceptance"] = (tf.reduce_sum(accepted)
                                                  / tf.reduce_sum(proposed))
        self.buffer.update(tf.range(self.num_chains), self.to_images(samples))
        return samples, sampler_metrics

    def generate(self, num_samples, steps=None, seed=0, snapshot_every=0):
        """Images from Gibbs chains started at uniform random binary states.

        Returns ``p(v | h)`` after the last step as images in ``value_range``; with
        ``snapshot_every > 0`` also ``[steps // snapshot_every + 1, num_samples, *visible_shape]``
        snapshots of ``p(v | h)`` (the first is the random start).
        """
        steps = self.sample_steps if steps is None else int(steps)
        seed = tf.constant([seed, 0], tf.int64)
        fold_in = tf.random.experimental.stateless_fold_in
        v = bernoulli(tf.fill([int(num_samples), self.num_visible], 0.5), fold_in(seed, 0))
        if not snapshot_every:
            return self.to_images(self.gibbs(v, steps, fold_in(seed, 1))[1])
        snapshots, v_mean = [self.to_images(v)], v
        for i in range(steps // snapshot_every):  # one compiled chain segment per snapshot
            v, v_mean = self.gibbs(v, snapshot_every, fold_in(seed, i + 1))
            snapshots.append(self.to_images(v_mean))
        if steps % snapshot_every:
            v_mean = self.gibbs(v, steps % snapshot_every, fold_in(seed, -1))[1]
        return self.to_images(v_mean), tf.stack(snapshots)

    # --- objective and thin train / test steps -------------------------------------------
    def pseudo_log_likelihood(self, v, seed):
        """``D * log sigmoid(F(v') - F(v))`` with ``v'`` = ``v`` with one random bit flipped
        (a stochastic estimate of ``sum_i log p(v_i | v_-i)``, as in scikit-learn)."""
        bit = tf.random.stateless_uniform([tf.shape(v)[0]], seed, maxval=self.num_visible,
                                          dtype=tf.int32)
        flip = tf.one_hot(bit, self.num_visible, dtype=v.dtype)
        flipped = v + flip - 2.0 * v * flip
        return self.num_visible * tf.math.log_sigmoid(self.free_energy(flipped)
                                                      - self.free_energy(v))

    def compute_metrics(self, v, negatives=None):
        """Metrics of binary data ``v``; with ``negatives`` also the CD loss."""
        seeds = tf.random.experimental.stateless_split(self.next_seed(), 2)
        reconstruction = self.gibbs_step(v, seeds[0])[1]
        energy_real = tf.reduce_mean(self.free_energy(v))
        results = {
            "recon_error": tf.reduce_mean(tf.square(v - reconstruction)),
            "pseudo_log_likelihood": tf.reduce_mean(self.pseudo_log_likelihood(v, seeds[1])),
            "energy_real": energy_real,
        }
        if negatives is not None:
            results["energy_sample"] = tf.reduce_mean(self.free_energy(negatives))
            results["loss"] = energy_real - results["energy_sample"]
        return results

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v = self.binarize(x, self.next_seed())
        # The chains are not differentiated through: their end states are constants.
        negatives, sampler_metrics = self.negatives(v)
        negatives = tf.stop_gradient(negatives)
        with tf.GradientTape() as tape:
            metrics = dict(self.compute_metrics(v, negatives), **sampler_metrics)
            loss = metrics["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self.update_trackers(metrics, tf.shape(v)[0])

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v = self.binarize(x, self.next_seed())
        return self.update_trackers(self.compute_metrics(v), tf.shape(v)[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            visible_shape=self.visible_shape,
            num_hidden=self.num_hidden,
            cd_steps=self.cd_steps,
            persistent=self.persistent,
            num_chains=self.num_chains,
            sample_steps=self.sample_steps,
            temperatures=self.temperatures,
            min_beta=self.min_beta,
        )
        return config
