"""Bernoulli-Bernoulli restricted Boltzmann machine, trained by CD-k or persistent CD,
and its partition function by annealed importance sampling (AIS).

Energy of visible ``v`` and hidden ``h`` (both binary):
``E(v, h) = -b_v . v - b_h . h - v W h``; summing out ``h`` gives the free energy
``F(v) = -b_v . v - sum_j softplus(v W + b_h)_j`` and ``p(v) = exp(-F(v)) / Z``.
"""

import dataclasses
import itertools

import keras
import numpy as np
import tensorflow as tf

from keras_ebm.base import EnergyModel
from keras_ebm.buffer import ReplayBuffer


def bernoulli(probs, seed):
    """Stateless Bernoulli draws with success probabilities ``probs``."""
    return tf.cast(tf.random.stateless_uniform(tf.shape(probs), seed, dtype=probs.dtype) < probs,
                   probs.dtype)


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
                 num_chains=100, sample_steps=1000, value_range=(-1.0, 1.0), seed=None, **kwargs):
        super().__init__(visible_shape, value_range=value_range, seed=seed, **kwargs)
        for name, value in (("num_hidden", num_hidden), ("cd_steps", cd_steps),
                            ("num_chains", num_chains)):
            if int(value) <= 0:
                raise ValueError(f"{name} must be > 0, got {value}.")
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

    # --- sampling ----------------------------------------------------------------------
    def negatives(self, v):
        """Negative samples for a training step on binary data ``v``."""
        if not self.persistent:
            return self.gibbs(v, self.cd_steps, self.next_seed())[0]
        samples = self.gibbs(self.to_visible(self.buffer.samples), self.cd_steps,
                             self.next_seed())[0]
        self.buffer.update(tf.range(self.num_chains), self.to_images(samples))
        return samples

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
        negatives = tf.stop_gradient(self.negatives(v))
        with tf.GradientTape() as tape:
            metrics = self.compute_metrics(v, negatives)
            loss = metrics["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self.update_trackers(metrics)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.update_trackers(self.compute_metrics(self.binarize(x, self.next_seed())))

    def get_config(self):
        config = super().get_config()
        config.update(
            visible_shape=self.visible_shape,
            num_hidden=self.num_hidden,
            cd_steps=self.cd_steps,
            persistent=self.persistent,
            num_chains=self.num_chains,
            sample_steps=self.sample_steps,
        )
        return config


# --- partition function ------------------------------------------------------------------
def exact_log_partition(rbm, max_units=22):
    """``log Z`` by enumerating the smaller layer (``2^min(D, H)`` states)."""
    if min(rbm.num_visible, rbm.num_hidden) > max_units:
        raise ValueError(
            f"Exact log Z enumerates 2^min(visible, hidden) states; this RBM has "
            f"{rbm.num_visible} visible and {rbm.num_hidden} hidden units (limit {max_units}). "
            "Use ais_log_partition."
        )
    kernel, b_v, b_h = (w.numpy().astype(np.float64)
                        for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias))
    if rbm.num_visible <= rbm.num_hidden:
        states = all_binary_states(rbm.num_visible)
        log_terms = states @ b_v + np.logaddexp(0, states @ kernel + b_h).sum(-1)
    else:
        states = all_binary_states(rbm.num_hidden)
        log_terms = states @ b_h + np.logaddexp(0, states @ kernel.T + b_v).sum(-1)
    return float(np.logaddexp.reduce(log_terms))


def all_binary_states(n):
    """All ``2^n`` binary vectors of length ``n``, float64 ``[2^n, n]``."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def base_rate_logits(data_mean):
    """Log-odds of pixel means, clipped to [1e-3, 1 - 1e-3]: the visible biases of the
    independent-pixel (base-rate) model."""
    data_mean = np.clip(np.reshape(np.asarray(data_mean, np.float64), [-1]), 1e-3, 1 - 1e-3)
    return np.log(data_mean) - np.log1p(-data_mean)


def ais_betas(num_betas=14500):
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1: of Salakhutdinov & Murray's (2008)
    14500, 500 spaced evenly in [0, 0.5), 4000 in [0.5, 0.9) and 10000 in [0.9, 1];
    other sizes keep these proportions."""
    if num_betas < 3:
        raise ValueError(f"num_betas must be >= 3, got {num_betas}.")
    first = max(1, round(num_betas * 500 / 14500))
    second = max(1, round(num_betas * 4000 / 14500))
    return np.concatenate([np.linspace(0.0, 0.5, first, endpoint=False),
                           np.linspace(0.5, 0.9, second, endpoint=False),
                           np.linspace(0.9, 1.0, num_betas - first - second)])


@dataclasses.dataclass
class AISResult:
    """An AIS estimate of ``log Z``: ``log_z``, its standard error ``std`` (nats, delta
    method: std of the importance weights over their mean, over ``sqrt(num_runs)``) and
    the ``log_weights`` of every run."""

    log_z: float
    std: float
    log_weights: np.ndarray


