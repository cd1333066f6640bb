"""Devices: ``tf.distribute`` strategies (one device, several GPUs, several machines)
and mixed precision.

``--batch_size`` is the global batch: the dataset is batched with it and
``fit`` splits each batch over the replicas; the model divides its loss by the
number of replicas, so the summed gradients equal the single-device ones.
"""

import contextlib
import logging
import os

import keras
import tensorflow as tf

from keras_ebm.config import MIXED_PRECISION, STRATEGIES, check_tf_config

log = logging.getLogger("keras_ebm")


def get_strategy(name="auto"):
    """The ``tf.distribute.Strategy`` called ``name``.

    * ``"auto"``: ``"mirrored"`` when more than one GPU is visible, else ``"default"``.
    * ``"default"``: no distribution (one device).
    * ``"mirrored"``: ``MirroredStrategy`` over all local GPUs (or over the logical
      CPU devices when there is no GPU).
    * ``"multiworker"``: ``MultiWorkerMirroredStrategy``; the cluster and this
      process's place in it come from the ``TF_CONFIG`` environment variable.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy={name} is not one of {', '.join(STRATEGIES)}.")
    # Physical devices only: listing logical ones starts the TF runtime, and
    # MultiWorkerMirroredStrategy must be created before that.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _strategies:
        _strategies[name] = _create(name, gpus)
    return _strategies[name]


# One strategy of each kind per process: the collective ops of two MirroredStrategy
# objects clash (same keys), and a second MultiWorkerMirroredStrategy is refused.
_strategies = {}


def _create(name, gpus):
    if name == "mirrored":
        # Without a GPU: the logical CPU devices (one, unless configured as in the tests).
        devices = None if gpus else [cpu.name for cpu in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        if strategy.num_replicas_in_sync == 1:
            log.warning("--strategy mirrored with one device: no speed-up.")
        return strategy
    check_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


@contextlib.contextmanager
def precision(mixed_precision="none"):
    """Layers built in this block compute in ``"bfloat16"`` or ``"float16"`` and keep
    float32 variables (Keras mixed precision); ``"none"`` leaves them in float32.

    float16 also needs loss scaling: wrap the optimizer in
    ``keras.optimizers.LossScaleOptimizer`` (the models' ``train_step`` calls
    ``optimizer.scale_loss``).
    """
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={mixed_precision} is not one of "
                         f"{', '.join(MIXED_PRECISION)}.")
    previous = keras.mixed_precision.dtype_policy()
    if mixed_precision != "none":
        keras.mixed_precision.set_dtype_policy(f"mixed_{mixed_precision}")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def current_replica():
    """``(replica id, number of replicas)``: ``(0, 1)`` outside ``strategy.run``."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


# Workaround for keras-team/keras#20585 (tensorflow/tensorflow#72388), Keras 3.15: under
# MultiWorkerMirroredStrategy, fit/evaluate (1) reduce the first batch for a "symbolic build"
# and fail on its PerReplica values, and (2) reduce scalar step logs along axis 0 and fail.
# keras_ebm models create all their state in __init__, so the symbolic build is skipped (the
# optimizer is built here, inside the scope, instead) and step logs become rank-1 tensors (the
# reduction turns them back into scalars). tests/training/test_distribute.py::
# test_keras_multi_worker_fit_bug_is_still_there fails once Keras is fixed: then delete this.
def patch_for_multi_worker(model, strategy):
    """Let ``fit``/``evaluate`` run under ``MultiWorkerMirroredStrategy`` (no-op otherwise)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    train_step, test_step = model.train_step, model.test_step
    model.train_step = lambda data: _rank1(train_step(data))
    model.test_step = lambda data: _rank1(test_step(data))
    return model


def _rank1(logs):
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
