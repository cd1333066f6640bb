import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import plotting
from keras_ebm.models import networks
from keras_ebm.models.ebm import JEM
from keras_ebm.samplers.langevin import LangevinSampler
from keras_ebm.training import callbacks, figures


@pytest.fixture
def model():
    keras.utils.set_random_seed(0)
    m = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(16,)),
            sampler=LangevinSampler(steps=2), buffer_size=40, seed=0)
    m.compile(keras.optimizers.Adam(1e-3))
    return m


def batches(n=3):
    x = tf.random.stateless_uniform([n * 4, 28, 28, 1], seed=[0, 1], minval=-1, maxval=1)
    return tf.data.Dataset.from_tensor_slices((x, tf.range(n * 4) % 10)).batch(4)


def test_sample_grid_and_chain_snapshots_write_pngs(model, tmp_path):
    real = np.zeros((10, 28, 28, 1), np.float32)
    grid = figures.SampleGrid(str(tmp_path), real, every=1, steps=2, final_steps=3)
    chain = figures.ChainSnapshots(str(tmp_path), num_chains=3, steps=4, columns=2)
    model.fit(batches(), epochs=2, verbose=0, callbacks=[grid, chain])
    for name in ("epoch_001.png", "epoch_002.png", "final.png", "chain_final.png"):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = figures.sample_rows(model, real, steps=2)
    assert list(rows)[:3] == ["real", "noise -> E(x)", "buffer"]
    assert [k for k in rows if k.startswith("E(x, y=")] == [f"E(x, y={c})" for c in range(10)]
    assert all(v.shape == (10, 28, 28, 1) for v in rows.values())


def test_sample_grid_shows_a_buffer_smaller_than_a_row(tmp_path):
    keras.utils.set_random_seed(0)
    small = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(16,)),
                sampler=LangevinSampler(steps=2), buffer_size=5, seed=0)
    small.compile(keras.optimizers.Adam(1e-3))
    real = np.zeros((10, 28, 28, 1), np.float32)
    grid = figures.SampleGrid(str(tmp_path), real, every=1, steps=2, final_steps=2,
                              tensorboard_dir=str(tmp_path / "tb"))
    grid.set_model(small)
    grid.on_train_end()
    assert (tmp_path / "final.png").is_file() and os.listdir(tmp_path / "tb")
    rows = figures.sample_rows(small, real, steps=2)
    assert len(rows["buffer"]) == 5 and len(rows["real"]) == 10
    assert plotting.tile(list(rows.values())).shape == (len(rows) * 28, 10 * 28, 1)


def test_sample_grid_writes_tensorboard_images(model, tmp_path):
    pytest.importorskip("tensorboard")
    tb = tmp_path / "tb"
    grid = figures.SampleGrid(str(tmp_path), np.zeros((10, 28, 28, 1)), every=1, steps=1,
                                tensorboard_dir=str(tb))
    model.fit(batches(1), epochs=1, verbose=0, callbacks=[grid])
    events = [os.path.join(root, name) for root, _, names in os.walk(tb) for name in names
              if name.startswith("events.out.tfevents")]
    plugins = {value.metadata.plugin_data.plugin_name for path in events
               for event in tf.compat.v1.train.summary_iterator(path)
               for value in event.summary.value}
    assert "images" in plugins


