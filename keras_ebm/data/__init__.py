"""Datasets: bundled MNIST, ``.npz`` files and tensorflow-datasets images
(:mod:`~keras_ebm.data.images`), toy densities with exact log-densities
(:mod:`~keras_ebm.data.toy`), all loaded into :class:`Splits`."""

from keras_ebm.data.images import (BUNDLED, load_dataset, load_npz, make_dataset, preprocess,
                                   random_shift)
from keras_ebm.data.splits import DataError, Splits

__all__ = ["BUNDLED", "DataError", "Splits", "load_dataset", "load_npz", "make_dataset",
           "preprocess", "random_shift"]
