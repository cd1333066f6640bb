"""Bad input gives a clear error and loses nothing (the README's "Bad input" table).

Missing or corrupt data files and bad ``train.py`` flags in a real process are in
test_train.py and test_data.py; a truncated backup is in test_resume.py.
"""

import errno
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import config as config_lib
from keras_ebm import data, export
from keras_ebm.cli import evaluate as evaluate_cli
from keras_ebm.cli import export as export_cli
from keras_ebm.cli import train as train_cli
from keras_ebm.models import networks
from keras_ebm.models.ebm import JEM
from keras_ebm.samplers.langevin import LangevinSampler
from keras_ebm.training import callbacks, experiment, state
from keras_ebm.training.run_dir import reopen_run_dir


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    jem = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(8,)), buffer_size=20,
              sampler=LangevinSampler(steps=1), seed=0)
    jem.compile(keras.optimizers.Adam(1e-3))
    return jem


# --- the Python API ----------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda m: m.energy(np.zeros((2, 32, 32, 1), np.float32)),
     r"Images must have shape \[N, 28, 28, 1\], got \[2, 32, 32, 1\]"),
    (lambda m: m.energy(np.zeros((2, 28, 28), np.float32)), r"got \[2, 28, 28\]"),
    (lambda m: m.energy(np.zeros((2, 28, 28, 1), np.uint8)),
     r"Images must be floats .* got uint8; scale uint8 pixels with keras_ebm.data.preprocess"),
    (lambda m: m.conditional_energy(np.zeros((2, 28, 28, 1), np.int32), [0, 1]), "got int32"),
    (lambda m: m.generate(0), "num_samples must be >= 1"),
    (lambda m: m.generate(10**7), r"at most 65536\); call generate in batches"),
    (lambda m: m.energy(np.zeros((0, 28, 28, 1), np.float32)), "empty batch of images"),
    (lambda m: m.energy(np.full((2, 28, 28, 1), 255.0)),
     r"range \[-1.0, 1.0\], got values in \[255, 255\]; scale uint8 pixels"),
    (lambda m: m.conditional_energy(np.full((1, 28, 28, 1), np.nan, np.float32), [0]),
     "got NaN or infinite values"),
    (lambda m: m.generate(2, steps=-1), "steps >= 0 and unconditional_steps in \\[0, steps\\], got 2, -1"),
    (lambda m: m.generate(3, steps=1, labels=[1, 2]), r"labels must be 3 class indices"),
    (lambda m: m.generate(2, steps=1, labels=[1, 10]), r"in \[0, 10\), got \[1, 10\]"),
])
def test_python_api_rejects_bad_images_and_arguments(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)


def test_float64_images_are_accepted_as_floats(model):
    x = np.zeros((2, 28, 28, 1))
    np.testing.assert_allclose(model.energy(x), model.energy(x.astype(np.float32)), rtol=1e-6)


# --- the exported SavedModel --------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("export") / "model"
    export.export_model(model, str(directory))
    return tf.saved_model.load(str(directory))


SCALAR = tf.constant(2)


