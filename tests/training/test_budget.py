"""Compute-budgeted training: the schedule follows the spent share, the budget stops fit,
and a resumed run continues from the share already spent."""

import json
import math
import os

import keras
import numpy as np
import pytest
from test_train import QUICK, train

from keras_ebm.config import Config
from keras_ebm.training import callbacks, state


@pytest.mark.parametrize("progress, expected", [(0.0, 1.0), (0.5, 0.505), (1.0, 0.01), (2.0, 0.01)])
def test_budget_cosine_follows_the_spent_share(progress, expected):
    schedule = state.BudgetCosineDecay(1e-3, alpha=0.01)
    schedule.progress.assign(progress)
    assert float(schedule(123)) == pytest.approx(1e-3 * expected, rel=1e-5)
    restored = state.BudgetCosineDecay(**schedule.get_config())
    assert float(restored(0)) == pytest.approx(float(schedule(0)))


def test_budget_cosine_ends_its_decay_at_the_step_limit_if_that_comes_first():
    schedule = state.BudgetCosineDecay(1e-3, alpha=0.01, decay_steps=100)
    schedule.progress.assign(0.1)
    assert float(schedule(50)) == pytest.approx(1e-3 * 0.505, rel=1e-5)  # steps lead
    assert float(schedule(100)) == pytest.approx(1e-5, rel=1e-4)
    schedule.progress.assign(1.0)
    assert float(schedule(10)) == pytest.approx(1e-5, rel=1e-4)  # the budget leads
    restored = state.BudgetCosineDecay(**schedule.get_config())
    assert restored.decay_steps == 100 and float(restored(10)) == pytest.approx(1e-5, rel=1e-4)
    with pytest.raises(ValueError, match="decay_steps"):
        state.BudgetCosineDecay(1e-3, decay_steps=0)


class FakeClock:
    """process_time that advances one CPU second per call."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def tiny_model():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(state.ScaledSchedule(state.BudgetCosineDecay(0.1))), "mse")
    return model


def test_compute_budget_stops_fit_and_advances_the_schedule(monkeypatch):
    monkeypatch.setattr(callbacks.time, "process_time", FakeClock())
    model = tiny_model()
    progress = state.budget_progress(model)
    budget = callbacks.ComputeBudget(minutes=5 / 60, progress=progress, cores=1)  # 5 CPU seconds
    history = model.fit(np.zeros((64, 2)), np.zeros(64), batch_size=1, epochs=3, verbose=0,
                        callbacks=[budget])
    assert len(history.epoch) == 1  # stopped in the first epoch of 64 batches
    assert float(progress.numpy()) == 1.0
    # Two cores: the same CPU seconds are half the budget per call.
    progress.assign(0.0)
    budget = callbacks.ComputeBudget(minutes=5 / 60, progress=progress, cores=2)
    budget.on_train_begin()
    budget.on_train_batch_end(0)
    assert float(progress.numpy()) == pytest.approx(0.1)  # one second on two cores of five


def test_compute_budget_stops_counting_when_training_ends(monkeypatch):
    monkeypatch.setattr(callbacks.time, "process_time", FakeClock())
    model = tiny_model()
    budget = callbacks.ComputeBudget(minutes=5 / 60, progress=state.budget_progress(model),
                                     cores=1)

    class EndOfTrainingWork(keras.callbacks.Callback):  # e.g. figures made at the end
        def on_train_end(self, logs=None):
            for _ in range(100):
                callbacks.time.process_time()

    model.fit(np.zeros((64, 2)), np.zeros(64), batch_size=1, epochs=1, verbose=0,
              callbacks=[budget, EndOfTrainingWork()])
    assert budget.spent_seconds == pytest.approx(6.0, abs=1.0)  # not the 100 s after it


def test_compute_budget_resumes_from_the_saved_share(monkeypatch):
    monkeypatch.setattr(callbacks.time, "process_time", FakeClock())
    model = tiny_model()
    progress = state.budget_progress(model)
    progress.assign(0.6)
    budget = callbacks.ComputeBudget(minutes=10 / 60, progress=progress, cores=1)
    budget.set_model(model)
    budget.on_train_begin()
    budget.on_train_batch_end(0)
    assert float(progress.numpy()) == pytest.approx(0.7)  # 6 s before + 1 s now, of 10
    assert any(v is progress for v in state.state_variables(model))  # saved in backups


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
def test_bad_budgets_are_refused(value):
    with pytest.raises(ValueError, match="--budget_minutes must be a (positive|finite) number"):
        Config(budget_minutes=value).validate()
    with pytest.raises(ValueError, match="minutes must be a positive number"):
        callbacks.ComputeBudget(value, progress=None)


def test_ema_must_be_a_momentum():
    with pytest.raises(ValueError, match="--ema must be in"):
        Config(ema=1.0).validate()


def test_budgeted_run_with_weight_averaging_ends_on_the_averaged_weights(tmp_path):
    run_dir = tmp_path / "budget"
    flags = [f for f in QUICK]
    flags[flags.index("--epochs") + 1] = "50"
    result = train("--out", str(run_dir), "--budget_minutes", "0.05", "--ema", "0.9",
                   "--evaluate", "false", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert 0.05 <= metrics["budget_minutes_spent"] < 0.5
    assert metrics["epochs_run"] < 50
    assert np.isfinite(metrics["loss"])
    saved = keras.saving.load_model(run_dir / "checkpoints" / "last.keras")
    # The optimizer's moving average is what last.keras holds.
    averages = saved.optimizer._model_variables_moving_average
    assert len(averages) == len(saved.trainable_variables)
    for weight, average in zip(saved.trainable_variables, averages):
        np.testing.assert_allclose(weight.numpy(), average.numpy(), rtol=1e-6, atol=1e-7)


def test_usable_cores_obey_a_container_cpu_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert callbacks.usable_cores(str(tmp_path)) == affinity  # no quota files
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert callbacks.usable_cores(str(tmp_path)) == affinity
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # docker --cpus 1 (cgroup v2)
    assert callbacks.usable_cores(str(tmp_path)) == 1
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a core still divides by 1
    assert callbacks.usable_cores(str(tmp_path)) == 1
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")  # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert callbacks.usable_cores(str(tmp_path)) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert callbacks.usable_cores(str(tmp_path)) == affinity


def test_a_budgeted_run_decays_over_its_step_limit_too():
    from keras_ebm.training import experiment

    inputs = keras.Input((2,))
    model = experiment.compile_model(keras.Model(inputs, keras.layers.Dense(1)(inputs)),
                                     Config(budget_minutes=1.0, epochs=3), steps_per_epoch=10)
    assert state.budget_progress(model) is not None
    assert state._schedule(model).schedule.decay_steps == 30
