"""A fixed reference classifier that judges generated images.

It is deliberately not an EBM and not trained by keras_ebm's models (ReLU, batch
norm, max-pooling, dropout: a standard discriminative CNN, stronger than the models
it judges), so it can score samples from any model the same way; its 128-unit
``features`` layer is what the classifier FID compares. The MNIST one ships with the
package; for any other dataset :func:`for_dataset` trains one on its training images
(once: it is kept beside the evaluation). Rebuild the shipped one with

    python -m keras_ebm.cli.reference [PATH]

which trains deterministically (fixed seeds, op determinism) on the bundled
MNIST training split and overwrites ``keras_ebm/data/files/mnist_reference_classifier.keras``.
"""

import contextlib
import logging
import os
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import data, files

log = logging.getLogger("keras_ebm")

PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "files",
                    "mnist_reference_classifier.keras")


FEATURES = "features"  # the layer whose activations the classifier FID compares


def build_classifier(input_shape=(28, 28, 1), num_classes=10):
    """Two VGG-style blocks (3x3 convolutions, batch norm, max-pooling, dropout), then a
    128-unit feature layer and the logits."""
    if min(input_shape[:2]) < 4:
        raise ValueError(f"The reference classifier takes images of at least 4x4 pixels; "
                         f"got input shape {tuple(input_shape)}.")
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64):
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu", name=FEATURES)(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="mnist_reference_classifier")


def train_reference_classifier(splits, epochs=12, seed=0, verbose=2, min_steps=1000):
    """Train a judge on ``splits``' training and validation images (inputs in [-1, 1],
    shifted by up to 2 pixels) for ``epochs``, or more on small datasets: at least
    ``min_steps`` batches, which batch norm's running statistics need; return it,
    uncompiled, its test accuracy and the epochs it trained."""
    with deterministic_ops():
        return _train_reference_classifier(splits, epochs, seed, verbose, min_steps)


@contextlib.contextmanager
def deterministic_ops():
    """Op determinism for the judge's training only: the caller's process keeps its setting
    (TensorFlow has no public switch back, hence its config module)."""
    from tensorflow.python.framework import config as tf_config

    was_on = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_on:
            tf_config.disable_op_determinism()


def _train_reference_classifier(splits, epochs, seed, verbose, min_steps):
    keras.utils.set_random_seed(seed)
    images = np.concatenate([splits.x_train, splits.x_val])
    labels = np.concatenate([splits.y_train, splits.y_val])
    train = data.make_dataset(images, labels, min(128, len(images)), shuffle=True, seed=seed,
                              shift=2)
    test = data.make_dataset(splits.x_test, splits.y_test, 512)
    epochs = max(epochs, -(-min_steps // len(train)))
    model = build_classifier(splits.image_shape, splits.num_classes)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, epochs * len(train), alpha=0.01)
    model.compile(keras.optimizers.Adam(schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(train, epochs=epochs, verbose=verbose, shuffle=False)
    _, accuracy = model.evaluate(test, verbose=0)
    judge = build_classifier(splits.image_shape, splits.num_classes)  # no optimizer state
    judge.set_weights(model.get_weights())
    return judge, float(accuracy), epochs


def judges(classifier, splits):
    """Whether ``classifier`` reads ``splits``' images and classes."""
    return (tuple(classifier.input_shape[1:]) == tuple(splits.image_shape)
            and classifier.output_shape[-1] == splits.num_classes)


def for_dataset(splits, cache_path, epochs=12, seed=0):
    """The judge of ``splits``: the shipped MNIST classifier for MNIST-shaped data with 10
    classes, else the one kept at ``cache_path``, trained there first if missing (its test
    accuracy is written beside it)."""
    shape, classes = tuple(splits.image_shape), splits.num_classes
    if shape == (28, 28, 1) and classes == 10:
        return load_reference_classifier()
    if os.path.isfile(cache_path):
        judge = keras.saving.load_model(cache_path)
        if judges(judge, splits):
            return judge
    log.info("Training a reference classifier for %s images of %d classes...",
             "x".join(map(str, shape)), classes)
    judge, accuracy, epochs = train_reference_classifier(splits, epochs=epochs, seed=seed)
    log.info("Reference classifier test accuracy %.4f; kept at %s", accuracy, cache_path)
    os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
    with files.atomic_path(cache_path, suffix=".keras") as tmp:
        judge.save(tmp)
    files.write_json(os.path.splitext(cache_path)[0] + ".json",
                     {"test_accuracy": accuracy, "epochs": epochs, "seed": seed})
    return judge


def load_reference_classifier(path=PATH):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Reference classifier not found at {path}; rebuild it with python -m keras_ebm.cli.reference"
        )
    return keras.saving.load_model(path)


_COMPILED = weakref.WeakKeyDictionary()  # one graph per model, for every batch size


class _Inference:
    """``model(x)`` as a callable object (TensorFlow counts traces of plain functions per code
    object, so many models' lambdas would read as one function retracing)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        return self.model(x, training=False)


def predict(model, images, batch_size=500):
    """``model(images)`` in batches as a numpy array (``Model.predict`` traces again for every
    new size of the last batch; this traces once per image shape)."""
    images = np.asarray(images, dtype="float32")
    if model not in _COMPILED:
        _COMPILED[model] = {}
    compiled = _COMPILED[model]
    if images.shape[1:] not in compiled:
        compiled[images.shape[1:]] = tf.function(
            _Inference(model), input_signature=[tf.TensorSpec([None, *images.shape[1:]], tf.float32)])
    run = compiled[images.shape[1:]]
    return np.concatenate([run(images[i:i + batch_size]).numpy()
                           for i in range(0, len(images), batch_size)])


def label_accuracy(classifier, images, labels, batch_size=500):
    """Fraction of ``images`` (in [-1, 1]) that ``classifier`` assigns to ``labels``."""
    logits = predict(classifier, images, batch_size)
    return float(np.mean(logits.argmax(-1) == np.asarray(labels)))
