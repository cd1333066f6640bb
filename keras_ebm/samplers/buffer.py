"""Replay buffer of persistent Langevin chains, held in Keras variables."""

import keras
import tensorflow as tf

from keras_ebm import distribute


class ReplayBuffer(keras.layers.Layer):
    """A fixed-size store of past Langevin samples (persistent chains).

    Each call to :meth:`sample` draws starting points from the buffer and,
    with probability ``reinit_prob``, replaces a draw by fresh uniform noise
    in ``value_range`` (5% in Du & Mordatch 2019 and JEM, Grathwohl et al.
    2020). :meth:`update` writes the chains' end states back to their slots.

    The buffer is a non-trainable Keras variable, so it is saved with the
    model (``.keras`` files, ``BackupAndRestore``).

    With ``num_classes`` set, the buffer is split into ``num_classes`` equal
    partitions and :meth:`sample` with ``labels`` draws from each label's
    own partition (class-conditional persistent chains, as in JEM); a label of
    -1 draws from any slot (an unconditional chain among conditional ones).

    Args:
        size: number of stored samples (default 10000, as in JEM).
        sample_shape: shape of one sample, e.g. ``(28, 28, 1)``.
        reinit_prob: probability of restarting a chain from noise.
        value_range: ``(low, high)`` of the uniform re-initialisation.
        num_classes: number of class partitions, or ``None``.
        seed: integer seed of the buffer's random draws.
    """

    def __init__(self, size=10000, sample_shape=(28, 28, 1), reinit_prob=0.05,
                 value_range=(-1.0, 1.0), num_classes=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(size) <= 0:
            raise ValueError(f"Replay buffer size must be > 0, got {size}.")
        if not 0.0 <= reinit_prob <= 1.0:
            raise ValueError(f"reinit_prob must be in [0, 1], got {reinit_prob}.")
        if num_classes is not None and int(size) < int(num_classes):
            raise ValueError(
                f"Replay buffer size ({size}) must be at least num_classes ({num_classes})."
            )
        self.size = int(size)
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.reinit_prob = float(reinit_prob)
        self.value_range = tuple(float(v) for v in value_range)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.samples = self.add_weight(
            shape=(self.size,) + self.sample_shape,
            initializer=keras.initializers.RandomUniform(*self.value_range, seed=seed),
            trainable=False,
            name="samples",
        )

    @property
    def slots_per_class(self):
        return self.size // self.num_classes

    def _noise(self, shape, seed):
        return tf.random.stateless_uniform(
            shape, seed=seed, minval=self.value_range[0], maxval=self.value_range[1]
        )

    def sample(self, batch_size, labels=None, restart_fn=None):
        """Draw ``batch_size`` chain starts; returns ``(states, slot_indices)``.

        Under ``tf.distribute`` each replica takes its slice of one draw for the
        global batch: replicas start distinct chains, exactly as one device would.

        Args:
            batch_size: chains per replica.
            labels: optional class per chain (see the class docstring).
            restart_fn: optional ``(labels or None, seed) -> states`` giving the
                restarted chains' states instead of uniform noise (each replica
                draws its own).
        """
        replica, num_replicas = distribute.current_replica()
        global_size = batch_size * num_replicas
        mine = slice(replica * batch_size, (replica + 1) * batch_size)
        seeds = tf.random.experimental.stateless_split(self._next_seed(), 3)
        if labels is None:
            indices = tf.random.stateless_uniform(
                [global_size], seed=seeds[0], maxval=self.size, dtype=tf.int32
            )[mine]
        else:
            if self.num_classes is None:
                raise ValueError("Class-conditional sampling needs a buffer built with num_classes.")
            offsets = tf.random.stateless_uniform(
                [global_size], seed=seeds[0], maxval=self.slots_per_class, dtype=tf.int32
            )[mine]
            labels = tf.cast(labels, tf.int32)
            anywhere = tf.random.stateless_uniform(
                [global_size], seed=tf.random.experimental.stateless_fold_in(seeds[0], 1),
                maxval=self.size, dtype=tf.int32)[mine]
            # A label of -1 (an unconditional chain) may start from any slot.
            indices = tf.where(labels >= 0, labels * self.slots_per_class + offsets, anywhere)
        states = tf.gather(self.samples, indices)
        restart = tf.random.stateless_uniform([global_size], seed=seeds[1])[mine] < self.reinit_prob
        restart = tf.reshape(restart, [-1] + [1] * len(self.sample_shape))
        if restart_fn is None:
            fresh = self._noise((global_size,) + self.sample_shape, seeds[2])[mine]
        else:
            fresh = restart_fn(labels, tf.random.experimental.stateless_fold_in(seeds[2], replica))
        states = tf.where(restart, tf.cast(fresh, states.dtype), states)
        return states, indices

    def fill(self, states):
        """Replace every stored chain by ``states`` (``[size, *sample_shape]``; with classes,
        slot ``i`` belongs to class ``i // slots_per_class``)."""
        self.samples.assign(tf.cast(states, self.samples.dtype))

    def slot_labels(self):
        """The class each slot belongs to, ``[size]`` (-1 for the slots after the last
        partition, and for every slot of an unpartitioned buffer)."""
        if self.num_classes is None:
            return tf.fill([self.size], -1)
        labels = tf.range(self.size) // self.slots_per_class
        return tf.where(labels < self.num_classes, labels, -1)

    def update(self, indices, states):
        """Write ``states`` into the slots ``indices`` (as returned by :meth:`sample`).

        Under ``tf.distribute`` every replica writes the chains of all replicas,
        so the replicas' copies of the buffer stay identical. A slot drawn twice keeps the
        state listed last (a scatter with repeated indices keeps an arbitrary one on GPUs,
        which would let the replicas' copies drift apart).
        """
        states = tf.cast(states, self.samples.dtype)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            indices = context.all_gather(indices, axis=0)
            states = context.all_gather(states, axis=0)
        indices, states = last_write_per_slot(indices, states)
        if tf.distribute.has_strategy():
            # Sparse in-place scatters are not implemented for distributed variables.
            self.samples.assign(
                tf.tensor_scatter_nd_update(self.samples, indices[:, None], states)
            )
        else:
            self.samples.value.scatter_nd_update(indices[:, None], states)

    def _next_seed(self):
        return tf.cast(self.seed_generator.next(), tf.int64)[:2]

    def get_config(self):
        config = super().get_config()
        config.update(
            size=self.size,
            sample_shape=self.sample_shape,
            reinit_prob=self.reinit_prob,
            value_range=self.value_range,
            num_classes=self.num_classes,
            seed=self.seed,
        )
        return config


def last_write_per_slot(indices, states):
    """``(slots, states)`` with each slot of ``indices`` once, holding the last of its states."""
    slots, position = tf.unique(indices)
    last = tf.math.unsorted_segment_max(tf.range(tf.shape(indices)[0]), position,
                                        tf.shape(slots)[0])
    return slots, tf.gather(states, last)
