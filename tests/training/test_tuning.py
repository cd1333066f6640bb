import json
import os

import keras
import keras_tuner as kt
import numpy as np
import pytest

from keras_ebm import data
from keras_ebm.cli import tune
from keras_ebm.config import Config
from keras_ebm.training import tuning

TINY = ["--subset", "256", "--validation_size", "128", "--epochs", "1", "--batch_size", "64",
        "--buffer_size", "200", "--network", "cnn", "--verbose", "0",
        "--max_trials", "2", "--samples_per_class", "2", "--score_steps", "5"]


def test_tiny_search_writes_trials_and_best_hyperparameters(tmp_path, capsys):
    out = tmp_path / "tune"
    assert tune.main(["--out", str(out), *TINY]) == 0
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert set(best) == set(tuning.SEARCH_SPACE)
    trials = json.loads((out / "trials.json").read_text())
    assert len(trials) == 2
    for trial in trials:
        assert 0 <= trial["val_hybrid"] <= 1
        assert trial["val_hybrid"] == pytest.approx(
            0.5 * (trial["val_accuracy"] + trial["val_sample_accuracy"]))
    assert trials[0]["val_hybrid"] >= trials[1]["val_hybrid"]
    assert trials[0]["hyperparameters"] == best
    printed = capsys.readouterr().out
    assert "python train.py --langevin_steps" in printed
    assert os.path.isfile(out / "tune.log") and os.path.isdir(out / "tuner")


def test_each_trial_stops_when_the_compute_budget_is_spent(tmp_path, monkeypatch):
    """A budget far below one epoch's compute: the trial stops after its first epoch
    instead of running the 50 it was allowed."""
    epochs = []
    fit = tuning.JEMHyperModel.fit

    def counting_fit(self, hp, model, *args, **kwargs):
        counter = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs.append(epoch))
        return fit(self, hp, model, *args, **dict(kwargs, callbacks=[*kwargs["callbacks"], counter]))

    monkeypatch.setattr(tuning.JEMHyperModel, "fit", counting_fit)
    config = Config(subset=128, validation_size=64, epochs=50, budget_minutes=0.001,
                    batch_size=64, buffer_size=100, network="mlp", chain_start="uniform",
                    verbose=0)
    splits = data.load_dataset(subset=128, validation_size=64)
    tuning.search(config, splits, str(tmp_path / "tuner"), max_trials=1, samples_per_class=1,
                  sample_steps=2)
    assert epochs == [0]


def test_a_failing_trial_fails_the_search(tmp_path, monkeypatch):
    def broken_fit(self, hp, model, *args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(tuning.JEMHyperModel, "fit", broken_fit)
    config = Config(subset=128, validation_size=64, epochs=1, batch_size=64, buffer_size=100,
                    network="mlp", verbose=0)
    splits = data.load_dataset(subset=128, validation_size=64)
    with pytest.raises(RuntimeError, match="boom"):  # the trial's own error surfaces
        tuning.search(config, splits, str(tmp_path / "tuner"), max_trials=2)


def test_a_failing_trial_ends_the_command_with_a_message(tmp_path, monkeypatch, capsys):
    def broken_fit(self, hp, model, *args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(tuning.JEMHyperModel, "fit", broken_fit)
    out = tmp_path / "tune"
    assert tune.main(["--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert "error: a trial failed (ValueError: boom)" in err and "Traceback" not in err
    assert "boom" in (out / "trial_errors.log").read_text()
    assert not (out / "best_hyperparameters.json").exists()


def test_tune_rejects_bad_flags(tmp_path, capsys):
    assert tune.main(["--out", str(tmp_path / "x"), "--model", "ebm"]) == 2
    assert "needs --model jem" in capsys.readouterr().err
    assert tune.main(["--out", str(tmp_path / "y"), "--max_trials", "0"]) == 2
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")


def test_search_space_matches_the_hypermodel():
    hp = kt.HyperParameters()
    config = Config()
    model = tuning.JEMHyperModel(config, (28, 28, 1), 10, steps_per_epoch=10)
    trial = model.trial_config(hp)
    assert set(hp.values) == set(tuning.SEARCH_SPACE)
    assert all(getattr(trial, k) == v for k, v in hp.values.items())


def test_class_gaussian_trials_fit_their_chain_starts():
    config = Config(network="mlp")  # the JEM default: class_gaussian chain starts
    with pytest.raises(ValueError, match="start_data"):
        tuning.JEMHyperModel(config, (28, 28, 1), 10, steps_per_epoch=10).build(kt.HyperParameters())
    rng = np.random.default_rng(0)
    start_data = (rng.uniform(-1, 1, (40, 28, 28, 1)), np.arange(40) % 10)
    model = tuning.JEMHyperModel(config, (28, 28, 1), 10, steps_per_epoch=10,
                                 start_data=start_data).build(kt.HyperParameters())
    assert model.start.is_fitted
