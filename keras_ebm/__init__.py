"""keras_ebm: energy-based models (JEM, IGEBM-style EBMs) for Keras 3 / TensorFlow.

Importing the package registers the model classes, so ``keras.saving.load_model``
can read ``.keras`` files written by keras_ebm.

Importing it before TensorFlow also turns on TensorFlow's oneDNN CPU kernels
(``TF_ENABLE_ONEDNN_OPTS=1``, TensorFlow's default on Intel CPUs only): faster
Langevin sampling and training on CPU (benchmarks/RESULTS.md). Set
``TF_ENABLE_ONEDNN_OPTS=0`` to keep TensorFlow's Eigen kernels.

It also keeps TensorFlow's C++ start-up lines (the oneDNN and CUDA banners, a ``cuInit``
error on CPU-only machines) off the terminal: ``TF_CPP_MIN_LOG_LEVEL=3`` unless set, and
TensorFlow is imported with its stderr muted. ``KERAS_EBM_TF_LOGS=1`` shows them all.
"""

import os
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # read once, when TensorFlow is imported
TF_LOGS = os.environ.get("KERAS_EBM_TF_LOGS") == "1"  # show TensorFlow's C++ log lines
if not TF_LOGS:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly():
    """Import TensorFlow with file descriptor 2 on /dev/null: the lines its C++ runtime logs
    while loading (before it reads TF_CPP_MIN_LOG_LEVEL) are dropped. Python exceptions
    still surface."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
        import keras  # noqa: F401
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if not TF_LOGS and "tensorflow" not in sys.modules:
    _import_tensorflow_quietly()

from keras_ebm.config import Config  # noqa: E402
from keras_ebm.models.ebm import EBM, JEM, class_energy, marginal_energy  # noqa: E402
from keras_ebm.models.networks import get_network  # noqa: E402
from keras_ebm.models.rbm import RBM  # noqa: E402
from keras_ebm.models.score_matching import ScoreMatching  # noqa: E402
from keras_ebm.samplers.buffer import ReplayBuffer  # noqa: E402
from keras_ebm.samplers.chain_start import ClassGaussianStart  # noqa: E402
from keras_ebm.samplers.langevin import LangevinSampler  # noqa: E402
from keras_ebm.training.state import ScaledSchedule  # noqa: E402

__version__ = "0.1.0"

__all__ = ["EBM", "JEM", "RBM", "ClassGaussianStart", "Config", "LangevinSampler", "ReplayBuffer",
           "ScaledSchedule", "ScoreMatching", "class_energy", "get_network", "marginal_energy"]
