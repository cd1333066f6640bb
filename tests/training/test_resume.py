"""Resume after a crash: the training state, the batch stream, and ``train.py --resume``
after a SIGKILL; ``--deterministic`` reruns."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_ebm  # noqa: F401  (registers the model classes for load_model)
from keras_ebm import data
from keras_ebm.models import networks
from keras_ebm.models.ebm import JEM
from keras_ebm.samplers.langevin import LangevinSampler
from keras_ebm.training import callbacks, state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS_PER_EPOCH, EPOCHS = 4, 3


def train_set(seed=0):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (STEPS_PER_EPOCH * 8, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(len(images)) % 10
    return data.make_dataset(images, labels, batch_size=8, shuffle=True, seed=seed,
                             drop_remainder=True, shift=1)


def test_stream_from_any_step_holds_the_same_batches_as_from_the_start():
    full = [y.numpy() for _, y in state.training_stream(train_set(), STEPS_PER_EPOCH, EPOCHS)]
    assert len(full) == STEPS_PER_EPOCH * EPOCHS
    assert not np.array_equal(full[0], full[STEPS_PER_EPOCH])  # reshuffled each epoch
    for start in (1, 4, 6, 11, 12):  # mid-epoch, epoch boundaries, the end
        stream = state.training_stream(train_set(), STEPS_PER_EPOCH, EPOCHS, start_step=start)
        tail = [y.numpy() for _, y in stream]
        assert len(tail) == len(full) - start
        for got, want in zip(tail, full[start:]):
            np.testing.assert_array_equal(got, want)


def small_jem():
    keras.utils.set_random_seed(0)
    model = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(16,)),
                sampler=LangevinSampler(steps=3), buffer_size=30, reinit_prob=0.3, seed=0,
                conditional_sampling=True)
    schedule = state.ScaledSchedule(keras.optimizers.schedules.CosineDecay(1e-2, 12))
    model.compile(keras.optimizers.Adam(schedule))
    return model


class Crash(keras.callbacks.Callback):
    def __init__(self, at_step):
        super().__init__()
        self.step = 0
        self.at_step = at_step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.at_step:
            raise KeyboardInterrupt("simulated crash")


class CrashInValidation(keras.callbacks.Callback):
    """Raise in the validation after epoch ``epoch`` (1-based), all its batches done."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.validations = epoch, 0

    def on_test_begin(self, logs=None):
        self.validations += 1
        if self.validations == self.epoch:
            raise KeyboardInterrupt("simulated crash during validation")


def fit(model, backup_path, crash_at=None, extra=(), every=3):
    """``fit`` as ``experiment.run`` does it: the stream, backups, resume from a backup."""
    position = state.load(model, backup_path) if os.path.exists(backup_path) else {
        "epoch": 0, "step": 0}
    stream = state.training_stream(train_set(), STEPS_PER_EPOCH, EPOCHS, position["step"])
    extra = [Crash(crash_at)] if crash_at else list(extra)
    model.fit(stream, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
              validation_data=train_set().take(1),  # validation noise must not shift training's
              initial_epoch=position["epoch"], verbose=0, shuffle=False,
              callbacks=[callbacks.Backup(backup_path, every=every, step=position["step"],
                                          steps_per_epoch=STEPS_PER_EPOCH),
                         callbacks.StopAtStep(EPOCHS * STEPS_PER_EPOCH, position["step"]),
                         *extra])
    return position


def test_crash_mid_epoch_and_resume_gives_the_uninterrupted_model(tmp_path):
    reference = small_jem()
    fit(reference, str(tmp_path / "reference.npz"))
    path = str(tmp_path / "backup.npz")
    resumed = small_jem()
    with pytest.raises(KeyboardInterrupt):
        fit(resumed, path, crash_at=7)  # in epoch 2; the last backup is after batch 6
    position = fit(resumed, path)  # (a new process: test_sigkill_... below)
    assert position == {"epoch": 1, "step": 6, "format": state.FORMAT}
    # Weights, optimizer, replay buffer, seed generators and learning-rate scale all agree.
    for want, got in zip(state.capture(reference), state.capture(resumed)):
        np.testing.assert_array_equal(got, want)
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * STEPS_PER_EPOCH
    # The random streams continue identically too.
    np.testing.assert_array_equal(resumed.seed_generator.next(), reference.seed_generator.next())


