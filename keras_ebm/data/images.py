"""Image datasets (bundled MNIST, ``.npz`` files, tensorflow-datasets) as :class:`Splits`,
and ``tf.data`` pipelines of images scaled to [-1, 1].

The default, MNIST, ships inside the package (``keras_ebm/data/files/mnist.npz``)
and is read with numpy, so training never needs the network. Other image
datasets come through tensorflow-datasets as ``tfds:NAME``.
"""

import os
import zipfile

import numpy as np
import tensorflow as tf

from keras_ebm.data.splits import DataError, Splits

BUNDLED = {"mnist": os.path.join(os.path.dirname(__file__), "files", "mnist.npz")}
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path):
    """Load an MNIST-style ``.npz`` (``x_train, y_train, x_test, y_test``) with numpy."""
    if not os.path.isfile(path):
        raise DataError(
            f"Data file not found: {path}. Restore it from the repository "
            "(git checkout -- keras_ebm/data/files/mnist.npz) or pass data_file=PATH."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in MNIST_KEYS if k not in data.files]
            if missing:
                raise DataError(
                    f"Data file {path} lacks the arrays {missing}; expected an .npz with "
                    f"{', '.join(MNIST_KEYS)} (the layout of keras.datasets.mnist)."
                )
            arrays = {k: data[k] for k in MNIST_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(
            f"Data file {path} is corrupt or not an .npz archive ({err}). "
            "Restore it from the repository or pass data_file=PATH."
        ) from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or len(x) != len(y):
            raise DataError(
                f"Data file {path}: x_{split} has shape {x.shape} and y_{split} {y.shape}; "
                "expected images [N, H, W] and N labels."
            )
    return arrays


def load_tfds(name):
    """Load a tensorflow-datasets image classification dataset as numpy arrays."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            "tensorflow-datasets is not installed: pip install tensorflow-datasets"
        ) from None
    try:
        builder = tfds.builder(name)
    except Exception as err:  # tfds raises its own DatasetNotFoundError types
        raise DataError(f"Unknown tensorflow-datasets dataset {name!r}: {err}") from None
    if not builder.is_prepared():
        if not _online():
            raise DataError(
                f"tfds:{name} is not prepared in {builder.data_dir} and there is no internet "
                "connection to download it. Prepare it on a connected machine "
                f"(python -c \"import tensorflow_datasets as tfds; tfds.load('{name}')\") and "
                "copy ~/tensorflow_datasets here, or use the bundled dataset=mnist."
            )
        builder.download_and_prepare()
    arrays = {}
    for split in ("train", "test"):
        x, y = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


def _online(host="storage.googleapis.com", timeout=3.0):
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_dataset(name="mnist", data_file=None, validation_size=5000, subset=None, seed=0):
    """Load ``name`` (``"mnist"``, ``"tfds:NAME"`` or ``"toy:NAME"``) into :class:`Splits`.

    Args:
        name: dataset name.
        data_file: an ``.npz`` to read instead of the bundled MNIST.
        validation_size: images held out from the training split.
        subset: if set, keep only this many training images (quick runs, tests).
        seed: seed of the train/validation split.
    """
    if data_file is not None:
        arrays = load_npz(data_file)
    elif name in BUNDLED:
        arrays = load_npz(BUNDLED[name])
    elif name.startswith("tfds:"):
        arrays = load_tfds(name[len("tfds:"):])
    elif name.startswith("toy:"):
        from keras_ebm.data import toy  # imports tensorflow-probability: only when used

        try:
            return toy.load_splits(name[len("toy:"):], validation_size=validation_size,
                                   subset=subset, seed=seed)
        except ValueError as err:
            raise DataError(str(err)) from None
    else:
        raise DataError(
            f"Unknown dataset {name!r}; use 'mnist' (bundled), 'tfds:NAME' "
            "(e.g. tfds:fashion_mnist) or 'toy:NAME' (e.g. toy:two_moons)."
        )
    source = data_file or name
    x_train, y_train = _as_images(arrays["x_train"]), _as_labels(arrays["y_train"], "y_train", source)
    x_test, y_test = _as_images(arrays["x_test"]), _as_labels(arrays["y_test"], "y_test", source)
    check_splits(x_train, y_train, x_test, y_test, source)
    if not 0 <= validation_size < len(x_train):
        raise DataError(
            f"validation_size={validation_size} must be in [0, {len(x_train)}): hold out fewer "
            "images than the training split has."
        )
    order = np.random.default_rng(seed).permutation(len(x_train))
    val_idx, train_idx = order[:validation_size], order[validation_size:]
    if subset is not None:
        train_idx = train_idx[:subset]
    return Splits(
        x_train[train_idx], y_train[train_idx], x_train[val_idx], y_train[val_idx], x_test, y_test
    )


def _as_labels(y, key, source):
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)
                           or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise DataError(f"{source}: {key} must be a vector of integer class labels, got "
                        f"{y.dtype} of shape {y.shape}.")
    if len(y) and y.min() < 0:
        raise DataError(f"{source}: {key} holds the label {int(y.min())}; class labels must be "
                        "0, 1, ..., num_classes - 1.")
    return y.astype("int32")


def check_splits(x_train, y_train, x_test, y_test, source):
    """Refuse splits a run cannot use, before any work: no images, mismatched image shapes,
    test labels the training split never shows, or classes missing from training."""
    if not len(x_train) or not len(x_test):
        empty = "x_train" if not len(x_train) else "x_test"
        raise DataError(f"{source}: {empty} holds no images; both splits need some.")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{source}: training images have shape {x_train.shape[1:]} but test "
                        f"images {x_test.shape[1:]}; both splits need the same image shape.")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    missing = sorted(set(range(num_classes)) - set(np.unique(y_train).tolist()))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"{source}: labels run up to {num_classes - 1}, but the training split has no image "
            f"of class {shown} ({len(missing)} of {num_classes} classes missing). Labels must be "
            "0, 1, ..., num_classes - 1 with every class in the training split.")


def _as_images(x):
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8:
        raise DataError(f"Expected uint8 images in [0, 255], got {x.dtype}.")
    return x


def preprocess(images, pad=0):
    """uint8 ``[N, H, W, C]`` -> float32 in [-1, 1], optionally zero-padded by ``pad`` pixels
    (the padding takes the value -1, the background)."""
    x = tf.cast(images, tf.float32) / 127.5 - 1.0
    if pad:
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=-1.0)
    return x


def random_shift(image, max_shift, seed):
    """Translate one ``[H, W, C]`` image by up to ``max_shift`` whole pixels per axis,
    filling with the background (0)."""
    height, width, channels = image.shape
    padded = tf.pad(image, [[max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    return tf.image.stateless_random_crop(padded, (height, width, channels), seed=seed)


def make_dataset(images, labels, batch_size, shuffle=False, pad=0, dequantize=False, seed=0,
                 drop_remainder=False, shift=0):
    """A batched, prefetched ``tf.data.Dataset`` of ``(images, labels)`` in [-1, 1].

    ``dequantize`` adds uniform noise of one grey level to each pixel, turning
    the 256 discrete values into a continuous density. ``shift`` translates each
    image by up to that many pixels (data augmentation; 0 = off).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}.")
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}.")
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if shift:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2))).map(
            lambda xy, pair_seed: (random_shift(xy[0], shift, pair_seed), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def transform(x, y):
        x = tf.cast(x, tf.float32)
        if dequantize:
            x = x + tf.random.uniform(tf.shape(x), 0.0, 1.0)
            x = x * (255.0 / 256.0)
        if images.dtype != np.uint8:  # points of a toy density: used as they are
            return x, y
        return preprocess(x, pad), y

    return ds.map(transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
