import numpy as np
import pytest

from keras_ebm.evaluation import metrics
from keras_ebm.models.calibration import fit_temperature


def _nll(logits, labels, temperature):
    probs = metrics.softmax(logits / temperature)
    return -np.mean(np.log(probs[np.arange(len(labels)), labels]))


def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_at():
    rng = np.random.default_rng(0)
    logits = 3.0 * rng.normal(size=(40000, 5))
    probs = metrics.softmax(logits / 2.5)
    labels = (probs.cumsum(-1) > rng.uniform(size=(len(probs), 1))).argmax(-1)
    assert abs(fit_temperature(logits, labels) - 2.5) < 0.1


@pytest.mark.parametrize("seed", [1, 2])
def test_fit_temperature_matches_a_brute_force_minimum_of_the_nll(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 4.0 * np.eye(4)[labels] * rng.uniform(size=(300, 1))
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 20001))
    best = grid[np.argmin([_nll(logits, labels, t) for t in grid])]
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(best, rel=1e-3)
    assert _nll(logits, labels, fitted) <= _nll(logits, labels, best) + 1e-12


def test_fit_temperature_stops_at_its_bounds():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    # Every label right: sharper is always better, down to the lower bound.
    assert fit_temperature(logits, [0, 1]) == 0.05
    # Every label wrong: flatter is always better, up to the upper bound.
    assert fit_temperature(logits, [1, 0], bounds=(0.5, 4.0)) == 4.0


def test_fit_temperature_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(np.zeros((2, 2)), [0, 1], bounds=(1.0, 0.5))
