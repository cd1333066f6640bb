"""SavedModel export with named endpoints, loadable by plain ``tf.saved_model.load``.

    keras-ebm export RUN_DIR_OR_MODEL.keras OUT_DIR

Every endpoint takes and returns images as float32 ``[N, H, W, 1]`` with
pixel values in [0, 1] (28x28 for MNIST), whatever the model uses inside
([-1, 1], optional padding):

* ``energy(images) -> [N]`` (lower is more likely);
* ``classify(images) -> [N, num_classes]`` logits of ``p(y|x)``, ``f(x) / temperature``
  (JEM models; see ``JEM.calibrate``);
* ``sample(num_samples, steps, seed) -> [num_samples, H, W, 1]``: Langevin
  samples from fresh chain starts (the model's: uniform noise or its fitted class
  Gaussians), ``steps`` steps plus the model's noise-free refinement, exactly as
  ``model.generate`` makes them; deterministic for a given seed;
* ``sample_class(labels, steps, seed) -> [N, H, W, 1]``: class-conditional
  samples (JEM models).
"""

import json
import os

import keras
import tensorflow as tf

from keras_ebm import files
from keras_ebm.models.ebm import EBM, JEM
from keras_ebm.models.ebm import MAX_SAMPLES_PER_CALL as MAX_SAMPLES


class ExportError(ValueError):
    """The model or output directory cannot be exported; the message says why."""


def _endpoints(model, pad):
    low, high = model.value_range
    height, width, channels = model.sample_shape
    image_shape = (height - 2 * pad, width - 2 * pad, channels)

    def checked(value, condition, message):
        """``value``, computed only after ``condition`` held (else an error with ``message``)."""
        with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(condition), [message])]):
            return tf.identity(value)

    def to_model(images):
        images = checked(images, tf.shape(images)[0] > 0, "images must hold at least one image")
        images = checked(images, (images >= 0) & (images <= 1),
                         "images must hold pixel values in [0, 1]; divide uint8 pixels by 255")
        x = low + (high - low) * tf.cast(images, tf.float32)
        if pad:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=low)
        return x

    def to_images(x):
        if pad:
            x = x[:, pad:-pad, pad:-pad, :]
        return tf.clip_by_value((x - low) / (high - low), 0.0, 1.0)

    def chains(num_samples, labels, steps, seed):
        """``model.generate(num_samples, steps, labels, seed)`` in graph form."""
        num_samples = checked(num_samples, (num_samples >= 1) & (num_samples <= MAX_SAMPLES),
                              f"num_samples (or the number of labels) must be in [1, {MAX_SAMPLES}]; "
                              "ask for larger sets in batches")
        steps = checked(steps, steps >= 0, "steps must be >= 0")
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)]), 2)
        x = model.chain_starts(num_samples, labels, seeds[0])
        return to_images(model.run_chains(x, labels, seeds[1], steps, model.refine_steps))

    images_spec = tf.TensorSpec((None,) + image_shape, tf.float32, name="images")
    scalar = lambda name: tf.TensorSpec([], tf.int32, name=name)  # noqa: E731

    def energy(images):
        return model.energy(to_model(images))

    def sample(num_samples, steps, seed):
        return chains(num_samples, None, steps, seed)

    endpoints = {
        "energy": (energy, [images_spec]),
        "sample": (sample, [scalar("num_samples"), scalar("steps"), scalar("seed")]),
    }
    if isinstance(model, JEM):
        def classify(images):
            return model.class_logits(to_model(images))

        def sample_class(labels, steps, seed):
            labels = checked(labels, (labels >= 0) & (labels < model.num_outputs),
                             f"labels must be in [0, {model.num_outputs}) (the classes)")
            return chains(tf.shape(labels)[0], labels, steps, seed)

        endpoints["classify"] = (classify, [images_spec])
        endpoints["sample_class"] = (
            sample_class,
            [tf.TensorSpec([None], tf.int32, name="labels"), scalar("steps"), scalar("seed")],
        )
    return endpoints


def _readable_by_all(root):
    """Directories rwxr-xr-x and files rw-r--r-- (mkdtemp makes the top one owner-only)."""
    for directory, _, names in os.walk(root):
        os.chmod(directory, 0o755)
        for name in names:
            os.chmod(os.path.join(directory, name), 0o644)


def export_model(model, out_dir, pad=0):
    """Write ``model`` as a SavedModel to ``out_dir`` (which must not exist).

    Args:
        model: a trained :class:`~keras_ebm.models.ebm.EBM` or :class:`~keras_ebm.models.ebm.JEM`.
        out_dir: the SavedModel directory to create.
        pad: pixels of padding the model was trained with (``--pad``); the
            endpoints take unpadded images.
    """
    if os.path.exists(out_dir):
        raise ExportError(f"{out_dir} already exists; choose a new output directory.")
    if pad < 0 or 2 * pad >= min(model.sample_shape[:2]):
        raise ExportError(f"pad={pad} does not fit the model's input shape {model.sample_shape}.")
    archive = keras.export.ExportArchive()
    # The endpoints need only the network's weights (not the replay buffer).
    archive.track(model.network)
    for name, (fn, signature) in _endpoints(model, pad).items():
        archive.add_endpoint(name, fn, input_signature=signature)
    with files.atomic_directory(out_dir) as tmp:
        archive.write_out(tmp, verbose=False)
        _readable_by_all(tmp)  # a serving container may run under another uid
    return out_dir


def load_for_export(path, accepted=None):
    """``(model, pad)`` from a run directory or a ``.keras`` file.

    A run directory gives its final weights (``checkpoints/last.keras``, the weights the
    run's own evaluation scored), else ``best.keras``. ``accepted``: the model classes this
    caller can use (default: EBMs, JEM included).
    """
    pad = 0
    if os.path.isdir(path):
        config_path = os.path.join(path, "config.json")
        if os.path.isfile(config_path):
            with open(config_path) as f:
                pad = int(json.load(f).get("pad", 0))
        for name in ("last.keras", "best.keras"):
            candidate = os.path.join(path, "checkpoints", name)
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            raise ExportError(f"{path} has no checkpoints/last.keras or best.keras to export.")
    elif not os.path.isfile(path):
        raise ExportError(f"{path} is neither a run directory nor a .keras file.")
    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # a truncated or foreign file: say which
        raise ExportError(f"Cannot load {path}: {err}") from None
    accepted = accepted or (EBM,)  # JEM is an EBM
    if not isinstance(model, accepted):
        names = " or ".join(kind.__name__ for kind in accepted)
        raise ExportError(f"{path} holds a {type(model).__name__}, not a keras_ebm {names}; "
                          "this command takes those (an RBM run reports its likelihood in "
                          "log_likelihood.json).")
    if len(model.sample_shape) != 3:
        raise ExportError(f"{path} models {model.sample_shape[0]}-D points (a toy density), not "
                          "images; this command takes image models.")
    return model, pad
