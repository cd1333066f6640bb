"""keras_ebm: energy-based models (JEM, IGEBM-style EBMs) for Keras 3 / TensorFlow.

``import keras_ebm`` is quick: TensorFlow is imported when a model, sampler or command needs
it (``keras_ebm.JEM`` imports it). From then on, whoever imported it, the model classes are
registered, so ``keras.saving.load_model`` reads ``.keras`` files written by keras_ebm
(:mod:`keras_ebm.startup`).

Importing the package before TensorFlow also turns on TensorFlow's oneDNN CPU kernels
(``TF_ENABLE_ONEDNN_OPTS=1``, TensorFlow's default on Intel CPUs only): faster Langevin
sampling and training on CPU (benchmarks/RESULTS.md). Set ``TF_ENABLE_ONEDNN_OPTS=0`` to keep
TensorFlow's Eigen kernels.

It also keeps TensorFlow's C++ start-up lines (the oneDNN and CUDA banners, a ``cuInit`` error
on CPU-only machines) off the terminal: ``TF_CPP_MIN_LOG_LEVEL=3`` unless set, and TensorFlow
is imported with its stderr muted. ``KERAS_EBM_TF_LOGS=1`` shows them all.
"""

import importlib
import os

from keras_ebm import startup

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # read once, when TensorFlow is imported
TF_LOGS = os.environ.get("KERAS_EBM_TF_LOGS") == "1"  # show TensorFlow's C++ log lines
if not TF_LOGS:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

_PUBLIC = {  # name: module that defines it
    "Config": "keras_ebm.config",
    "EBM": "keras_ebm.models.ebm",
    "JEM": "keras_ebm.models.ebm",
    "class_energy": "keras_ebm.models.ebm",
    "marginal_energy": "keras_ebm.models.ebm",
    "get_network": "keras_ebm.models.networks",
    "RBM": "keras_ebm.models.rbm",
    "ScoreMatching": "keras_ebm.models.score_matching",
    "ReplayBuffer": "keras_ebm.samplers.buffer",
    "ClassGaussianStart": "keras_ebm.samplers.chain_start",
    "LangevinSampler": "keras_ebm.samplers.langevin",
    "AnnealedLangevinSampler": "keras_ebm.samplers.langevin",
    "ScaledSchedule": "keras_ebm.training.state",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'keras_ebm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


def _register_model_classes():
    for module in sorted(set(_PUBLIC.values())):
        importlib.import_module(module)


startup.watch(_register_model_classes, mute_stderr=not TF_LOGS)