@pytest.mark.parametrize("call, error, message", [
    (lambda e: e.energy(np.zeros((2, 32, 32, 1), np.float32)), TypeError,
     r"shape=\(None, 28, 28, 1\)"),
    (lambda e: e.classify(np.full((2, 28, 28, 1), 255, np.uint8)), tf.errors.InvalidArgumentError,
     r"images must hold pixel values in \[0, 1\]; divide uint8 pixels by 255"),
    (lambda e: e.energy(np.full((2, 28, 28, 1), -0.5, np.float32)),
     tf.errors.InvalidArgumentError, r"pixel values in \[0, 1\]"),
    (lambda e: e.sample(num_samples=tf.constant(2.0), steps=SCALAR, seed=SCALAR), TypeError,
     "dtype=tf.int32, name='num_samples'"),
    (lambda e: e.sample(num_samples=tf.constant(-1), steps=SCALAR, seed=SCALAR),
     tf.errors.InvalidArgumentError, r"num_samples \(or the number of labels\) must be in \[1, 65536\]"),
    (lambda e: e.sample(num_samples=tf.constant(10**7), steps=SCALAR, seed=SCALAR),
     tf.errors.InvalidArgumentError, "ask for larger sets in batches"),
    (lambda e: e.energy(images=tf.zeros([0, 28, 28, 1])), tf.errors.InvalidArgumentError,
     "images must hold at least one image"),
    (lambda e: e.sample_class(labels=tf.zeros([0], tf.int32), steps=SCALAR, seed=SCALAR),
     tf.errors.InvalidArgumentError, r"must be in \[1, 65536\]"),
    (lambda e: e.sample(num_samples=SCALAR, steps=tf.constant(-5), seed=SCALAR),
     tf.errors.InvalidArgumentError, "steps must be >= 0"),
    (lambda e: e.sample_class(labels=tf.constant([3, 10]), steps=SCALAR, seed=SCALAR),
     tf.errors.InvalidArgumentError, r"labels must be in \[0, 10\) \(the classes\)"),
])
def test_exported_endpoints_reject_bad_inputs(exported, call, error, message):
    with pytest.raises(error, match=message):
        call(exported)


# --- flags, run directories, full disks, truncated checkpoints --------------------------

@pytest.mark.parametrize("flags, message", [
    (["--resume"], "--resume needs --out DIR"),
    (["--recovery_lr_factor", "0"], r"--recovery_lr_factor must be in \(0, 1\]"),
    (["--max_recoveries", "-1"], "--max_recoveries and --backup_every must be >= 0"),
    (["--backup_every", "-5"], "--max_recoveries and --backup_every must be >= 0"),
    (["--max_energy_gap", "0"], "--max_energy_gap must be > 0"),
    (["--model", "rbm", "--chain_start", "class_gaussian"], "--chain_start class_gaussian is for image"),
    (["--refine_steps", "-1"], "--refine_steps must be >= 0"),
    (["--refine_step_size", "0"], "--refine_step_size must be > 0"),
    (["--eval_samples", "70000"], "--eval_samples must be at most 65536"),
    (["--dataset", "toy:rings", "--model", "ebm", "--network", "mlp", "--data_file", "x.npz"],
     "--data_file replaces the bundled MNIST; --dataset toy:rings"),
    (["--model", "rbm", "--ais_betas", "3"], "--ais_betas must be >= 4, got 3"),
])
def test_bad_resume_and_recovery_flags(flags, message):
    with pytest.raises(ValueError, match=message):
        config_lib.from_args(flags)


def test_divergence_limits_can_be_turned_off_with_inf():
    config = config_lib.from_args(["--max_energy_gap", "inf", "--max_abs_energy", "inf"])
    assert config.max_energy_gap == config.max_abs_energy == float("inf")
    with pytest.raises(ValueError, match="--max_energy_gap must be a finite number"):
        config_lib.from_args(["--max_energy_gap", "nan"])


@pytest.mark.parametrize("flags", [["--langevin_sigma", "nan"], ["--reg_weight", "nan"],
                                   ["--lr", "inf"], ["--ema", "nan"], ["--budget_minutes", "inf"]])
def test_non_finite_numbers_are_refused(flags):
    with pytest.raises(ValueError, match=f"{flags[0]} must be a finite number"):
        config_lib.from_args(flags)


def test_a_trailing_slash_names_the_same_run_directory(tmp_path):
    config = config_lib.Config(out=str(tmp_path) + "/", resume=True)
    assert config.out == str(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(vars(config), out=str(tmp_path))))
    assert reopen_run_dir(str(tmp_path) + "/", config) is True


