"""keras_ebm: energy-based models (JEM, IGEBM-style EBMs) for Keras 3 / TensorFlow.

Importing the package registers the model classes, so ``keras.saving.load_model``
can read ``.keras`` files written by keras_ebm.

Importing it before TensorFlow also turns on TensorFlow's oneDNN CPU kernels
(``TF_ENABLE_ONEDNN_OPTS=1``, TensorFlow's default on Intel CPUs only): faster
Langevin sampling and training on CPU (benchmarks/RESULTS.md). Set
``TF_ENABLE_ONEDNN_OPTS=0`` to keep TensorFlow's Eigen kernels.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # read once, when TensorFlow is imported

from keras_ebm.buffer import ReplayBuffer
from keras_ebm.config import Config
from keras_ebm.model import EBM, JEM, class_energy, marginal_energy
from keras_ebm.networks import get_network
from keras_ebm.rbm import RBM
from keras_ebm.sampler import LangevinSampler
from keras_ebm.state import ScaledSchedule

__version__ = "0.1.0"

__all__ = ["EBM", "JEM", "RBM", "Config", "LangevinSampler", "ReplayBuffer", "ScaledSchedule",
           "class_energy", "get_network", "marginal_energy"]
