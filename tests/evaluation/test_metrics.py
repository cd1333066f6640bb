import numpy as np
import pytest

from keras_ebm.evaluation import metrics


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
    # In-scores unsorted with a cross-group tie: pairs (1,1)=, (9,1)>, (8,1)> -> 2.5 / 3.
    assert metrics.auroc([1, 9, 8], [1]) == pytest.approx(2.5 / 3)


def _pairwise_auroc(scores_in, scores_out):
    diff = np.subtract.outer(np.asarray(scores_in, float), np.asarray(scores_out, float))
    return np.mean((diff > 0) + 0.5 * (diff == 0))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_a_brute_force_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Few distinct values: many ties within and across the groups, in shuffled order.
    scores_in = rng.integers(0, 6, rng.integers(1, 40)).astype(float)
    scores_out = rng.integers(-2, 4, rng.integers(1, 40)).astype(float)
    assert metrics.auroc(scores_in, scores_out) == pytest.approx(_pairwise_auroc(scores_in, scores_out))


def test_auroc_refuses_an_empty_set():
    with pytest.raises(ValueError, match="at least one"):
        metrics.auroc([], [1.0])


def test_fpr_at_95_tpr():
    scores_in = np.arange(100)  # the threshold keeps in-scores >= 5 (95 of 100)
    assert metrics.fpr_at_tpr(scores_in, [0, 1, 2, 50, 99]) == pytest.approx(0.4)


def test_reliability_bins_match_ece():
    rng = np.random.default_rng(0)
    probs = metrics.softmax(rng.normal(size=(500, 4)) * 3)
    labels = rng.integers(0, 4, 500)
    conf, acc, count = metrics.reliability_bins(probs, labels, num_bins=10)
    ece = np.sum(count / count.sum() * np.abs(acc - conf))
    assert ece == pytest.approx(metrics.expected_calibration_error(probs, labels, num_bins=10))
    assert count.sum() == 500


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * 2 + [3, 0]
    # ||mu_a - mu_b||^2 + tr(I + 4I - 2 * 2I) = 9 + 2
    assert metrics.frechet_distance(a, b) == pytest.approx(11.0, rel=0.03)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_nearest_distances():
    refs = np.array([[0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(metrics.nearest_distances([[1.0, 0.0], [10.0, 2.0]], refs), [1, 2],
                               rtol=1e-6)

