import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
import keras_ebm  # noqa: E402,F401  (before TensorFlow: the suite runs with the package's TF settings)
