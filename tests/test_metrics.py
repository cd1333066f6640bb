import numpy as np
import pytest

from keras_ebm import metrics


def test_ece_on_a_hand_made_batch():
    # Two bins used (of 10): confidence 0.95 with 1 of 2 right, 0.55 with 2 of 2 right.
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    expected = 0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.55)
    assert metrics.expected_calibration_error(probs, labels, num_bins=10) == pytest.approx(expected)


def test_ece_is_zero_when_perfectly_calibrated_and_confident():
    probs = np.eye(3)[[0, 1, 2, 1]]
    assert metrics.expected_calibration_error(probs, [0, 1, 2, 1]) == 0.0


def test_softmax_is_stable():
    p = metrics.softmax([[1000.0, 1000.0], [0.0, -1000.0]])
    np.testing.assert_allclose(p, [[0.5, 0.5], [1.0, 0.0]])
