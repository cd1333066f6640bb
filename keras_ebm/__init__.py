"""keras_ebm: energy-based models (JEM, IGEBM-style EBMs) for Keras 3 / TensorFlow.

Importing the package registers the model classes, so ``keras.saving.load_model``
can read ``.keras`` files written by keras_ebm.
"""

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
