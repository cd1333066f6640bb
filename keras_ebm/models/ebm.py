"""Energy-based ``keras.Model``s: the unconditional EBM and the JEM hybrid.

Both read a network's scores ``f(x)`` as a log-density up to a constant:
``E(x) = -logsumexp_y f(x)[y]`` (for a one-output network, ``E(x) = -f(x)``),
and the class-conditional energy is ``E(x, y) = -f(x)[y]``.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import distribute
from keras_ebm.config import CHAIN_STARTS, MAX_SAMPLES_PER_CALL
from keras_ebm.models.base import NetworkEnergyModel, marginal_energy
from keras_ebm.models.calibration import fit_temperature
from keras_ebm.samplers.buffer import ReplayBuffer
from keras_ebm.samplers.chain_start import ClassGaussianStart
from keras_ebm.samplers.langevin import LangevinSampler


def class_energy(scores, labels):
    """``E(x, y) = -f(x)[y]``; a label of -1 gives the marginal energy ``E(x)``."""
    labels = tf.cast(labels, tf.int32)
    chosen = -tf.gather(scores, tf.maximum(labels, 0), axis=-1, batch_dims=1)
    return tf.where(labels >= 0, chosen, marginal_energy(scores))


@keras.saving.register_keras_serializable(package="keras_ebm")
class EBM(NetworkEnergyModel):
    """Unconditional image EBM trained by contrastive divergence (Du & Mordatch 2019).

    Each training step draws negatives by running the Langevin ``sampler`` from
    replay-buffer states and minimises

    ``loss = cdiv_weight * (mean E(x_real) - mean E(x_sample))
    + reg_weight * mean(E(x_real)^2 + E(x_sample)^2)``.

    The L2 energy regulariser keeps energies near zero (Du & Mordatch 2019;
    weight 0.1 in the Generative Deep Learning book and the UvA tutorial).
    ``test_step`` reports the contrastive divergence between real images and
    uniform noise, which falls as the model learns (the book's validation signal).

    Args:
        network: a ``keras.Model`` mapping images to scores ``[batch, k]``.
        sampler: a :class:`LangevinSampler` (or its config dict).
        buffer_size: replay-buffer size.
        reinit_prob: per chain and training iteration, the chance that a buffer chain
            restarts from ``chain_start`` (5%: Du & Mordatch 2019).
        reg_weight: weight of the L2 energy regulariser.
        cdiv_weight: weight of the contrastive-divergence term.
        real_noise: std of Gaussian noise added to real images in training.
        value_range: data range; noise starts and samples are clamped to it.
        seed: integer seed for the sampler, buffer and noise.
        chain_start: where new chains start, in the buffer's restarts and in
            :meth:`generate`: ``"uniform"`` noise, or ``"class_gaussian"``, a
            Gaussian per class fitted to the training images by
            :meth:`fit_chain_start` (see :class:`ClassGaussianStart`).
        start_rank: principal directions per class of the ``"class_gaussian"`` start.
        refine_steps: noise-free steps that end every :meth:`generate` chain
            (0: none); they sharpen samples without training cost.
        refine_step_size: step size of those steps.

    Example:

    >>> model = EBM(networks.cnn(num_outputs=1), seed=0)
    >>> model.compile(keras.optimizers.Adam(1e-4, beta_1=0.0))
    >>> model.fit(images_dataset, epochs=1)
    >>> samples = model.generate(16, steps=256, seed=0)
    """

    conditional_buffer = False
    metric_names = ("loss", "cdiv", "reg", "energy_real", "energy_sample")

    def __init__(self, network, sampler=None, buffer_size=10000, reinit_prob=0.05,
                 reg_weight=0.1, cdiv_weight=1.0, real_noise=0.005, value_range=(-1.0, 1.0),
                 seed=None, chain_start="uniform", start_rank=64, refine_steps=0,
                 refine_step_size=1.0, **kwargs):
        super().__init__(network, sampler, value_range=value_range, seed=seed, **kwargs)
        if chain_start not in CHAIN_STARTS:
            raise ValueError(f"chain_start must be one of {CHAIN_STARTS}, got {chain_start!r}.")
        if int(refine_steps) < 0 or not refine_step_size > 0:
            raise ValueError(f"refine_steps must be >= 0 and refine_step_size > 0, got "
                             f"{refine_steps} and {refine_step_size}.")
        self.buffer_size = int(buffer_size)
        self.reinit_prob = float(reinit_prob)
        self.reg_weight = float(reg_weight)
        self.cdiv_weight = float(cdiv_weight)
        self.real_noise = float(real_noise)
        self.chain_start = chain_start
        self.start_rank = int(start_rank)
        self.refine_steps = int(refine_steps)
        self.refine_step_size = float(refine_step_size)
        self.refiner = LangevinSampler(steps=self.refine_steps, step_size=self.refine_step_size,
                                       noise_scale=0.0, grad_clip=self.sampler.grad_clip,
                                       value_range=self.sampler.value_range)
        self.start = None
        if chain_start == "class_gaussian":
            self.start = ClassGaussianStart(self.num_outputs, self.sample_shape, rank=start_rank,
                                            value_range=value_range, name="chain_start")
        self.buffer = ReplayBuffer(
            size=buffer_size,
            sample_shape=self.sample_shape,
            reinit_prob=reinit_prob,
            value_range=value_range,
            num_classes=self.num_outputs if self.conditional_buffer else None,
            seed=seed,
            name="replay_buffer",
        )
        # Evaluation noise has its own stream, so validating never shifts training's.
        self.eval_seed_generator = keras.random.SeedGenerator(None if seed is None else seed + 1)
        self.finish_init()

    # --- energies -----------------------------------------------------------
    def energy(self, x, training=False):
        """Per-example energy ``E(x)``, shape ``[batch]``."""
        return marginal_energy(self.network(self.check_images(x), training=training))

    def check_images(self, x):
        """``x`` as a tensor; a clear error for integer pixels or a wrong image shape."""
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            raise ValueError(
                f"Images must be floats in the model's range {list(self.value_range)}, got "
                f"{x.dtype.name}; scale uint8 pixels with keras_ebm.data.preprocess(images)."
            )
        shape = x.shape[1:]
        if len(shape) != len(self.sample_shape) or any(
                d is not None and d != s for d, s in zip(shape, self.sample_shape)):
            raise ValueError(
                f"Images must have shape [N, {', '.join(map(str, self.sample_shape))}], got "
                f"{x.shape.as_list()}; pad or crop them as in training "
                "(keras_ebm.data.preprocess(images, pad=2) pads 28x28 images to 32x32)."
            )
        if tf.executing_eagerly():  # a caller's batch; inside the sampler's graph this is known
            if x.shape[0] == 0:
                raise ValueError("Got an empty batch of images; pass at least one image.")
            low, high = self.value_range
            finite = bool(tf.reduce_all(tf.math.is_finite(x)))
            if not finite or float(tf.reduce_min(x)) < low - 1e-3 or float(tf.reduce_max(x)) > high + 1e-3:
                raise ValueError(
                    f"Images must be finite floats in the model's range [{low}, {high}], got "
                    + ("NaN or infinite values" if not finite else
                       f"values in [{float(tf.reduce_min(x)):.4g}, {float(tf.reduce_max(x)):.4g}]")
                    + "; scale uint8 pixels with keras_ebm.data.preprocess(images).")
        return x

    def conditional_energy(self, x, labels):
        """Per-example class-conditional energy ``E(x, y) = -f(x)[y]`` (``E(x)`` where y = -1)."""
        if self.num_outputs < 2:
            raise ValueError(
                "Class-conditional energies need a network with one output per class; "
                f"this network has {self.num_outputs} output."
            )
        x = self.check_images(x)
        if tf.executing_eagerly():
            labels = tf.convert_to_tensor(labels)
            if (labels.shape != (x.shape[0],) or not labels.dtype.is_integer
                    or not bool(tf.reduce_all((labels >= -1) & (labels < self.num_outputs)))):
                raise ValueError(
                    f"labels must be {x.shape[0]} integer class indices in [0, {self.num_outputs}) "
                    f"(-1: E(x)), one per image, got {labels.dtype.name} of shape "
                    f"{labels.shape.as_list()}.")
        return class_energy(self.network(x, training=False), labels)

    # --- sampling -----------------------------------------------------------
    def next_seed(self, generator=None):
        seed = super().next_seed(generator)
        replica, num_replicas = distribute.current_replica()
        if num_replicas == 1:
            return seed
        # Replicas draw independent noise (the replay buffer shares one global draw instead).
        return tf.random.experimental.stateless_fold_in(seed, replica)

    def _run_sampler(self, x, labels, seed, steps=None, snapshot_every=0):
        if labels is None:
            return self.sampler(self.energy, x, seed, steps=steps, snapshot_every=snapshot_every)
        return self.sampler(
            self.conditional_energy, x, seed, steps=steps, snapshot_every=snapshot_every,
            condition=labels,
        )

    def fit_chain_start(self, images, labels=None):
        """Fit the ``"class_gaussian"`` chain start to training ``images`` (and their
        ``labels``, one per image; a JEM needs them) and fill the replay buffer from it."""
        if self.start is None:
            raise ValueError("fit_chain_start needs a model built with chain_start='class_gaussian'.")
        if self.num_outputs > 1 and labels is None:
            raise ValueError("fit_chain_start needs the images' labels: one Gaussian per class.")
        self.start.fit(images, labels if self.num_outputs > 1 else None)
        seed = tf.constant([0 if self.seed is None else self.seed, 1], tf.int64)
        self.buffer.fill(self.chain_starts(self.buffer_size, self.buffer.slot_labels(), seed))
        return self

    def check_start_fitted(self):
        """A clear error when the ``"class_gaussian"`` chain start was never fitted."""
        if self.start is not None and not self.start.is_fitted:
            raise ValueError("This model starts its chains from Gaussians fitted to the data: "
                             "call model.fit_chain_start(train_images, train_labels) first.")

    def fit(self, *args, **kwargs):
        self.check_start_fitted()
        return super().fit(*args, **kwargs)

    def chain_starts(self, num_samples, labels, seed):
        """Initial chain states: uniform noise, or draws of the fitted class Gaussians
        (for ``labels``; a label of -1 or ``labels=None`` draws the class from the
        training set's proportions)."""
        if self.start is None:
            return self.uniform_noise(num_samples, seed)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        drawn = self.start.draw_labels(num_samples, seeds[0])
        if labels is not None:
            labels = tf.cast(labels, tf.int32)
            drawn = tf.where(labels >= 0, labels, drawn)
        return self.start.sample(drawn, seeds[1])

    def sample_negatives(self, batch_size, labels=None):
        """Run the sampler from replay-buffer states and write the results back."""
        restart = None if self.start is None else (
            lambda chain_labels, seed: self.chain_starts(batch_size, chain_labels, seed))
        starts, slots = self.buffer.sample(batch_size, labels, restart_fn=restart)
        samples = self._run_sampler(starts, labels, self.next_seed())
        self.buffer.update(slots, samples)
        return tf.stop_gradient(samples)

    def run_chains(self, x, labels, seed, steps, refine_steps):
        """``steps`` Langevin steps from ``x`` then ``refine_steps`` noise-free ones
        (on ``E(x, y)`` when ``labels`` are given); graph-friendly, no checks."""
        seed = tf.cast(seed, tf.int64)
        x = self._run_sampler(x, labels, seed, steps=steps)
        return self.refine(x, labels, tf.random.experimental.stateless_fold_in(seed, 1),
                           refine_steps)

    def refine(self, x, labels, seed, steps):
        """``steps`` noise-free steps from ``x`` (none compiled when ``steps`` is 0)."""
        if isinstance(steps, int) and steps == 0:
            return x
        energy_fn = self.energy if labels is None else self.conditional_energy
        return self.refiner(energy_fn, x, seed, steps=steps, condition=labels)

    def generate(self, num_samples, steps=None, labels=None, seed=0, snapshot_every=0,
                 unconditional_steps=0, refine_steps=None):
        """Samples from fresh chain starts (not from the replay buffer).

        Chains start from :meth:`chain_starts` (uniform noise, or the fitted class
        Gaussians), run ``steps`` Langevin steps and then ``refine_steps`` noise-free ones.

        Args:
            num_samples: number of samples.
            steps: Langevin steps (defaults to the sampler's).
            labels: optional class labels ``[num_samples]`` for ``E(x, y)``.
            seed: integer seed; the same seed gives the same samples.
            snapshot_every: if > 0 also return chain snapshots (see the sampler).
            unconditional_steps: with ``labels``, run the first this many of the
                ``steps`` on ``E(x)`` (noise to digit-like images) and the rest on
                ``E(x, y)``: the chain still targets ``p(x|y)``, from a better start.
            refine_steps: noise-free steps at the end (defaults to the model's
                ``refine_steps``); the snapshots show the chain before them.
        """
        steps = self.sampler.steps if steps is None else steps
        refine_steps = self.refine_steps if refine_steps is None else int(refine_steps)
        self.check_start_fitted()
        if int(num_samples) > MAX_SAMPLES_PER_CALL:
            raise ValueError(f"num_samples {num_samples} is more than one call can hold in memory "
                             f"(at most {MAX_SAMPLES_PER_CALL}); call generate in batches.")
        if (int(num_samples) < 1 or int(steps) < 0 or refine_steps < 0
                or not 0 <= unconditional_steps <= int(steps)):
            raise ValueError(f"num_samples must be >= 1, steps and refine_steps >= 0 and "
                             f"unconditional_steps in [0, steps], got {num_samples}, {steps}, "
                             f"{refine_steps} and {unconditional_steps}.")
        if unconditional_steps and (labels is None or snapshot_every):
            raise ValueError("unconditional_steps needs labels and no snapshot_every.")
        seeds = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 2)
        if labels is not None:
            labels = tf.convert_to_tensor(labels, tf.int32)
            valid = labels.shape == (int(num_samples),) and bool(
                0 <= tf.reduce_min(labels) and tf.reduce_max(labels) < self.num_outputs)
            if self.num_outputs > 1 and not valid:  # (one output: conditional_energy says why)
                raise ValueError(
                    f"labels must be {num_samples} class indices in [0, {self.num_outputs}), "
                    f"got {labels.numpy().tolist()}."
                )
        x = self.chain_starts(int(num_samples), labels, seeds[0])
        if unconditional_steps:
            x = self._run_sampler(x, None, seeds[1], steps=unconditional_steps)
            return self.run_chains(x, labels, tf.random.experimental.stateless_fold_in(seeds[1], 1),
                                   int(steps) - unconditional_steps, refine_steps)
        if snapshot_every:
            x, snapshots = self._run_sampler(x, labels, seeds[1], steps=steps,
                                             snapshot_every=snapshot_every)
            refined = self.refine(x, labels, tf.random.experimental.stateless_fold_in(seeds[1], 1),
                                  refine_steps)
            return refined, snapshots
        return self.run_chains(x, labels, seeds[1], steps, refine_steps)

    # --- objective ----------------------------------------------------------
    def negative_labels(self, labels):
        """Labels for the negatives' sampler, or ``None`` for unconditional sampling."""
        return None

    def loss_terms(self, scores_real, scores_sample, labels):
        energy_real = marginal_energy(scores_real)
        energy_sample = marginal_energy(scores_sample)
        cdiv = tf.reduce_mean(energy_real) - tf.reduce_mean(energy_sample)
        reg = tf.reduce_mean(energy_real**2) + tf.reduce_mean(energy_sample**2)
        return {
            "loss": self.cdiv_weight * cdiv + self.reg_weight * reg,
            "cdiv": cdiv,
            "reg": reg,
            "energy_real": tf.reduce_mean(energy_real),
            "energy_sample": tf.reduce_mean(energy_sample),
        }

    def draws_negatives(self, training):
        return training

    def negatives(self, x, y=None, training=False):
        """Negative images: Langevin samples from the replay buffer when training,
        uniform noise when evaluating."""
        batch_size = tf.shape(x)[0]
        if self.draws_negatives(training):
            return self.sample_negatives(batch_size, self.negative_labels(y))
        return self.uniform_noise(batch_size, self.next_seed(self.eval_seed_generator))

    def compute_metrics(self, x, y, negatives, training=False):
        """The objective and its parts for real images ``x`` against ``negatives``."""
        batch_size = tf.shape(x)[0]
        if training:
            x = x + self.real_noise * tf.random.stateless_normal(tf.shape(x), self.next_seed())
            x = tf.clip_by_value(x, *self.value_range)
        # One forward pass over real and negative images.
        scores = self.network(tf.concat([x, negatives], axis=0), training=training)
        return self.loss_terms(scores[:batch_size], scores[batch_size:], y)

    # --- thin train / test steps ------------------------------------------------
    def train_step(self, data):
        x, y = _unpack(data)
        # Sampling stays outside the tape: the chain is not differentiated through.
        negatives = self.negatives(x, y, training=True)
        with tf.GradientTape() as tape:
            metrics = self.compute_metrics(x, y, negatives, training=True)
            # Gradients are summed over replicas under tf.distribute.
            loss = metrics["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
            # Mixed float16: scaled against underflow here, unscaled by the LossScaleOptimizer.
            loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self.network.trainable_variables)
        self.optimizer.apply(grads, self.network.trainable_variables)
        return self.report(metrics, x, y)

    def test_step(self, data):
        x, y = _unpack(data)
        metrics = self.compute_metrics(x, y, self.negatives(x, y), training=False)
        return self.report(metrics, x, y)

    def report(self, metrics, x, y):
        """Update the metric trackers with the ``metrics`` of one batch ``x`` (labels ``y``)."""
        return self.update_trackers(metrics, tf.shape(x)[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            buffer_size=self.buffer_size,
            reinit_prob=self.reinit_prob,
            reg_weight=self.reg_weight,
            cdiv_weight=self.cdiv_weight,
            real_noise=self.real_noise,
            chain_start=self.chain_start,
            start_rank=self.start_rank,
            refine_steps=self.refine_steps,
            refine_step_size=self.refine_step_size,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ebm")
class JEM(EBM):
    """Joint Energy-based Model (Grathwohl et al. 2020): a classifier that is also an EBM.

    The network's outputs are class logits ``f(x)``: ``p(y|x) = softmax(f(x))``
    and ``E(x) = -logsumexp_y f(x)[y]``. The loss adds cross-entropy to the EBM
    objective:

    ``loss = ce_weight * CE(f(x_real), y) + px_weight * (cdiv_weight * cdiv + reg_weight * reg)``.

    With ``px_weight=0`` no Langevin sampling is done and the model is a plain
    classifier (the baseline for calibration and OOD comparisons). :meth:`calibrate` fits
    a temperature ``T`` on held-out images; :meth:`class_logits` then gives ``f(x) / T``,
    the logits of the calibrated ``p(y|x)`` (energies and predicted classes unchanged). With
    ``conditional_sampling=True`` negatives are drawn from ``E(x, y)`` for
    random labels from a class-partitioned buffer; with a number in ``(0, 1)``
    only that share of them, the rest from ``E(x)``.

    Args:
        network: a ``keras.Model`` mapping images to ``[batch, num_classes]`` logits.
        ce_weight: weight of the cross-entropy term.
        px_weight: weight of the generative ``log p(x)`` terms (0 disables them; ``train.py``
            uses 0.3).
        conditional_sampling: share of negatives sampled class-conditionally
            (``True`` = all, ``False`` = none).
        temperature: divides the logits of :meth:`class_logits` (1: none; set by
            :meth:`calibrate`).
        **kwargs: passed to :class:`EBM`.
    """

    metric_names = ("loss", "ce", "cdiv", "reg", "energy_real", "energy_sample")

    def __init__(self, network, ce_weight=1.0, px_weight=1.0, conditional_sampling=False,
                 temperature=1.0, **kwargs):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        self.conditional_sampling = float(conditional_sampling)
        if not 0.0 <= self.conditional_sampling <= 1.0:
            raise ValueError(f"conditional_sampling must be a share in [0, 1] (or a bool), "
                             f"got {conditional_sampling}.")
        super().__init__(network, **kwargs)
        if self.num_outputs < 2:
            raise ValueError(
                f"JEM needs a network with one logit per class; got {self.num_outputs} output(s). "
                "Use EBM for a one-output energy network."
            )
        self.ce_weight = float(ce_weight)
        self.px_weight = float(px_weight)
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def conditional_buffer(self):
        return self.conditional_sampling > 0

    @property
    def metrics(self):
        return super().metrics + [self.accuracy]

    def draws_negatives(self, training):
        return training and self.px_weight > 0

    def class_logits(self, x, training=False):
        """Logits of ``p(y|x)``: ``f(x) / temperature``."""
        return self(x, training=training) / self.temperature

    def calibrate(self, x, y=None, batch_size=500):
        """Set :attr:`temperature` to the one that minimises the negative log-likelihood of
        ``p(y|x)`` on held-out data (temperature scaling, Guo et al. 2017) and return it.

        ``x``: images with labels ``y``, or a ``tf.data.Dataset`` of ``(images, labels)``
        batches. Use images the model was not trained on (e.g. the validation split).
        """
        if isinstance(x, tf.data.Dataset):
            y = np.concatenate([np.asarray(labels) for _, labels in x])
            logits = self.predict(x, verbose=0)
        elif y is None:
            raise ValueError("calibrate needs labels: pass calibrate(images, labels) or a "
                             "tf.data.Dataset of (images, labels) batches.")
        else:
            logits = self.predict(np.asarray(x, dtype="float32"), batch_size=batch_size,
                                  verbose=0)
        self.temperature = fit_temperature(logits, np.asarray(y))
        return self.temperature

    def negative_labels(self, labels):
        if not self.conditional_sampling:
            return None
        seed = self.next_seed()
        random_labels = tf.random.stateless_uniform(
            tf.shape(labels)[:1], seed=seed, maxval=self.num_outputs, dtype=tf.int32
        )
        if self.conditional_sampling == 1.0:
            return random_labels
        # -1: an unconditional chain, started from any buffer slot.
        conditional = tf.random.stateless_uniform(
            tf.shape(labels)[:1], seed=tf.random.experimental.stateless_fold_in(seed, 1))
        return tf.where(conditional < self.conditional_sampling, random_labels, -1)

    def loss_terms(self, scores_real, scores_sample, labels):
        if labels is None:
            raise ValueError("JEM needs labels: pass (images, labels) batches.")
        terms = super().loss_terms(scores_real, scores_sample, labels)
        ce = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(labels, scores_real, from_logits=True)
        )
        generative = terms["loss"] if self.px_weight > 0 else 0.0
        terms["loss"] = self.ce_weight * ce + self.px_weight * generative
        terms["ce"] = ce
        terms["logits"] = scores_real
        return terms

    def report(self, metrics, x, y):
        self.accuracy.update_state(y, metrics["logits"])
        results = super().report(metrics, x, y)
        results["accuracy"] = self.accuracy.result()
        return results

    def get_config(self):
        config = super().get_config()
        config.update(
            ce_weight=self.ce_weight,
            px_weight=self.px_weight,
            conditional_sampling=self.conditional_sampling,
            temperature=self.temperature,
        )
        return config


def _unpack(data):
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x, y