def test_a_crash_during_validation_resumes_exactly(tmp_path):
    """With backups every 2 batches the 4th (an epoch's last) would be saved before its
    validation; it is saved after it instead, so the resumed run validates as often as an
    uninterrupted one and ends in the same state, evaluation noise included."""
    reference = small_jem()
    fit(reference, str(tmp_path / "reference.npz"), every=2)
    path = str(tmp_path / "backup.npz")
    resumed = small_jem()
    with pytest.raises(KeyboardInterrupt):
        fit(resumed, path, extra=[CrashInValidation(epoch=2)], every=2)
    position = fit(resumed, path, every=2)
    assert position == {"epoch": 1, "step": 6, "format": state.FORMAT}
    for want, got in zip(state.capture(reference), state.capture(resumed)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(resumed.eval_seed_generator.next(),
                                  reference.eval_seed_generator.next())


def test_a_backup_from_another_model_or_a_truncated_file_is_refused(tmp_path):
    model = small_jem()
    path = str(tmp_path / "backup.npz")
    state.save(model, path, epoch=0, step=0)
    other = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(8,)), buffer_size=30,
                seed=0)
    other.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(state.StateError, match="does not match this model"):
        state.load(other, path)
    with open(path, "rb") as f:
        content = f.read()
    with open(path, "wb") as f:
        f.write(content[:len(content) // 2])
    with pytest.raises(state.StateError, match="unreadable.*Delete it"):
        state.load(model, path)


# --- train.py --resume after SIGKILL, and --deterministic ------------------------------

FLAGS = ["--model", "ebm", "--network", "mlp", "--validation_size", "32", "--epochs", "3",
         "--batch_size", "16", "--langevin_steps", "30", "--buffer_size", "64",
         "--sample_every", "0", "--final_sample_steps", "2", "--evaluate", "false",
         "--verbose", "0", "--backup_every", "2", "--deterministic"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x_train=rng.integers(0, 256, (160, 28, 28), dtype=np.uint8),
             y_train=np.arange(160) % 10, x_test=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_test=np.arange(64) % 10)
    return str(path)


def command(out, data_file):
    return [sys.executable, os.path.join(ROOT, "train.py"), "--out", str(out),
            "--data_file", data_file, "--resume", *FLAGS]


def env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")


def run(out, data_file):
    result = subprocess.run(command(out, data_file), cwd=ROOT, env=env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "test_metrics.json").read_text())


def assert_same_run(metrics, out, reference):
    """Bit-identical final weights, replay buffer and seed states; the same test metrics up
    to float32 rounding of the weighted loss sum (one ulp seen between identical runs)."""
    assert metrics["diverged"] is None and metrics["recoveries"] == 0
    ignored = ("train_seconds", "epochs_run", "diverged")
    want = {k: v for k, v in reference[1].items() if k not in ignored}
    assert {k: v for k, v in metrics.items() if k not in ignored} == pytest.approx(want, rel=1e-6)
    got, want = (keras.saving.load_model(run / "checkpoints" / "last.keras")
                 for run in (out, reference[0]))
    for a, b in zip(got.variables, want.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_file):
    out = tmp_path_factory.mktemp("runs") / "reference"
    return out, run(out, data_file)


@pytest.mark.slow  # implied: the resumed runs below match the same reference exactly
def test_deterministic_reruns_give_identical_metrics(tmp_path, data_file, reference):
    out, metrics = reference
    again = run(tmp_path / "again", data_file)
    assert_same_run(again, tmp_path / "again", reference)
    assert not os.path.exists(out / "backup.npz")  # a finished run keeps no backup


def test_sigkill_then_the_same_command_finishes_like_an_uninterrupted_run(
        tmp_path, data_file, reference):
    out = tmp_path / "killed"
    process = subprocess.Popen(command(out, data_file), cwd=ROOT, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backup, deadline = out / "backup.npz", time.time() + 240
    while not backup.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "test_metrics.json").exists()

    metrics = run(out, data_file)
    log = (out / "train.log").read_text()
    assert "Resuming from" in log
    assert_same_run(metrics, out, reference)
    assert not backup.exists()  # a finished run keeps no backup
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    assert metrics["epochs_run"] == reference[1]["epochs_run"] == 3


@pytest.mark.parametrize("signum", [  # both end in the same KeyboardInterrupt path
    pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_an_interrupt_ends_cleanly_and_resume_finishes_like_an_uninterrupted_run(
        tmp_path, data_file, reference, signum):
    out = tmp_path / "interrupted"
    process = subprocess.Popen(command(out, data_file), cwd=ROOT, env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    backup, deadline = out / "backup.npz", time.time() + 240
    while not backup.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"--out {out} --resume" in stderr  # the command that continues the run
    assert backup.exists() and not (out / "test_metrics.json").exists()
    metrics = run(out, data_file)
    assert_same_run(metrics, out, reference)
    assert metrics["epochs_run"] == 3
