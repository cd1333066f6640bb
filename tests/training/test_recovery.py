"""Divergence recovery: a forced blow-up is rolled back to the last good state, reseeded,
continued with a lower learning rate, and logged; after ``max_recoveries`` training stops."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import config as config_lib
from keras_ebm.models import networks
from keras_ebm.models.ebm import JEM
from keras_ebm.samplers.langevin import LangevinSampler
from keras_ebm.training import callbacks, experiment, kinds, state


def small_jem():
    keras.utils.set_random_seed(0)
    model = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(16,)),
                sampler=LangevinSampler(steps=2), buffer_size=40, seed=0)
    model.compile(keras.optimizers.Adam(
        state.ScaledSchedule(keras.optimizers.schedules.CosineDecay(1e-3, 100))))
    return model


def batches():
    x = tf.random.stateless_uniform([24, 28, 28, 1], seed=[0, 1], minval=-1, maxval=1)
    return tf.data.Dataset.from_tensor_slices((x, tf.range(24) % 10)).batch(8)  # 3 per epoch


class HugeLearningRate(keras.callbacks.Callback):
    """After batch ``at`` of epoch ``epoch`` and the next ``times - 1`` batches, set the
    learning rate to 1e5 (the step after shows the blow-up: its metrics come before its
    update); record the state the guard should roll back to."""

    def __init__(self, epoch, at=1, times=1):
        super().__init__()
        self.epoch, self.at, self.times = epoch, at, times
        self.current = 0
        self.state_before_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch
        if epoch == self.epoch:
            self.state_before_epoch = state.capture(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if self.current >= self.epoch and batch >= self.at and self.times > 0:
            self.times -= 1
            state.lr_scale(self.model).assign(1e8)


class Record(keras.callbacks.Callback):
    """The state right after each batch (after the guard's rollback, if any)."""

    def __init__(self):
        super().__init__()
        self.after = []

    def on_train_batch_end(self, batch, logs=None):
        self.after.append((state.capture(self.model), dict(logs)))


def test_a_forced_divergence_is_rolled_back_reseeded_and_training_recovers(tmp_path):
    model = small_jem()
    events_path = tmp_path / "recoveries.json"
    guard = callbacks.DivergenceGuard(max_abs_energy=1e3, max_recoveries=2, lr_factor=0.5,
                                      events_path=str(events_path))
    sabotage, record = HugeLearningRate(epoch=1, at=0, times=1), Record()
    history = model.fit(batches(), epochs=3, verbose=0, callbacks=[guard, sabotage, record])

    assert guard.diverged is None and len(history.epoch) == 3
    events = json.loads(events_path.read_text())
    assert len(events) == 1 and events == guard.events
    assert events[0]["at"] == "epoch 2, batch 3" and events[0]["lr_scale"] == 0.5
    assert events[0]["restored"] == "state after epoch 1"
    assert "energy" in events[0]["problem"] or "loss" in events[0]["problem"]
    # Right after the rollback: the epoch-1 state again, except the reseeded training
    # streams (the model's and the buffer's seed generators) and the halved learning rate.
    rolled_back, logs = record.after[5]
    reseeded = (model.seed_generator.state, model.buffer.seed_generator.state)
    for variable, got, want in zip(state.state_variables(model), rolled_back,
                                   sabotage.state_before_epoch):
        if any(variable is generator_state for generator_state in reseeded):
            assert got[0] != want[0] and got[1] == want[1]
        elif "lr_scale" in variable.path:
            assert got == 0.5 * want
        else:
            np.testing.assert_array_equal(got, want)
    # Training went on from there: finite weights and metrics, the blow-up is gone.
    final, logs = record.after[-1]
    assert all(np.all(np.isfinite(a)) for a in final)
    assert all(abs(v) < 1e3 for v in history.history["energy_real"][1:])


def test_divergence_beyond_max_recoveries_stops_with_the_last_good_state_and_the_reason():
    model = small_jem()
    guard = callbacks.DivergenceGuard(max_abs_energy=1e3, max_recoveries=1)
    history = model.fit(batches(), epochs=4, verbose=0,
                        callbacks=[guard, HugeLearningRate(epoch=0, at=0, times=3)])
    assert len(guard.events) == 1
    assert guard.diverged.startswith("training diverged at epoch 2, batch 2")
    assert "after 1 rollback(s)" in guard.diverged and "--lr" in guard.diverged
    assert len(history.epoch) == 2
    # It stops with the last good state, not the diverged one.
    for got, want in zip(state.capture(model), guard.good[1]):
        np.testing.assert_array_equal(got, want)
    assert all(np.all(np.isfinite(a)) for a in state.capture(model))


@pytest.mark.parametrize("exists, note", [
    (False, "no epoch had finished, so no checkpoint was written"),
    (True, "the last checkpoint before it is kept"),
])
def test_the_stop_message_says_whether_a_checkpoint_exists(tmp_path, exists, note):
    checkpoint = tmp_path / "last.keras"
    if exists:
        checkpoint.write_text("a checkpoint")
    model = small_jem()
    guard = callbacks.DivergenceGuard(max_abs_energy=1e3, max_recoveries=0,
                                      checkpoint_path=str(checkpoint))
    model.fit(batches(), epochs=2, verbose=0,
              callbacks=[guard, HugeLearningRate(epoch=0, at=0, times=3)])
    assert note in guard.diverged


@pytest.mark.parametrize("logs, flagged", [
    ({"loss": 0.3, "energy_real": -2.0, "energy_sample": -1.5, "cdiv": -0.5}, None),
    ({"loss": float("nan")}, "loss = nan"),
    ({"energy_sample": float("inf")}, "energy_sample = inf"),
    ({"energy_real": -2e4}, "energy_real = -20000.0"),
    ({"cdiv": 150.0}, "cdiv = 150.0 (limit |cdiv| <= 100)"),  # samples far below the data
    ({"cdiv": -150.0}, "cdiv = -150.0"),  # chains no longer reach the data
])
def test_divergence_criteria(logs, flagged):
    guard = callbacks.DivergenceGuard(max_abs_energy=1e4, max_energy_gap=100)
    problem = guard.problem(logs)
    assert problem == flagged if flagged is None else flagged in problem


def test_a_run_with_a_huge_learning_rate_rolls_back_until_it_trains(tmp_path):
    """``train.py --lr 1000``: the first steps blow up; each rollback lowers the rate."""
    rng = np.random.default_rng(0)
    data_file = tmp_path / "small.npz"
    np.savez(data_file, x_train=rng.integers(0, 256, (96, 28, 28), dtype=np.uint8),
             y_train=np.arange(96) % 10, x_test=rng.integers(0, 256, (32, 28, 28), dtype=np.uint8),
             y_test=np.arange(32) % 10)
    config = config_lib.Config(
        model="ebm", network="mlp", data_file=str(data_file), validation_size=32, epochs=2,
        batch_size=16, langevin_steps=5, buffer_size=64, sample_every=0, final_sample_steps=2,
        evaluate=False, verbose=0, lr=1000.0, recovery_lr_factor=1e-3, max_recoveries=3,
        out=str(tmp_path / "run"))
    result = experiment.run(config)

    events = json.loads((tmp_path / "run" / "recoveries.json").read_text())
    assert result["diverged"] is None and result["test_metrics"]["recoveries"] == len(events) >= 1
    scales = [event["lr_scale"] for event in events]
    assert scales[0] == 1e-3 and scales == sorted(scales, reverse=True)
    assert "Rollback 1 of at most 3" in (tmp_path / "run" / "train.log").read_text()
    assert all(np.all(np.isfinite(v.numpy())) for v in result["model"].weights)


def test_a_rollback_keeps_the_compute_budget_already_spent():
    model = small_jem()
    model.compile(keras.optimizers.Adam(state.ScaledSchedule(state.BudgetCosineDecay(1e-3))))
    guard = callbacks.DivergenceGuard(max_abs_energy=1e3, max_recoveries=1)
    guard.set_model(model)
    guard.on_train_begin()  # the good state: nothing spent
    state.budget_progress(model).assign(0.7)
    guard.roll_back("epoch 1, batch 3", "loss = nan")
    assert float(state.budget_progress(model).numpy()) == pytest.approx(0.7)


def test_an_epoch_past_the_divergence_limits_never_becomes_best_keras(tmp_path):
    model = small_jem()
    guard = callbacks.DivergenceGuard(max_abs_energy=1e3)
    checkpoint = callbacks.Checkpoint(str(tmp_path), "val_cdiv", "min", guard=guard)
    checkpoint.set_model(model)
    exploded = {"val_cdiv": -5e3, "val_energy_real": 1.0, "val_energy_sample": 5e3}
    checkpoint.on_epoch_end(0, exploded)  # the lowest val_cdiv, from exploding noise energy
    assert (tmp_path / "last.keras").is_file() and not (tmp_path / "best.keras").exists()
    checkpoint.on_epoch_end(1, {"val_cdiv": -3.0, "val_energy_real": 1.0,
                                "val_energy_sample": 4.0})
    assert (tmp_path / "best.keras").is_file() and checkpoint.best == -3.0


def test_best_keras_follows_validation_metrics_and_no_ebm_chain_cdiv():
    assert experiment.checkpoint_monitor(kinds.KINDS["jem"], validation=True) == (
        "val_accuracy", "max")
    assert experiment.checkpoint_monitor(kinds.KINDS["jem"], validation=False) == (
        "accuracy", "max")
    assert experiment.checkpoint_monitor(kinds.KINDS["ebm"], validation=True) == ("val_cdiv", "min")
    assert experiment.checkpoint_monitor(kinds.KINDS["ebm"], validation=False) == (None, "min")
