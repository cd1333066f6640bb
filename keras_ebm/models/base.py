"""What every keras_ebm model shares: an energy over samples in a range, metric trackers, seeds."""

import keras
import tensorflow as tf

from keras_ebm.samplers.langevin import AnnealedLangevinSampler, LangevinSampler


def marginal_energy(scores):
    """``E(x) = -logsumexp_y f(x)[y]`` from scores ``[batch, num_outputs]``."""
    return -tf.reduce_logsumexp(scores, axis=-1)


class EnergyModel(keras.Model):
    """Base of the keras_ebm models: an energy ``E(x)`` over samples of ``sample_shape`` in
    ``value_range``, one Keras ``Mean`` tracker per name in ``metric_names`` (what
    ``train_step``/``test_step`` report) and a seed generator for the model's randomness.

    Subclasses implement :meth:`energy` and ``generate(num_samples, steps, seed,
    snapshot_every)`` and call :meth:`finish_init` at the end of their ``__init__``.
    """

    metric_names = ()
    sampler_name = "Langevin"  # the chain's name in figure titles
    buffer = None  # a ReplayBuffer of persistent chains, in the models that keep one
    num_outputs = 1  # class logits of a classifier-energy (JEM), else one output

    def __init__(self, sample_shape, value_range=(-1.0, 1.0), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.value_range = tuple(float(v) for v in value_range)
        self.seed = seed

    def finish_init(self):
        """Create the seed generator and the metric trackers; the model is then built."""
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    def energy(self, x, training=False):
        """Per-sample energy ``E(x)``, shape ``[batch]`` (lower is more likely)."""
        raise NotImplementedError

    def density_energy(self, x):
        """The energy of the model's density of clean data, ``p(x) ~ exp(-density_energy(x))``:
        :meth:`energy`, except in models whose energy is scaled per noise level."""
        return self.energy(x)

    def next_seed(self, generator=None):
        """A fresh stateless seed ``[2]`` from the model's (or ``generator``'s) stream."""
        return tf.cast((generator or self.seed_generator).next(), tf.int64)[:2]

    def uniform_noise(self, num_samples, seed):
        """``num_samples`` draws of uniform noise over ``value_range``."""
        return tf.random.stateless_uniform(
            (num_samples,) + self.sample_shape, seed=seed,
            minval=self.value_range[0], maxval=self.value_range[1])

    def update_trackers(self, metrics, batch_size):
        """Feed the tracked values among ``metrics`` (means over a batch of ``batch_size``) to
        their trackers; their running means. Each batch counts as many times as it has
        examples, so a short last batch weighs less, and an empty one (a replica left without
        examples at the end of a dataset) not at all."""
        weight = tf.cast(batch_size, tf.float32)
        tracked = [name for name in metrics if name in self.trackers]
        for name in tracked:
            value = tf.cast(metrics[name], tf.float32)
            value = tf.where(weight > 0, value, tf.zeros_like(value))  # an empty batch's NaN
            self.trackers[name].update_state(value, sample_weight=weight)
        return {name: self.trackers[name].result() for name in tracked}

    def get_config(self):
        config = super().get_config()
        config.update(value_range=self.value_range, seed=self.seed)
        return config


class NetworkEnergyModel(EnergyModel):
    """An :class:`EnergyModel` whose energy is a network's scores, ``E(x) = -logsumexp f(x)``,
    sampled by a :class:`LangevinSampler` (the EBM, JEM and score-matching models)."""

    def __init__(self, network, sampler=None, value_range=(-1.0, 1.0), seed=None, **kwargs):
        super().__init__(network.input_shape[1:], value_range=value_range, seed=seed, **kwargs)
        if sampler is None:
            sampler = self.default_sampler()
        elif isinstance(sampler, dict):
            kind = AnnealedLangevinSampler if "noise_levels" in sampler else LangevinSampler
            sampler = kind.from_config(sampler)
        self.network = network
        self.sampler = sampler
        self.num_outputs = int(network.output_shape[-1])

    def default_sampler(self):
        return LangevinSampler(value_range=self.value_range)

    def call(self, x, training=False):
        return self.network(x, training=training)

    def energy(self, x, training=False):
        return marginal_energy(self.network(x, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(network=keras.saving.serialize_keras_object(self.network),
                      sampler=self.sampler.get_config())
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)
