"""What every dataset loader returns: :class:`Splits`, or a :class:`DataError`."""

import dataclasses

import numpy as np


class DataError(ValueError):
    """A dataset could not be found or read; the message says what to do."""


@dataclasses.dataclass
class Splits:
    """Numpy images (uint8, ``[N, H, W, C]``) and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    value_range: tuple = (-1.0, 1.0)  # of the model's inputs (toy densities: their box)

    @property
    def image_shape(self):
        return self.x_train.shape[1:]

    @property
    def num_classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1
