"""Langevin sampler for energy functions.

The sampler knows nothing about models: it takes a differentiable energy
function ``energy_fn(x) -> [batch]`` and moves ``x`` downhill with noise.
"""

import functools
import math

import tensorflow as tf

from keras_ebm.config import PARAMETERIZATIONS, annealed_step_size


def energy_gradient(energy_fn, x):
    """Return ``(energy, d energy / d x)`` for a batch ``x``.

    The gradient of the *sum* of per-example energies equals the per-example
    gradients because examples do not interact.
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        energy = energy_fn(x)
    return energy, tape.gradient(energy, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def _with_condition(energy_fn, condition, x):
    return energy_fn(x, condition)


class _ChainRun:
    """One kind of chain of ``sampler`` as a callable object: TensorFlow counts the traces of
    a plain function per code object and would warn of "retracing" once several samplers'
    chains were compiled, though each is traced only once."""

    def __init__(self, sampler, energy_fn, snapshot_every):
        self.sampler, self.energy_fn, self.snapshot_every = sampler, energy_fn, snapshot_every

    def __call__(self, x, seed, steps, *condition):
        return self.sampler._run(self.energy_fn, x, seed, steps, self.snapshot_every,
                                 condition[0] if condition else None)


class LangevinSampler:
    """Langevin dynamics on an energy function, compiled into one graph.

    Two parameterisations are offered:

    * ``"sgld"`` (the EBM training recipe of Du & Mordatch 2019, the
      Generative Deep Learning book, the UvA tutorial and JEM):
      ``x <- x - step_size * clip(grad E(x)) + noise_scale * N(0, I)`` with an
      independent ``noise_scale``. Fast mixing toward low energy, but not an
      exact sampler of ``exp(-E)``.
    * ``"langevin"`` (unadjusted Langevin algorithm):
      ``x <- x - step_size * grad E(x) + sqrt(2 * step_size) * N(0, I)``,
      which samples ``exp(-E)`` up to an O(step_size) bias.

    Args:
        steps: default number of Langevin steps per call.
        step_size: gradient step size.
        noise_scale: standard deviation of the noise for ``"sgld"``; ignored
            by ``"langevin"`` (its noise is ``sqrt(2 * step_size)``).
        grad_clip: clip each gradient element to ``[-grad_clip, grad_clip]``
            (the book and UvA use 0.03); ``None`` disables clipping.
        value_range: clamp samples to ``(low, high)`` after every step (the
            data range); ``None`` disables clamping.
        parameterization: ``"sgld"`` or ``"langevin"``.

    Example:

    >>> sampler = LangevinSampler(steps=500, step_size=0.01,
    ...                           parameterization="langevin",
    ...                           grad_clip=None, value_range=None)
    >>> energy = lambda x: 0.5 * tf.reduce_sum(x**2, axis=-1)
    >>> x = sampler(energy, tf.zeros([1000, 2]), seed=[1, 2])  # ~ N(0, I)
    """

    # Chain steps are sequential; more lets the next step's noise start early.
    parallel_iterations = 1

    def __init__(
        self,
        steps=60,
        step_size=10.0,
        noise_scale=0.005,
        grad_clip=0.03,
        value_range=(-1.0, 1.0),
        parameterization="sgld",
    ):
        if int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps}.")
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size}.")
        if noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {noise_scale}.")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(
                f"grad_clip must be > 0 or None (no clipping), got {grad_clip}."
            )
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}, "
                f"got {parameterization!r}."
            )
        if value_range is not None:
            value_range = tuple(float(v) for v in value_range)
            if len(value_range) != 2 or value_range[0] >= value_range[1]:
                raise ValueError(
                    f"value_range must be (low, high) with low < high, got {value_range}."
                )
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.noise_scale = float(noise_scale)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.value_range = value_range
        self.parameterization = parameterization
        self._compiled_runs = {}  # one tf.function per (energy, snapshots, condition) kind

    @property
    def noise_std(self):
        if self.parameterization == "langevin":
            return math.sqrt(2.0 * self.step_size)
        return self.noise_scale

    def get_config(self):
        return {
            "steps": self.steps,
            "step_size": self.step_size,
            "noise_scale": self.noise_scale,
            "grad_clip": self.grad_clip,
            "value_range": self.value_range,
            "parameterization": self.parameterization,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, energy_fn, x, seed, steps=None, snapshot_every=0, condition=None):
        """Run the chain from ``x``.

        Args:
            energy_fn: ``x -> [batch]`` energies (lower is more likely).
            x: initial states, float tensor ``[batch, ...]``.
            seed: int tensor of shape ``[2]``; the same seed gives the same chain.
            steps: number of steps (defaults to ``self.steps``); may be a tensor.
            snapshot_every: if > 0, also return the states after step 0 (the
                start), ``snapshot_every``, ``2 * snapshot_every``, ... as a
                tensor ``[num_snapshots, batch, ...]``.
            condition: optional tensor passed as ``energy_fn(x, condition)``
                (e.g. class labels for ``E(x, y)``).

        Returns:
            The final states, or ``(final_states, snapshots)``.
        """
        steps = tf.convert_to_tensor(self.steps if steps is None else steps, tf.int32)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        if tf.inside_function():
            return self._run(energy_fn, x, seed, steps, snapshot_every, condition)
        x = tf.convert_to_tensor(x)
        condition = None if condition is None else tf.nest.map_structure(tf.convert_to_tensor,
                                                                         condition)
        # One graph per energy, chain kind and image shape, for any batch size: evaluation
        # and sample grids ask for many sizes, and each would otherwise trace anew.
        condition_spec = None if condition is None else tf.nest.map_structure(
            lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), condition)
        key = (energy_fn, int(snapshot_every), x.dtype, tuple(x.shape[1:]),
               None if condition is None else str(condition_spec))
        if key not in self._compiled_runs:
            signature = [tf.TensorSpec([None, *x.shape[1:]], x.dtype),
                         tf.TensorSpec([2], tf.int64), tf.TensorSpec([], tf.int32)]
            if condition is not None:
                signature.append(condition_spec)

            run = _ChainRun(self, energy_fn, int(snapshot_every))
            self._compiled_runs[key] = self.compile_run(run, signature)
        extra = () if condition is None else (condition,)
        return self._compiled_runs[key](x, seed, steps, *extra)

    def compile_run(self, run, input_signature):
        """``run`` compiled for ``input_signature`` (override to change how, e.g. with XLA)."""
        return tf.function(run, input_signature=input_signature)

    def noise(self, shape, seed, dtype):
        """Standard-normal noise of one step; the same seed gives the same noise."""
        return tf.random.stateless_normal(shape, seed=seed, dtype=dtype)

    def gradient(self, energy_fn, x):
        """``d energy_fn / d x`` for the batch ``x``."""
        return energy_gradient(energy_fn, x)[1]

    def step(self, energy_fn, x, noise):
        """One Langevin update of ``x`` given standard-normal ``noise``."""
        grad = self.gradient(energy_fn, x)
        if self.grad_clip is not None:
            grad = tf.clip_by_value(grad, -self.grad_clip, self.grad_clip)
        x = x - self.step_size * grad + self.noise_std * noise
        if self.value_range is not None:
            x = tf.clip_by_value(x, *self.value_range)
        return x

    def step_at(self, energy_fn, x, noise, step, steps):
        """The update at chain step ``step`` of ``steps``: the same :meth:`step` at every one."""
        del step, steps
        return self.step(energy_fn, x, noise)

    def finish(self, energy_fn, x):
        """The chain's final states as returned (snapshots are not passed here)."""
        del energy_fn
        return x

    def _run(self, energy_fn, x, seed, steps, snapshot_every, condition):
        if condition is not None:
            energy_fn = functools.partial(_with_condition, energy_fn, condition)
        x = tf.convert_to_tensor(x)
        shape = tf.shape(x)

        def body(i, x):
            noise = self.noise(shape, tf.random.experimental.stateless_fold_in(seed, i), x.dtype)
            return i + 1, self.step_at(energy_fn, x, noise, i, steps)

        if not snapshot_every:
            _, x = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), x),
                                 parallel_iterations=self.parallel_iterations)
            return self.finish(energy_fn, x)

        num_snapshots = steps // snapshot_every + 1
        snapshots = tf.TensorArray(x.dtype, size=num_snapshots, element_shape=x.shape)
        snapshots = snapshots.write(0, x)

        def body_with_snapshots(i, x, snapshots):
            i, x = body(i, x)
            snapshots = tf.cond(
                tf.equal(i % snapshot_every, 0),
                lambda: snapshots.write(i // snapshot_every, x),
                lambda: snapshots,
            )
            return i, x, snapshots

        _, x, snapshots = tf.while_loop(
            lambda i, *_: i < steps,
            body_with_snapshots,
            (tf.constant(0), x, snapshots),
            parallel_iterations=self.parallel_iterations,
        )
        return self.finish(energy_fn, x), snapshots.stack()


class AnnealedLangevinSampler(LangevinSampler):
    """Annealed Langevin dynamics (Song & Ermon 2019) for an energy of data smoothed by noise
    of standard deviation ``sigma``: ``E(x) / sigma`` for one energy ``E`` (the scaled
    parameterisation of Song & Ermon 2020) or, with ``noise_conditional``, an energy told the
    level, called as ``energy_fn(x, sigma)``.

    A chain of ``steps`` steps passes through ``noise_levels`` from the largest to the
    smallest, an equal share of the steps at each (up to one step; at least one per level).
    At level ``sigma_i`` it runs the unadjusted Langevin update on that level's energy
    ``E_i`` with step ``step_size * (sigma_i / sigma_min)^2``
    (so ``step_size``, by default ``0.1 * sigma_min^2``, is the step at the smallest level):
    ``x <- x - eta_i grad E_i(x) + sqrt(2 eta_i) N(0, I)``. The chain is not clamped
    (the noisy levels live outside the data range); with ``denoise`` the final states take one
    more step ``x - sigma_min^2 * grad E_min(x)``, the posterior mean of the clean data given the
    state at the smallest level (Tweedie's formula), and are then clamped to ``value_range``.
    Snapshots show the chain itself.

    Example:

    >>> sampler = AnnealedLangevinSampler(noise_levels=(1.0, 0.1), steps=400, step_size=0.005,
    ...                                   denoise=False, value_range=None)
    >>> energy = lambda x: 0.5 * tf.reduce_sum(x**2, axis=-1)
    >>> x = sampler(energy, tf.zeros([1000, 2]), seed=[1, 2])  # ~ N(0, 0.1 I)
    """

    def __init__(self, noise_levels, steps=500, step_size=None, value_range=(-1.0, 1.0),
                 denoise=True, noise_conditional=False):
        levels = sorted((float(s) for s in noise_levels), reverse=True)
        if not levels or levels[-1] <= 0:
            raise ValueError(f"noise_levels must be positive numbers, got {noise_levels}.")
        if step_size is None:
            step_size = annealed_step_size(levels)
        self.noise_levels = tuple(levels)
        self._check_steps(steps)
        super().__init__(steps=steps, step_size=step_size, grad_clip=None,
                         value_range=value_range, parameterization="langevin")
        # Only the output is clamped: the chain at the noisy levels lives outside the range.
        self.output_range, self.value_range = self.value_range, None
        self.denoise = bool(denoise)
        self.noise_conditional = bool(noise_conditional)

    def _check_steps(self, steps):
        if int(steps) < len(self.noise_levels):
            raise ValueError(f"An annealed chain needs at least one step per noise level: got "
                             f"{int(steps)} steps for {len(self.noise_levels)} levels; use "
                             f"steps >= {len(self.noise_levels)}.")

    def __call__(self, energy_fn, x, seed, steps=None, snapshot_every=0, condition=None):
        if self.noise_conditional and condition is not None:
            raise ValueError("A noise-conditional chain passes the noise level as the energy's "
                             "second argument; it takes no condition.")
        if steps is not None and not tf.is_symbolic_tensor(steps):
            self._check_steps(steps)
        return super().__call__(energy_fn, x, seed, steps=steps, snapshot_every=snapshot_every,
                                condition=condition)

    def get_config(self):
        return {"noise_levels": self.noise_levels, "steps": self.steps,
                "step_size": self.step_size, "value_range": self.output_range,
                "denoise": self.denoise, "noise_conditional": self.noise_conditional}

    def level_drift(self, energy_fn, x, sigma, scale):
        """``scale * d E_sigma / d x``: of ``energy_fn(x, sigma)`` or of ``energy_fn(x) / sigma``."""
        if self.noise_conditional:
            return scale * self.gradient(lambda z: energy_fn(z, sigma), x)
        return scale * self.gradient(energy_fn, x) / sigma

    def step_at(self, energy_fn, x, noise, step, steps):
        levels = tf.constant(self.noise_levels, x.dtype)
        level = tf.minimum(step * len(self.noise_levels) // tf.maximum(steps, 1),
                           len(self.noise_levels) - 1)
        sigma = tf.gather(levels, level)
        eta = self.step_size * tf.square(sigma / levels[-1])
        return x - self.level_drift(energy_fn, x, sigma, eta) + tf.sqrt(2.0 * eta) * noise

    def finish(self, energy_fn, x):
        if self.denoise:
            # sigma_min^2 grad E_min: sigma_min grad E for the scaled energy E / sigma_min.
            sigma = tf.constant(self.noise_levels[-1], x.dtype)
            x = x - (self.level_drift(energy_fn, x, sigma, sigma**2) if self.noise_conditional
                     else sigma * self.gradient(energy_fn, x))
        if self.output_range is not None:
            x = tf.clip_by_value(x, *self.output_range)
        return x