class Explode(keras.callbacks.Callback):
    """Push the weights to NaN after the second batch."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            for v in self.model.network.trainable_variables:
                v.assign(tf.fill(v.shape, np.nan))


def test_divergence_guard_stops_training_with_a_message(model, tmp_path):
    guard = callbacks.DivergenceGuard(max_abs_energy=100.0)
    checkpoint = callbacks.Checkpoint(str(tmp_path), monitor="accuracy", mode="max")
    history = model.fit(batches(5), epochs=3, verbose=0, callbacks=[Explode(), guard, checkpoint])
    assert guard.diverged is not None and "epoch 1, batch 3" in guard.diverged
    assert "nan" in guard.diverged and "--lr" in guard.diverged
    assert len(history.epoch) == 1
    # The diverged epoch is not checkpointed.
    assert not os.path.exists(tmp_path / "last.keras")


def test_divergence_guard_catches_exploding_energy(model):
    guard = callbacks.DivergenceGuard(max_abs_energy=1.0)
    guard.set_model(model)
    guard.on_train_batch_end(0, {"loss": 0.5, "energy_real": -3.0})
    assert "energy_real = -3.0" in guard.diverged and model.stop_training


def test_checkpoint_keeps_best_and_last(model, tmp_path):
    checkpoint = callbacks.Checkpoint(str(tmp_path), monitor="val_loss", mode="min")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_loss": 2.0})
    best_time = os.path.getmtime(tmp_path / "best.keras")
    checkpoint.on_epoch_end(1, {"val_loss": 3.0})
    assert checkpoint.best == 2.0
    assert os.path.getmtime(tmp_path / "best.keras") == best_time
    assert sorted(os.listdir(tmp_path)) == ["best.json", "best.keras", "last.keras"]
    # A resumed run keeps the best value: only a better model replaces best.keras.
    assert callbacks.Checkpoint(str(tmp_path), monitor="val_loss", mode="min").best == 2.0
    restored = keras.saving.load_model(tmp_path / "last.keras")
    x = tf.zeros([2, 28, 28, 1])
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())


class _FixedEnergies:
    """Stands in for a JEM: the energy of an image is its first pixel."""

    cdiv_weight = 1.0
    sampler = LangevinSampler(step_size=10.0)

    def __init__(self, reg_weight):
        self.reg_weight = reg_weight

    def energy(self, x):
        return tf.reshape(tf.convert_to_tensor(x)[:, 0, 0, 0], [-1])


def _class_images(energy_per_class, per_class=3):
    labels = np.repeat(np.arange(len(energy_per_class)), per_class)
    images = np.zeros((len(labels), 2, 2, 1), "float32")
    images[:, 0, 0, 0] = np.asarray(energy_per_class, "float32")[labels]
    images[::per_class, 0, 0, 0] += 0.3  # spread within a class; the mean stays known
    images[1::per_class, 0, 0, 0] -= 0.3
    return images, labels


def test_class_energy_watch_logs_the_gap_and_warns_once_about_a_sunken_class(caplog):
    images, labels = _class_images([0.2, -4.9, 0.0, 0.5])
    watch = callbacks.ClassEnergyWatch(images, labels, batch_size=5)
    watch.set_model(_FixedEnergies(reg_weight=0.1))  # well depth 5: warn past 2.5
    logs = {}
    with caplog.at_level("WARNING", logger="keras_ebm"):
        watch.on_epoch_end(0, logs)
        watch.on_epoch_end(1, {})
    assert logs["val_class_energy_gap"] == pytest.approx(0.1 + 4.9, abs=1e-5)  # median 0.1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "Class 1" in warnings[0] and "--langevin_alpha (now 10" in warnings[0]
    assert "--reg_weight (now 0.1" in warnings[0]


def test_class_energy_watch_is_quiet_within_half_the_well():
    images, labels = _class_images([0.2, -1.0, 0.0, 0.5])
    watch = callbacks.ClassEnergyWatch(images, labels)
    for reg_weight, warns in ((0.1, False), (0.6, True)):  # half-depth 2.5 vs 0.42; gap 1.1
        watch.set_model(_FixedEnergies(reg_weight))
        watch.warned.clear()
        watch.on_epoch_end(0, {})
        assert bool(watch.warned) == warns



def test_calibration_gives_last_and_best_their_own_temperature(model, tmp_path):
    from keras_ebm.config import Config
    from keras_ebm.models.calibration import fit_temperature
    from keras_ebm.training import experiment

    checkpoint = callbacks.Checkpoint(str(tmp_path), monitor="val_loss", mode="min")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_loss": 2.0})  # best.keras: the initial weights
    model.fit(batches(), epochs=3, verbose=0)
    val = batches()
    labels = np.concatenate([y.numpy() for _, y in val])
    prepared = experiment.PreparedData(None, val, None, 0, None)
    experiment.calibrate(model, Config(), prepared, checkpoint)
    last = keras.saving.load_model(tmp_path / "last.keras")
    best = keras.saving.load_model(tmp_path / "best.keras")
    assert last.temperature == model.temperature == pytest.approx(
        fit_temperature(model.predict(val, verbose=0), labels), rel=1e-5)
    assert best.temperature == pytest.approx(
        fit_temperature(best.predict(val, verbose=0), labels), rel=1e-5)
    assert best.temperature != pytest.approx(last.temperature, rel=1e-3)
    # After a divergence only best.keras is calibrated: the final weights are not used.
    for path in ("last.keras", "best.keras"):
        reset = keras.saving.load_model(tmp_path / path)
        reset.temperature = 1.0
        checkpoint.save(path, reset)
    model.temperature = 1.0
    experiment.calibrate(model, Config(), prepared, checkpoint, diverged=True)
    assert model.temperature == 1.0
    assert keras.saving.load_model(tmp_path / "last.keras").temperature == 1.0
    assert keras.saving.load_model(tmp_path / "best.keras").temperature == best.temperature
    # --calibrate false, or no validation split: the temperature stays.
    experiment.calibrate(model, Config(calibrate=False), prepared, checkpoint)
    experiment.calibrate(model, Config(), experiment.PreparedData(None, None, None, 0, None),
                         checkpoint)
    assert model.temperature == 1.0