def write_mnist_like(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              "y_train": np.arange(40) % 10,
              "x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "y_test": np.arange(20) % 10}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("overrides, message", [
    ({"y_train": np.r_[np.arange(39) % 10, 200]}, "no image of class 10, 11, 12, 13, 14, ..."),
    ({"y_test": np.r_[np.arange(19) % 10, 12]}, "no image of class 10, 11"),
    ({"y_train": np.r_[np.arange(39) % 10, -1]}, "holds the label -1"),
    ({"y_train": np.arange(40) % 10 + 0.5}, "integer class labels"),
    ({"x_test": np.zeros((0, 28, 28), np.uint8), "y_test": np.zeros(0, int)}, "x_test holds no images"),
    ({"x_test": np.zeros((20, 32, 32), np.uint8)}, r"test images \(32, 32, 1\)"),
])
def test_data_files_with_bad_labels_or_splits_are_refused_before_training(tmp_path, capsys,
                                                                          overrides, message):
    path = write_mnist_like(tmp_path / "data.npz", **overrides)
    with pytest.raises(data.DataError, match=message):
        data.load_dataset(data_file=path, validation_size=5)
    out = tmp_path / "run"
    assert train_cli.main(["--data_file", path, "--out", str(out), "--validation_size", "5",
                      "--batch_size", "8"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists()  # refused before the run directory is made


@pytest.mark.parametrize("overrides, flags, message", [
    ({"y_train": np.zeros(40, int), "y_test": np.zeros(20, int)}, ["--chain_start", "uniform"],
     "--model jem classifies, and the training labels hold 1 class"),
    ({}, ["--conditional_sampling", "--buffer_size", "5", "--chain_start", "uniform"],
     "--buffer_size 5 must be at least the 10 classes"),
    ({}, ["--model", "ebm", "--chain_start", "class_gaussian", "--subset", "1", "--batch_size",
          "1"], "needs at least 2; the training split has 1"),
    ({}, [], "lower --eval_samples or pass --evaluate false"),
    ({}, ["--validation_size", "40"], "--validation_size 40 must be in [0, 40)"),
])
def test_data_that_cannot_serve_the_flags_is_refused_before_training(tmp_path, capsys, overrides,
                                                                     flags, message):
    path = write_mnist_like(tmp_path / "data.npz", **overrides)
    out = tmp_path / "run"
    assert train_cli.main(["--data_file", path, "--out", str(out), "--validation_size", "5",
                           "--batch_size", "8", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_resume_refuses_other_settings_and_finished_runs(tmp_path):
    config = config_lib.Config(out=str(tmp_path), resume=True, lr=1e-3)
    assert reopen_run_dir(str(tmp_path), config) is False  # nothing there: start
    (tmp_path / "config.json").write_text(json.dumps(dict(vars(config), lr=1e-4)))
    with pytest.raises(experiment.RunError, match=r"started with --lr 0.0001 \(now 0.001\)"):
        reopen_run_dir(str(tmp_path), config)
    (tmp_path / "config.json").write_text(json.dumps(dict(vars(config), verbose=2)))
    assert reopen_run_dir(str(tmp_path), config) is True  # unfinished: continue
    # A run started before a setting existed resumes when the setting is at its default...
    older = {k: v for k, v in vars(config).items() if k != "calibrate"}
    (tmp_path / "config.json").write_text(json.dumps(older))
    assert reopen_run_dir(str(tmp_path), config) is True
    # ...and not when it is not.
    with pytest.raises(experiment.RunError, match=r"--calibrate True \(now False\)"):
        reopen_run_dir(str(tmp_path), config_lib.Config(out=str(tmp_path), resume=True,
                                                        lr=1e-3, calibrate=False))
    (tmp_path / "test_metrics.json").write_text("{}")
    with pytest.raises(experiment.RunError, match="holds a finished run; its results are kept"):
        reopen_run_dir(str(tmp_path), config)


def test_an_unwritable_output_directory_fails_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a directory")
    out = tmp_path / "a_file" / "run"
    assert train_cli.main(["--out", str(out), "--subset", "64", "--validation_size", "10",
                       "--batch_size", "16", "--evaluate", "false"]) == 2
    assert "Cannot write to run directory" in capsys.readouterr().err
    assert (tmp_path / "a_file").read_text() == "not a directory"


def disk_full(*args, **kwargs):
    path = args[1] if len(args) > 1 else args[0]
    if isinstance(path, (str, os.PathLike)):
        with open(path, "wb") as f:
            f.write(b"half a file")  # what a full disk leaves behind
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_previous_checkpoint_and_backup(model, tmp_path, monkeypatch):
    checkpoint = callbacks.Checkpoint(str(tmp_path), monitor="loss")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    backup = callbacks.Backup(str(tmp_path / "backup.npz"))
    backup.set_model(model)
    backup.on_epoch_end(0, {"loss": 1.0})
    before = {name: (tmp_path / name).read_bytes()
              for name in ("last.keras", "best.keras", "backup.npz")}

    monkeypatch.setattr(type(model), "save", lambda self, path, **kw: disk_full(self, path))
    with pytest.raises(OSError, match="Cannot write checkpoint .*last.keras .*No space left on "
                                      "device.*previous checkpoints are kept.*--resume"):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    monkeypatch.setattr(np, "savez", lambda f, **arrays: disk_full(f))
    with pytest.raises(OSError, match="Cannot write the backup .*previous backup is kept"):
        backup.on_epoch_end(1, {"loss": 0.5})

    assert sorted(os.listdir(tmp_path)) == ["backup.npz", "best.json", "best.keras", "last.keras"]
    for name, content in before.items():
        assert (tmp_path / name).read_bytes() == content, name
    monkeypatch.undo()
    assert state.load(model, str(tmp_path / "backup.npz"))["epoch"] == 1


def test_truncated_checkpoints_are_refused_by_evaluate_and_export(model, tmp_path, capsys):
    path = tmp_path / "model.keras"
    model.save(path)
    path.write_bytes(path.read_bytes()[:300])
    assert evaluate_cli.main([str(path), "--out", str(tmp_path / "evaluation")]) == 2
    assert export_cli.main([str(path), str(tmp_path / "export")]) == 2
    assert capsys.readouterr().err.count(f"error: Cannot load {path}") == 2
    assert not os.path.exists(tmp_path / "evaluation") and not os.path.exists(tmp_path / "export")


def test_the_export_is_readable_by_other_users(model, tmp_path):
    directory = tmp_path / "model"
    export.export_model(model, str(directory))
    for root, dirs, files in os.walk(directory):
        assert os.stat(root).st_mode & 0o777 == 0o755, root
        for name in files:
            assert os.stat(os.path.join(root, name)).st_mode & 0o777 == 0o644, name


def test_evaluate_and_export_refuse_models_that_are_not_ebms(tmp_path, capsys):
    from keras_ebm.models.rbm import RBM

    rbm = RBM((28, 28, 1), num_hidden=4, seed=0)
    rbm.compile(keras.optimizers.SGD(0.1))
    rbm.fit(np.zeros((8, 28, 28, 1), np.float32), epochs=1, batch_size=8, verbose=0)
    run_dir = tmp_path / "rbm-run"
    (run_dir / "checkpoints").mkdir(parents=True)
    rbm.save(run_dir / "checkpoints" / "last.keras")
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs))).save(
        tmp_path / "plain.keras")
    for target in (str(run_dir), str(tmp_path / "plain.keras")):
        assert evaluate_cli.main([target]) == 2
        assert export_cli.main([target, str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "not a keras_ebm EBM or ScoreMatching" in err and "not a keras_ebm EBM;" in err, err
    assert not (run_dir / "evaluation").exists() and not (tmp_path / "out").exists()


def test_evaluate_and_export_refuse_toy_density_models(tmp_path, capsys):
    from keras_ebm.models.ebm import EBM

    toy = EBM(networks.mlp(input_shape=(2,), num_outputs=1, hidden_units=(4,)), buffer_size=8,
              sampler=LangevinSampler(steps=1), seed=0)
    toy.compile(keras.optimizers.Adam(1e-3))
    toy.energy(np.zeros((1, 2), np.float32))
    toy.save(tmp_path / "toy.keras")
    assert evaluate_cli.main([str(tmp_path / "toy.keras")]) == 2
    assert export_cli.main([str(tmp_path / "toy.keras"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("models 2-D points (a toy density), not images") == 2, err
    assert not (tmp_path / "evaluation").exists() and not (tmp_path / "out").exists()


# --- fuzzing: random bad values never reach TensorFlow's internals -------------------------

FUZZ_VALUES = ["nan", "inf", "-inf", "-1", "0", "1e309", "abc", "", "2.5", "-0.0", "1e-300",
               "99999999999", "true", "none"]


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_flags_fail_with_exit_2_or_a_message_naming_the_flag(seed, capsys):
    import dataclasses
    import random

    rng = random.Random(seed)
    names = [f.name for f in dataclasses.fields(config_lib.Config)]
    for _ in range(200):
        flags = []
        for name in rng.sample(names, rng.randint(1, 3)):
            flags += [f"--{name}", rng.choice(FUZZ_VALUES)]
        try:
            config_lib.from_args(flags)
        except SystemExit as exit_:  # argparse: a value of the wrong type or choice
            assert exit_.code == 2, flags
            assert ": error: " in capsys.readouterr().err, flags
        except ValueError as err:
            assert str(err).startswith("Invalid configuration"), flags
            assert any(flag in str(err) for flag in flags[::2]), (flags, str(err))


@pytest.mark.parametrize("seed", range(2))
def test_fuzzed_api_calls_succeed_or_raise_a_value_error(model, seed):
    rng = np.random.default_rng(seed)
    shapes = [(0, 28, 28, 1), (2, 28, 28), (2, 28, 28, 1), (2, 32, 32, 1), (1, 28, 28, 1)]
    dtypes = [np.uint8, np.int32, np.float16, np.float32, np.float64, np.bool_]
    values = [np.nan, np.inf, 255.0, -5.0, 0.5, -1.0]
    label_sets = [None, [], [0], [10], [-1], [[0]], [0, 1]]
    for _ in range(60):
        shape = shapes[rng.integers(len(shapes))]
        x = np.full(shape, values[rng.integers(len(values))]).astype(dtypes[rng.integers(len(dtypes))])
        labels = label_sets[rng.integers(len(label_sets))]
        calls = [
            lambda: model.energy(x),
            lambda: model.conditional_energy(x, labels if labels is not None else [0]),
            lambda: model.generate(int(rng.choice([-1, 0, 1, 2, 70000])),
                                   steps=int(rng.choice([-1, 0, 1])), labels=labels,
                                   unconditional_steps=int(rng.choice([-1, 0, 2]))),
        ]
        try:
            calls[rng.integers(len(calls))]()
        except ValueError as err:
            assert str(err), "a ValueError without a message"


def test_class_gaussian_starts_need_two_images_of_each_class(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_cli.main(["--out", str(out), "--subset", "12", "--validation_size", "5",
                      "--batch_size", "4"]) == 2
    error = capsys.readouterr().err
    assert "needs at least 2 training images of each" in error and "--chain_start uniform" in error
    assert not out.exists()


def test_an_unconditional_ebm_fits_one_gaussian_whatever_the_classes():
    splits = data.load_dataset(subset=12, validation_size=5)
    assert np.bincount(splits.y_train, minlength=10).min() < 2  # a JEM is refused this split
    jem = config_lib.Config(chain_start="class_gaussian")
    with pytest.raises(experiment.RunError, match="at least 2 training images of each"):
        experiment.check_fits(jem, splits)
    experiment.check_fits(config_lib.Config(model="ebm", chain_start="class_gaussian"), splits)
    one_image = data.load_dataset(subset=1, validation_size=5)
    with pytest.raises(experiment.RunError, match="needs at least 2; the training split has 1"):
        experiment.check_fits(config_lib.Config(model="ebm", chain_start="class_gaussian"),
                              one_image)
