"""MCMC samplers with one interface: ``sampler(energy_fn, x, seed) -> (samples, acceptance_rate)``.

``energy_fn(x) -> [batch]`` is any differentiable energy (lower is more likely);
the target density is ``exp(-energy_fn(x))``. ``x`` holds one chain per row
(``[batch, ...]``, any event shape) and ``acceptance_rate`` is the share of
accepted proposals over all chains and steps.

* :class:`MALA` and :class:`HMC` are TensorFlow Probability's Metropolis-adjusted
  kernels (``tfp.mcmc``): exact samplers of ``exp(-E)``, at the cost of rejections.
* :class:`ParallelTempering` is replica exchange between MALA chains on a ladder of
  temperatures (``tfp.mcmc.ReplicaExchangeMC``); its acceptance rate is that of the swaps.
* :class:`AnnealedLangevin` is the unadjusted Langevin update with a per-step
  schedule of step sizes and temperatures (target ``exp(-E / T)``): decaying
  step sizes, or tempering from a hot, easily mixing chain down to ``T = 1``.
  It never rejects (acceptance rate 1).

:class:`keras_ebm.samplers.langevin.LangevinSampler` is the training sampler (SGLD-style,
clipped, clamped to the data range); these are for sampling a fixed energy.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_ebm.samplers.langevin import energy_gradient


def _check_positive(**values):
    for name, value in values.items():
        if not np.all(np.asarray(value) > 0):
            raise ValueError(f"{name} must be > 0, got {value}.")


class _TFPSampler:
    """Runs a ``tfp.mcmc`` kernel for ``steps`` steps and counts its acceptances."""

    def __init__(self, steps):
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        self.steps = int(steps)
        self._compiled_run = tf.function(self._run, reduce_retracing=True)

    def kernel(self, target_log_prob_fn):
        raise NotImplementedError

    def __call__(self, energy_fn, x, seed, steps=None):
        """Run one chain per row of ``x`` and return ``(samples, acceptance_rate)``."""
        steps = tf.convert_to_tensor(self.steps if steps is None else steps, tf.int32)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
        return self._compiled_run(energy_fn, tf.convert_to_tensor(x, tf.float32), seed, steps)

    def _run(self, energy_fn, x, seed, steps):
        kernel = self.kernel(lambda state: -energy_fn(state))

        def body(i, x, results, accepted):
            x, results = kernel.one_step(
                x, results, seed=tf.random.experimental.stateless_fold_in(seed, i))
            return i + 1, x, results, accepted + tf.reduce_mean(tf.cast(results.is_accepted,
                                                                        tf.float32))

        _, x, _, accepted = tf.while_loop(
            lambda i, *_: i < steps, body,
            (tf.constant(0), x, kernel.bootstrap_results(x), tf.constant(0.0)),
            parallel_iterations=1,
        )
        return x, accepted / tf.cast(steps, tf.float32)


class MALA(_TFPSampler):
    """Metropolis-adjusted Langevin algorithm (``tfp.mcmc.MetropolisAdjustedLangevinAlgorithm``).

    Proposal ``x' = x - step_size * grad E(x) + sqrt(2 * step_size) * N(0, I)``
    (the ``"langevin"`` parameterisation of :class:`LangevinSampler`; tfp's own
    ``step_size`` is twice this one), accepted with the Metropolis-Hastings
    probability, so the chain leaves ``exp(-E)`` exactly invariant.
    A step size giving ~57% acceptance is optimal in high dimension
    (Roberts & Rosenthal 1998).

    Example:

    >>> samples, acceptance = MALA(steps=500, step_size=0.1)(energy_fn, x0, seed=[0, 1])
    """

    def __init__(self, steps=500, step_size=0.05):
        _check_positive(step_size=step_size)
        super().__init__(steps)
        self.step_size = float(step_size)

    def kernel(self, target_log_prob_fn):
        return tfp.mcmc.MetropolisAdjustedLangevinAlgorithm(
            target_log_prob_fn, step_size=2.0 * self.step_size)


class HMC(_TFPSampler):
    """Hamiltonian Monte Carlo (``tfp.mcmc.HamiltonianMonteCarlo``).

    Each step integrates ``leapfrog_steps`` leapfrog steps of size ``step_size``
    with a fresh unit-mass momentum and accepts the end point with the
    Metropolis-Hastings probability. Costs ``leapfrog_steps`` gradients per step;
    ~65% acceptance is the usual target (Beskos et al. 2013).

    Example:

    >>> samples, acceptance = HMC(steps=200, step_size=0.2, leapfrog_steps=5)(energy_fn, x0, [0, 1])
    """

    def __init__(self, steps=200, step_size=0.1, leapfrog_steps=10):
        _check_positive(step_size=step_size, leapfrog_steps=leapfrog_steps)
        super().__init__(steps)
        self.step_size = float(step_size)
        self.leapfrog_steps = int(leapfrog_steps)

    def kernel(self, target_log_prob_fn):
        return tfp.mcmc.HamiltonianMonteCarlo(
            target_log_prob_fn, step_size=self.step_size, num_leapfrog_steps=self.leapfrog_steps)


def _adjacent_swaps(num_replica, batch_shape=(), step_count=None, seed=None):
    """Swap proposals between neighbouring replicas, even or odd pairs at random (tfp's
    ``default_swap_proposal_fn`` with ``prob_swap=1``, with its index dtypes made to agree)."""
    num_replica = tf.cast(num_replica, tf.int64)
    batch_shape = tf.cast(batch_shape, tf.int32)
    odd = tf.random.stateless_uniform(tf.concat([[1], batch_shape], 0), seed=seed) < 0.5
    odd = tf.logical_and(odd, num_replica > 2)  # two replicas: the odd pairing is empty
    index = tf.reshape(tf.range(num_replica), tf.concat([[-1], tf.ones_like(batch_shape)], 0))
    partner = tf.where(tf.equal(index % 2, tf.cast(odd, tf.int64)), index + 1, index - 1)
    return tf.clip_by_value(partner, tf.constant(0, tf.int64), num_replica - 1)


class ParallelTempering(_TFPSampler):
    """Replica exchange (``tfp.mcmc.ReplicaExchangeMC``): one MALA chain per inverse
    temperature ``beta`` in ``inverse_temperatures`` (the first must be 1, the target), each on
    ``exp(-beta * E)``; after every step the even or the odd adjacent pairs (at random) propose
    to swap states and accept with the Metropolis-Hastings probability. Hot replicas cross
    energy barriers that trap a single chain, and the swaps carry their states down to
    ``beta = 1`` (Swendsen & Wang 1986; Earl & Deem 2005).

    Each replica's MALA step size is ``step_size / beta``, as its target is that much flatter.
    Returns ``(samples at beta = 1, swap acceptance rate)``; ``swap_acceptance`` holds the
    acceptance rate of the swaps proposed to each adjacent pair in the last call (a pair near
    0 means the ladder needs another rung).

    Example:

    >>> pt = ParallelTempering(steps=300, step_size=0.05, inverse_temperatures=np.geomspace(1, 0.05, 8))
    >>> samples, swap_rate = pt(energy_fn, x0, seed=[0, 1])
    """

    def __init__(self, steps=500, step_size=0.05, inverse_temperatures=(1.0, 0.5, 0.25, 0.125)):
        betas = np.asarray(inverse_temperatures, np.float32)
        _check_positive(step_size=step_size, inverse_temperatures=betas)
        if betas.ndim != 1 or len(betas) < 2 or betas[0] != 1 or np.any(np.diff(betas) >= 0):
            raise ValueError("inverse_temperatures must be a decreasing ladder starting at 1 "
                             f"(the target) with at least 2 rungs, got {betas.tolist()}.")
        super().__init__(steps)
        self.step_size = float(step_size)
        self.inverse_temperatures = betas
        self.swap_acceptance = None

    def __call__(self, energy_fn, x, seed, steps=None):
        samples, rate, per_pair = super().__call__(energy_fn, x, seed, steps)
        self.swap_acceptance = per_pair.numpy()
        return samples, rate

    def _run(self, energy_fn, x, seed, steps):
        betas = self.inverse_temperatures  # numpy: tfp's swap proposal needs a static count
        # Replicas are stacked on a leading axis: step sizes broadcast over it.
        step_size = tf.broadcast_to(
            (2.0 * self.step_size / betas).reshape([-1] + [1] * len(x.shape)),
            tf.concat([[len(betas)], tf.shape(x)], 0))  # tfp sums its log terms unbroadcast
        event_rank = len(x.shape) - 1

        def log_prob(state):  # energy_fn sees [chains, ...]: fold the replica axis into it
            leading = tf.shape(state)[:tf.rank(state) - event_rank]
            flat = tf.reshape(state, tf.concat([[-1], tf.shape(state)[tf.rank(state) - event_rank:]], 0))
            return tf.reshape(-energy_fn(flat), leading)

        kernel = tfp.mcmc.ReplicaExchangeMC(
            target_log_prob_fn=log_prob,
            inverse_temperatures=betas,
            make_kernel_fn=lambda log_prob: tfp.mcmc.MetropolisAdjustedLangevinAlgorithm(
                log_prob, step_size=step_size),
            swap_proposal_fn=_adjacent_swaps)

        def per_pair_count(flags):  # [pairs, chains...] -> [pairs]
            return tf.reduce_sum(tf.reshape(tf.cast(flags, tf.float32), [len(betas) - 1, -1]), 1)

        def body(i, x, results, accepted, proposed):
            x, results = kernel.one_step(
                x, results, seed=tf.random.experimental.stateless_fold_in(seed, i))
            return (i + 1, x, results,
                    accepted + per_pair_count(results.is_swap_accepted_adjacent),
                    proposed + per_pair_count(results.is_swap_proposed_adjacent))

        loop_vars = (tf.constant(0), x, kernel.bootstrap_results(x),
                     tf.zeros([len(betas) - 1]), tf.zeros([len(betas) - 1]))
        # Kernel results lose static batch sizes inside the loop: keep only their ranks.
        invariants = tf.nest.map_structure(
            lambda t: tf.TensorShape([None] * len(t.shape)), loop_vars)
        _, x, _, accepted, proposed = tf.while_loop(
            lambda i, *_: i < steps, body, loop_vars, shape_invariants=invariants,
            parallel_iterations=1)
        x = tf.ensure_shape(x, loop_vars[1].shape)
        per_pair = accepted / tf.maximum(proposed, 1.0)  # of the swaps proposed to each pair
        return x, tf.reduce_mean(per_pair), per_pair


class AnnealedLangevin:
    """Unadjusted Langevin with a schedule: step ``k`` is
    ``x <- x - step_sizes[k] * grad E(x) / temperatures[k] + sqrt(2 * step_sizes[k]) * N(0, I)``,
    a Langevin step on ``exp(-E / T_k)``.

    ``temperatures`` falling to 1 anneals (a hot chain crosses energy barriers,
    the final steps at ``T = 1`` sample ``exp(-E)`` up to the O(step size) bias of
    the unadjusted update); decaying ``step_sizes`` (e.g. ``1 / (k + 1)``, as in
    the Langevin Monte Carlo tutorial seed) shrink that bias as the chain settles.
    Scalars are repeated for every step; the number of steps is the length of the
    longer schedule (or ``steps`` when both are scalars).

    Example:

    >>> hot_to_cold = AnnealedLangevin(step_sizes=0.01, temperatures=np.geomspace(10, 1, 300))
    >>> samples, _ = hot_to_cold(energy_fn, x0, seed=[0, 1])
    """

    def __init__(self, step_sizes, temperatures=1.0, steps=None):
        step_sizes = np.atleast_1d(np.asarray(step_sizes, np.float32))
        temperatures = np.atleast_1d(np.asarray(temperatures, np.float32))
        _check_positive(step_sizes=step_sizes, temperatures=temperatures)
        lengths = {len(s) for s in (step_sizes, temperatures) if len(s) > 1}
        if len(lengths) > 1:
            raise ValueError(
                f"step_sizes and temperatures are schedules of different lengths {sorted(lengths)}; "
                "give them the same length or pass one as a scalar.")
        num_steps = lengths.pop() if lengths else int(steps or 1)
        if steps is not None and int(steps) != num_steps:
            raise ValueError(f"steps={steps} disagrees with the schedules' length {num_steps}.")
        self.steps = num_steps
        self.step_sizes = np.broadcast_to(step_sizes, [num_steps]).copy()
        self.temperatures = np.broadcast_to(temperatures, [num_steps]).copy()
        self._compiled_run = tf.function(self._run, reduce_retracing=True)

    def __call__(self, energy_fn, x, seed, snapshot_every=0):
        """Return ``(samples, 1.0)``, or ``(samples, 1.0, snapshots)`` with
        ``snapshot_every > 0`` (states after steps 0, ``snapshot_every``, ...)."""
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        x, snapshots = self._compiled_run(energy_fn, tf.convert_to_tensor(x, tf.float32), seed,
                                          int(snapshot_every))
        if snapshot_every:
            return x, tf.constant(1.0), snapshots
        return x, tf.constant(1.0)

    def _run(self, energy_fn, x, seed, snapshot_every):
        step_sizes = tf.constant(self.step_sizes)
        temperatures = tf.constant(self.temperatures)
        keep = max(1, snapshot_every)
        num_snapshots = self.steps // keep + 1 if snapshot_every else 1
        snapshots = tf.TensorArray(x.dtype, size=num_snapshots, element_shape=x.shape)
        snapshots = snapshots.write(0, x)

        def body(i, x, snapshots):
            _, grad = energy_gradient(energy_fn, x)
            noise = tf.random.stateless_normal(
                tf.shape(x), seed=tf.random.experimental.stateless_fold_in(seed, i))
            x = x - step_sizes[i] * grad / temperatures[i] + tf.sqrt(2.0 * step_sizes[i]) * noise
            i = i + 1
            if snapshot_every:
                snapshots = tf.cond(tf.equal(i % keep, 0),
                                    lambda: snapshots.write(i // keep, x), lambda: snapshots)
            return i, x, snapshots

        _, x, snapshots = tf.while_loop(lambda i, *_: i < self.steps, body,
                                        (tf.constant(0), x, snapshots), parallel_iterations=1)
        return x, snapshots.stack()
