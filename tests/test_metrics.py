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


def test_auroc_on_hand_made_scores():
    assert metrics.auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert metrics.auroc([0, 1], [2, 3]) == 0.0
    # Pairs (in, out): (1,0)>, (1,2)<, (3,0)>, (3,2)> -> 3 of 4; a tie counts half.
    assert metrics.auroc([1, 3], [0, 2]) == pytest.approx(0.75)
    assert metrics.auroc([1, 1], [1, 0]) == pytest.approx(0.75)
