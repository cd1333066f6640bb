"""A fixed reference MNIST classifier that judges generated digits.

It is deliberately not an EBM and not trained by keras_ebm's models (ReLU, batch
norm, max-pooling, dropout: a standard discriminative CNN, stronger than the models
it judges), so it can score samples from any model the same way; its 128-unit
``features`` layer is what the classifier FID compares. It ships with the package;
rebuild it with

    python -m keras_ebm.reference [PATH]

which trains deterministically (fixed seeds, op determinism) on the bundled
MNIST training split and overwrites ``keras_ebm/datasets/mnist_reference_classifier.keras``.
"""

import os
import sys
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import data

PATH = os.path.join(os.path.dirname(__file__), "datasets", "mnist_reference_classifier.keras")


FEATURES = "features"  # the layer whose activations the classifier FID compares


def build_classifier(input_shape=(28, 28, 1), num_classes=10):
    """Two VGG-style blocks (3x3 convolutions, batch norm, max-pooling, dropout), then a
    128-unit feature layer and the logits."""
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


def train_reference_classifier(epochs=12, seed=0):
    """Train on the 60000 MNIST training images (inputs in [-1, 1], shifted by up to 2
    pixels); return the model and its test accuracy."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    splits = data.load_dataset("mnist", validation_size=0, seed=seed)
    train = data.make_dataset(splits.x_train, splits.y_train, 128, shuffle=True, seed=seed,
                              shift=2)
    test = data.make_dataset(splits.x_test, splits.y_test, 512)
    model = build_classifier()
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, epochs * len(train), alpha=0.01)
    model.compile(keras.optimizers.Adam(schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(train, epochs=epochs, verbose=2, shuffle=False)
    _, accuracy = model.evaluate(test, verbose=0)
    return model, accuracy


def load_reference_classifier(path=PATH):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Reference classifier not found at {path}; rebuild it with python -m keras_ebm.reference"
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


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else PATH
    model, accuracy = train_reference_classifier()
    judge = build_classifier()  # uncompiled: no optimizer state in the shipped file
    judge.set_weights(model.get_weights())
    tmp = path + ".tmp.keras"
    judge.save(tmp)
    os.replace(tmp, path)
    print(f"Reference classifier test accuracy {accuracy:.4f}; saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
