"""The partition function of an :class:`~keras_ebm.RBM` and its test log-likelihood: exactly
for small RBMs (enumeration), by annealed importance sampling (AIS) otherwise."""

import dataclasses
import itertools

import numpy as np
import tensorflow as tf

from keras_ebm.models.rbm import base_rate_logits, bernoulli


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


def ais_betas(num_betas=14500):
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1: of Salakhutdinov & Murray's (2008)
    14500, 500 spaced evenly in [0, 0.5), 4000 in [0.5, 0.9) and 10000 in [0.9, 1];
    other sizes keep these proportions."""
    if num_betas < 4:  # fewer cannot give each segment its points and end at beta = 1
        raise ValueError(f"num_betas must be >= 4, got {num_betas}.")
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
    kernel, b_v, b_h, base_bias = _path_parameters(rbm, data_mean)
    log_z_base = np.logaddexp(0, base_bias.numpy()).sum() + rbm.num_hidden * np.log(2.0)
    log_weights = _ais_log_weights(kernel, b_v, b_h, base_bias,
                                   tf.constant(ais_betas(num_betas)), tf.constant(int(num_runs)),
                                   tf.constant([seed, 1], tf.int64)).numpy()
    log_mean_weight = np.logaddexp.reduce(log_weights) - np.log(num_runs)
    relative = np.exp(log_weights - log_mean_weight)  # weights over their mean
    return AISResult(log_z=float(log_z_base + log_mean_weight),
                     std=float(np.std(relative) / np.sqrt(num_runs)), log_weights=log_weights)


@tf.function(reduce_retracing=True)
def _ais_log_weights(kernel, b_v, b_h, base_bias, betas, num_runs, seed):
    log_unnormalized, transition = _annealing_path(kernel, b_v, b_h, base_bias)
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


def raise_log_likelihood(rbm, v, data_mean, num_betas=14500, num_runs=1, seed=0):
    """Conservative estimates of ``log p(v)`` by reverse annealing (RAISE, Burda, Grosse &
    Salakhutdinov 2015), one per row of the binary ``v`` ``[N, D]``.

    The path of :func:`ais_log_partition` defines an annealing model: base-rate draws moved by
    one Gibbs transition per ``beta`` up to the RBM. Its probability of ``v`` is estimated
    without ``log Z``: a chain starts at ``v`` and anneals back to the base rate through the
    same (reversible) transitions, weighting by ``f_k(v_k) / f_k(v_k-1)`` and the base-rate
    probability of where it ends. The estimate is unbiased for the annealing model's ``p(v)``,
    so its log is low in expectation; for data drawn from the RBM the annealing model's
    log-likelihood is itself at most the RBM's (Gibbs' inequality). With forward AIS, which is
    high in expectation, it brackets the log-likelihood. ``num_runs`` reverse chains per row are
    averaged (in probability).
    """
    kernel, b_v, b_h, base_bias = _path_parameters(rbm, data_mean)
    v = tf.repeat(tf.constant(np.asarray(v), tf.float64), int(num_runs), axis=0)
    log_w = _raise_log_weights(kernel, b_v, b_h, base_bias,
                               tf.constant(ais_betas(num_betas)), v,
                               tf.constant([seed, 3], tf.int64)).numpy()
    log_w = log_w.reshape(-1, int(num_runs))
    return np.logaddexp.reduce(log_w, axis=1) - np.log(num_runs)


def _path_parameters(rbm, data_mean):
    """The RBM's weights and the base-rate model's visible biases (from ``data_mean``, one
    per visible unit), float64 tensors: the ends of the annealing path."""
    base_bias = base_rate_logits(data_mean)
    if base_bias.shape != (rbm.num_visible,):
        raise ValueError(f"data_mean must have {rbm.num_visible} entries (one per visible unit), "
                         f"got {base_bias.size}.")
    kernel, b_v, b_h = (tf.constant(w.numpy(), tf.float64)
                        for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias))
    return kernel, b_v, b_h, tf.constant(base_bias)


def _annealing_path(kernel, b_v, b_h, base_bias):
    """``log f_beta(v)`` (hidden units summed out) and the Gibbs transition that leaves
    ``p_beta`` invariant, of the path from the base-rate model (beta 0) to the RBM (beta 1)."""
    def log_unnormalized(v, beta):
        return (tf.linalg.matvec(v, (1.0 - beta) * base_bias + beta * b_v)
                + tf.reduce_sum(tf.nn.softplus(beta * (tf.matmul(v, kernel) + b_h)), axis=-1))

    def transition(v, beta, step_seed):
        seeds = tf.random.experimental.stateless_split(step_seed, 2)
        h = bernoulli(tf.sigmoid(beta * (tf.matmul(v, kernel) + b_h)), seeds[0])
        logits = beta * (tf.matmul(h, kernel, transpose_b=True) + b_v) + (1.0 - beta) * base_bias
        return bernoulli(tf.sigmoid(logits), seeds[1])

    return log_unnormalized, transition


@tf.function(reduce_retracing=True)
def _raise_log_weights(kernel, b_v, b_h, base_bias, betas, v, seed):
    log_unnormalized, transition = _annealing_path(kernel, b_v, b_h, base_bias)

    def body(k, v, log_w):  # from v_k to v_k-1 with the transition at beta_k
        previous = transition(v, betas[k], tf.random.experimental.stateless_fold_in(seed, k))
        log_w += log_unnormalized(v, betas[k]) - log_unnormalized(previous, betas[k])
        return k - 1, previous, log_w

    _, v, log_w = tf.while_loop(lambda k, *_: k > 0, body,
                                (tf.shape(betas)[0] - 1, v, tf.zeros([tf.shape(v)[0]], tf.float64)),
                                parallel_iterations=1)
    log_base = tf.linalg.matvec(v, base_bias) - tf.reduce_sum(tf.nn.softplus(base_bias))
    return log_w + log_base


def evaluate_log_likelihood(rbm, images, train_images, num_runs=100, num_betas=14500, seed=0,
                            reverse_images=0):
    """AIS log-likelihood of ``images`` (in the RBM's ``value_range``, stochastically
    binarised once with ``seed``), with the base-rate model of ``train_images`` (or of
    their mean image). With ``reverse_images`` > 0 the first that many images are also scored
    by reverse annealing (:func:`raise_log_likelihood`, same path), a conservative estimate:
    forward AIS is optimistic in expectation, so the two bracket the log-likelihood of those
    images. Returns a JSON-ready dict, nats per image."""
    data_mean = tf.reduce_mean(rbm.to_visible(train_images), axis=0).numpy()
    ais = ais_log_partition(rbm, data_mean, num_runs=num_runs, num_betas=num_betas, seed=seed)
    v = rbm.binarize(images, tf.constant([seed, 2], tf.int64))
    log_likelihood = rbm.log_likelihood(v, ais.log_z).numpy()
    bracket = {}
    if reverse_images:
        subset = v[:reverse_images].numpy()
        reverse = raise_log_likelihood(rbm, subset, data_mean, num_betas=num_betas, seed=seed)
        forward = float(np.mean(log_likelihood[:len(subset)]))
        bracket = {"reverse": {"num_images": len(subset),
                               "log_likelihood_reverse": float(np.mean(reverse)),
                               "log_likelihood_forward": forward,
                               "gap": forward - float(np.mean(reverse))}}
    return {
        **bracket,
        "log_likelihood": float(np.mean(log_likelihood)),
        "log_z": ais.log_z,
        "log_z_std": ais.std,  # also the log-likelihood's AIS error (log Z is shared)
        "num_images": len(log_likelihood),
        "ais_runs": int(num_runs),
        "ais_betas": int(num_betas),
        "binarisation": f"stochastic, once, seed {seed}",
    }