def ais_log_partition(rbm, data_mean, num_runs=100, num_betas=14500, seed=0):
    """Estimate the RBM's ``log Z`` by annealed importance sampling (Neal 2001;
    Salakhutdinov & Murray 2008).

    The path runs from a base-rate model (independent visible units with the
    data's pixel means, zero weights) to the RBM through
    ``p_beta(v) ~ exp((1 - beta) b_A . v + beta b_v . v) prod_j (1 + exp(beta (v W + b_h)_j))``,
    one Gibbs transition per ``beta``; ``num_runs`` chains run in parallel, in float64.

    Args:
        rbm: an :class:`RBM`.
        data_mean: mean of every visible unit over the training data, ``[D]`` in [0, 1]
            (e.g. the mean pixel intensity).
        num_runs: number of AIS runs.
        num_betas: number of inverse temperatures (see :func:`ais_betas`).
        seed: integer seed.
    """
    base_bias = base_rate_logits(data_mean)
    if base_bias.shape != (rbm.num_visible,):
        raise ValueError(f"data_mean must have {rbm.num_visible} entries (one per visible unit), "
                         f"got {base_bias.size}.")
    log_z_base = np.logaddexp(0, base_bias).sum() + rbm.num_hidden * np.log(2.0)
    kernel, b_v, b_h = (tf.constant(w.numpy(), tf.float64)
                        for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias))
    log_weights = _ais_log_weights(kernel, b_v, b_h, tf.constant(base_bias),
                                   tf.constant(ais_betas(num_betas)), tf.constant(int(num_runs)),
                                   tf.constant([seed, 1], tf.int64)).numpy()
    log_mean_weight = np.logaddexp.reduce(log_weights) - np.log(num_runs)
    relative = np.exp(log_weights - log_mean_weight)  # weights over their mean
    return AISResult(log_z=float(log_z_base + log_mean_weight),
                     std=float(np.std(relative) / np.sqrt(num_runs)), log_weights=log_weights)


@tf.function(reduce_retracing=True)
def _ais_log_weights(kernel, b_v, b_h, base_bias, betas, num_runs, seed):
    def log_unnormalized(v, beta):  # log p*_beta(v), hidden units summed out
        return (tf.linalg.matvec(v, (1.0 - beta) * base_bias + beta * b_v)
                + tf.reduce_sum(tf.nn.softplus(beta * (tf.matmul(v, kernel) + b_h)), axis=-1))

    def transition(v, beta, step_seed):  # Gibbs step leaving p_beta invariant
        seeds = tf.random.experimental.stateless_split(step_seed, 2)
        h = bernoulli(tf.sigmoid(beta * (tf.matmul(v, kernel) + b_h)), seeds[0])
        logits = beta * (tf.matmul(h, kernel, transpose_b=True) + b_v) + (1.0 - beta) * base_bias
        return bernoulli(tf.sigmoid(logits), seeds[1])

    seeds = tf.random.experimental.stateless_split(seed, 2)
    probs = tf.broadcast_to(tf.sigmoid(base_bias), [num_runs, tf.shape(base_bias)[0]])
    v = bernoulli(probs, seeds[0])  # exact samples of the base-rate model

    def body(k, v, log_w):
        log_w += log_unnormalized(v, betas[k]) - log_unnormalized(v, betas[k - 1])
        v = transition(v, betas[k], tf.random.experimental.stateless_fold_in(seeds[1], k))
        return k + 1, v, log_w

    _, _, log_w = tf.while_loop(lambda k, *_: k < tf.shape(betas)[0], body,
                                (tf.constant(1), v, tf.zeros([num_runs], tf.float64)),
                                parallel_iterations=1)
    return log_w


def evaluate_log_likelihood(rbm, images, train_images, num_runs=100, num_betas=14500, seed=0):
    """AIS log-likelihood of ``images`` (in the RBM's ``value_range``, stochastically
    binarised once with ``seed``), with the base-rate model of ``train_images`` (or of
    their mean image). Returns a JSON-ready dict, nats per image."""
    data_mean = tf.reduce_mean(rbm.to_visible(train_images), axis=0).numpy()
    ais = ais_log_partition(rbm, data_mean, num_runs=num_runs, num_betas=num_betas, seed=seed)
    v = rbm.binarize(images, tf.constant([seed, 2], tf.int64))
    log_likelihood = rbm.log_likelihood(v, ais.log_z).numpy()
    return {
        "log_likelihood": float(np.mean(log_likelihood)),
        "log_z": ais.log_z,
        "log_z_std": ais.std,  # also the log-likelihood's AIS error (log Z is shared)
        "num_images": len(log_likelihood),
        "ais_runs": int(num_runs),
        "ais_betas": int(num_betas),
        "binarisation": f"stochastic, once, seed {seed}",
    }
