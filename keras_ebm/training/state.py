"""The whole training state as arrays, and the stream of training batches.

A run can resume after a crash, or roll back after a divergence, only if every
variable that training changes comes back: the network's weights, the replay
buffer, the seed generators of the model and the buffer (Keras keeps them in
``model.variables``, not ``model.weights``), the optimizer's slots and step
counter, the learning-rate scale and, for budgeted runs, the share of the budget spent. :func:`capture` and :func:`restore` move
all of them to and from numpy; :func:`save` and :func:`load` write them to one
``.npz`` file atomically (write, then rename).

:func:`training_stream` makes the order of training batches a function of the
position in the run, so a resumed run sees the same batches as an
uninterrupted one.
"""

import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import files

FORMAT = 1


class StateError(ValueError):
    """A saved training state cannot be used; the message says why and what to do."""


@keras.saving.register_keras_serializable(package="keras_ebm")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``scale * schedule(step)``; the divergence guard lowers ``scale`` after a rollback.

    ``scale`` is a variable, so a change reaches the compiled train step.
    """

    def __init__(self, schedule, scale=1.0):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        self.schedule = schedule
        self.scale = keras.Variable(scale, dtype="float32", trainable=False, name="lr_scale")

    def __call__(self, step):
        return self.scale * self.schedule(step)

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "scale": float(keras.ops.convert_to_numpy(self.scale))}


@keras.saving.register_keras_serializable(package="keras_ebm")
class BudgetCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha`` times it over the share of a
    compute budget spent (``progress``, a variable in [0, 1] that a
    :class:`~keras_ebm.training.callbacks.ComputeBudget` callback advances), not over steps: the
    schedule fits a run whose length is set by time rather than by epochs. With
    ``decay_steps`` (the run's step limit) the decay follows whichever of the two is nearer
    its end, so a run whose epochs end before its budget still finishes its decay."""

    def __init__(self, initial_learning_rate, alpha=0.0, progress=0.0, decay_steps=None):
        if decay_steps is not None and not decay_steps >= 1:
            raise ValueError(f"decay_steps must be >= 1 (or None), got {decay_steps}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.alpha = float(alpha)
        self.decay_steps = None if decay_steps is None else int(decay_steps)
        self.progress = keras.Variable(progress, dtype="float32", trainable=False,
                                       name="budget_spent")

    def __call__(self, step):
        progress = tf.convert_to_tensor(self.progress)
        if self.decay_steps:
            progress = tf.maximum(progress, tf.cast(step, tf.float32) / self.decay_steps)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        cosine = 0.5 * (1.0 + tf.cos(np.pi * progress))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "alpha": self.alpha,
                "progress": float(keras.ops.convert_to_numpy(self.progress)),
                "decay_steps": self.decay_steps}


def _schedule(model):
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # float16 wrapper
    return getattr(optimizer, "_learning_rate", None)  # Keras keeps the schedule here


def budget_progress(model):
    """The spent-budget variable of a :class:`BudgetCosineDecay` schedule, or ``None``."""
    schedule = _schedule(model)
    schedule = getattr(schedule, "schedule", schedule)  # inside a ScaledSchedule
    return schedule.progress if isinstance(schedule, BudgetCosineDecay) else None


def lr_scale(model):
    """The :class:`ScaledSchedule` scale variable of the model's optimizer, or ``None``."""
    schedule = _schedule(model)
    return schedule.scale if isinstance(schedule, ScaledSchedule) else None


def state_variables(model):
    """Every variable training changes (see the module docstring), in a fixed order."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = list(model.variables) + list(optimizer.variables)
    extra = [v for v in (lr_scale(model), budget_progress(model)) if v is not None]
    return variables + extra


def capture(model):
    """A copy of the training state as a list of numpy arrays."""
    return [keras.ops.convert_to_numpy(v) for v in state_variables(model)]


def restore(model, arrays, source="the saved state"):
    """Assign arrays from :func:`capture` back to the model's variables."""
    variables = state_variables(model)
    if len(arrays) != len(variables):
        raise StateError(
            f"{source} holds {len(arrays)} variables but this model has {len(variables)}: it "
            "was written by a different model or configuration."
        )
    for variable, value in zip(variables, arrays):
        if tuple(value.shape) != tuple(variable.shape):
            raise StateError(
                f"{source} does not match this model: {variable.path} has shape "
                f"{tuple(variable.shape)}, the saved value {tuple(value.shape)}."
            )
    for variable, value in zip(variables, arrays):
        variable.assign(value)


def save(model, path, **position):
    """Write the training state and ``position`` (JSON-serialisable) to ``path`` atomically."""
    arrays = {f"v{i}": a for i, a in enumerate(capture(model))}
    meta = json.dumps(dict(position, format=FORMAT))
    with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(meta), **arrays)
        f.flush()
        os.fsync(f.fileno())


def load(model, path):
    """Restore the training state saved at ``path``; return its position dict."""
    try:
        with np.load(path, allow_pickle=False) as data:
            position = json.loads(str(data["meta"]))
            arrays = [data[f"v{i}"] for i in range(len(data.files) - 1)]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise StateError(
            f"The backup {path} is unreadable ({type(err).__name__}: {err}). Delete it to "
            "start the run again from the beginning (earlier checkpoints stay in checkpoints/)."
        ) from None
    restore(model, arrays, source=f"The backup {path}")
    return position


def training_stream(train, steps_per_epoch, epochs, start_step=0):
    """The batches of ``epochs`` passes over ``train``, from batch ``start_step`` on.

    ``train`` must reshuffle on each pass (``make_dataset(shuffle=True)``): pass
    ``k`` uses its ``k``-th order, so the stream from ``start_step`` holds the
    same batches, in the same order, as the uninterrupted stream from 0.
    Random transforms that draw from stateful ops (``--dequantize``) are not
    reproduced.
    """
    epoch, skip = divmod(start_step, steps_per_epoch)
    if epoch >= epochs:
        return train.take(0)
    for _ in range(epoch):
        iter(train)  # each new iterator advances the shuffle to the next pass's order

    @tf.autograph.experimental.do_not_convert
    def one_pass(_):
        return train

    return train.skip(skip).concatenate(tf.data.Dataset.range(epoch + 1, epochs).flat_map(one_pass))
