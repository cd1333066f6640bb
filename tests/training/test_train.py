"""End-to-end: ``python train.py`` as a user runs it, on a small subset."""

import csv
import json
import os
import subprocess
import sys

import keras
import keras_ebm  # noqa: F401  (registers the model classes for load_model)
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICK = ["--subset", "256", "--validation_size", "64", "--epochs", "1", "--batch_size", "64",
         "--langevin_steps", "2", "--buffer_size", "200", "--sample_steps", "2",
         "--final_sample_steps", "4", "--verbose", "2", "--eval_samples", "10", "--eval_steps", "2",
         "--eval_num_test", "100"]


def train(*flags, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *flags], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "jem"
    result = train("--out", str(run_dir), "--export", "--tensorboard", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_one_epoch_run_writes_the_whole_run_directory(quick_run):
    run_dir, result = quick_run
    for name in ("config.json", "train.log", "metrics.csv", "test_metrics.json",
                 "checkpoints/best.keras", "checkpoints/last.keras",
                 "samples/epoch_001.png", "samples/final.png", "samples/chain_final.png",
                 "export/saved_model.pb", "evaluation/evaluation.json", "evaluation/samples.png"):
        assert os.path.isfile(run_dir / name), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "jem" and config["subset"] == 256 and config["out"] == str(run_dir)
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    assert {"loss", "ce", "cdiv", "reg", "energy_real", "energy_sample", "accuracy",
            "val_accuracy", "val_cdiv", "val_class_energy_gap"} <= set(rows[0])
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["ece"] <= 1
    assert metrics["diverged"] is None
    log = (run_dir / "train.log").read_text()
    assert "Run directory" in log and "epoch 1:" in log and "Test metrics" in log
    assert not [n for n in os.listdir(run_dir / "checkpoints") if "tmp" in n]
    tensorboard_files = [f for _, _, files in os.walk(run_dir / "tensorboard") for f in files]
    assert len([f for f in tensorboard_files if f.startswith("events.out.tfevents")]) >= 2


def test_checkpoint_reloads_to_the_trained_model(quick_run):
    import tensorflow as tf

    run_dir, _ = quick_run
    model = keras.saving.load_model(run_dir / "checkpoints" / "last.keras")
    # The export was written from the trained model in memory at the end of the run.
    exported = tf.saved_model.load(str(run_dir / "export"))
    images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(model.energy(2 * images - 1).numpy(),
                               exported.energy(images).numpy(), rtol=1e-5, atol=1e-5)
    # p(y|x) was calibrated on the validation split: the checkpoint, the test metrics and the
    # export's classify all use the fitted temperature.
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert model.temperature == metrics["temperature"] != 1.0
    np.testing.assert_allclose(exported.classify(images).numpy(),
                               model(2 * images - 1).numpy() / model.temperature, rtol=1e-4,
                               atol=1e-5)
    assert "Calibrated p(y|x) on the validation split" in (run_dir / "train.log").read_text()


def test_existing_run_directory_is_refused_and_kept(quick_run):
    run_dir, _ = quick_run
    before = (run_dir / "test_metrics.json").read_text()
    result = train("--out", str(run_dir), *QUICK)
    assert result.returncode == 2
    assert "already exists" in result.stderr and "--out" in result.stderr
    assert (run_dir / "test_metrics.json").read_text() == before


@pytest.mark.slow  # EBM runs: test_resume.py, evaluation/test_report.py
def test_unconditional_ebm_runs(tmp_path):
    result = train("--out", str(tmp_path / "ebm"), "--model", "ebm", "--network", "cnn", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "ebm" / "test_metrics.json").read_text())
    assert "accuracy" not in metrics and np.isfinite(metrics["cdiv"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--langevin_steps", "-1"], "--langevin_steps must be >= 0"),
        (["--batch_size", "0"], "--batch_size must be > 0"),
        (["--network", "vgg"], "argument --network: invalid choice: 'vgg'"),
        (["--model", "gan"], "argument --model: invalid choice: 'gan'"),
        (["--reinit_prob", "2"], "--reinit_prob must be in [0, 1]"),
        (["--conditional_sampling", "2"], "--conditional_sampling must be a share in [0, 1]"),
        (["--epochs", "ten"], "invalid int value"),
    ],
)
def test_bad_flags_fail_with_a_clear_message(tmp_path, flags, message):
    result = train("--out", str(tmp_path / "run"), *flags, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run")


def test_batch_larger_than_the_training_set_fails_before_writing(tmp_path):
    result = train("--out", str(tmp_path / "run"), "--subset", "32", "--batch_size", "64",
                   timeout=120)
    assert result.returncode == 2
    assert "--batch_size 64 is larger than the 32 training images" in result.stderr
    assert not os.path.exists(tmp_path / "run")


def test_corrupt_data_file_fails_cleanly(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = train("--out", str(tmp_path / "run"), "--data_file", str(bad), timeout=120)
    assert result.returncode == 2
    assert "corrupt" in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run")


def test_conditional_sampling_flag_alone_means_all_negatives():
    from keras_ebm import config as config_lib

    assert config_lib.from_args([]).conditional_sampling == 0.0
    assert config_lib.from_args(["--conditional_sampling"]).conditional_sampling == 1.0
    assert config_lib.from_args(["--conditional_sampling", "0.25"]).conditional_sampling == 0.25
