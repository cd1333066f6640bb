"""RBM: free energy, Gibbs sampling and AIS checked against exact enumeration on tiny RBMs."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import config as config_lib
from keras_ebm.evaluation.likelihood import (ais_betas, ais_log_partition, all_binary_states,
                                             raise_log_likelihood,
                                             evaluate_log_likelihood, exact_log_partition)
from keras_ebm.models.rbm import RBM
from keras_ebm.training import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def random_rbm(num_visible=12, num_hidden=8, scale=1.0, seed=0, **kwargs):
    """A binary-input RBM (``value_range`` (0, 1)) with non-trivial random weights."""
    rbm = RBM((num_visible,), num_hidden=num_hidden, value_range=(0.0, 1.0), seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    rbm.kernel.assign(rng.normal(0, scale, (num_visible, num_hidden)).astype("float32"))
    rbm.visible_bias.assign(rng.normal(0, scale, num_visible).astype("float32"))
    rbm.hidden_bias.assign(rng.normal(0, scale, num_hidden).astype("float32"))
    return rbm


def exact_probabilities(rbm):
    """All visible states and their exact probabilities ``p(v)``."""
    states = all_binary_states(rbm.num_visible)
    free_energy = rbm.free_energy(tf.constant(states, tf.float32)).numpy().astype(np.float64)
    return states, np.exp(-free_energy - exact_log_partition(rbm))


def exact_mean_log_likelihood(rbm, v):
    return float(np.mean(rbm.log_likelihood(tf.constant(v, tf.float32), exact_log_partition(rbm))))


@pytest.mark.parametrize("num_visible, num_hidden", [(12, 8), (6, 10)])
def test_free_energy_and_log_z_match_enumeration_of_the_joint_energy(num_visible, num_hidden):
    rbm = random_rbm(num_visible, num_hidden)
    kernel, b_v, b_h = (w.numpy().astype(np.float64)
                        for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias))
    v, h = all_binary_states(num_visible), all_binary_states(num_hidden)
    energy = -(v @ b_v)[:, None] - (h @ b_h)[None, :] - v @ kernel @ h.T  # E(v, h)
    free_energy = rbm.free_energy(tf.constant(v, tf.float32)).numpy()
    np.testing.assert_allclose(free_energy, -np.logaddexp.reduce(-energy, axis=1), atol=1e-4)
    # (12, 8) enumerates the hidden layer, (6, 10) the visible one.
    assert exact_log_partition(rbm) == pytest.approx(np.logaddexp.reduce(-energy.ravel()), abs=1e-9)


def test_ais_schedule_runs_from_0_to_1_for_every_allowed_size():
    for size in range(4, 400):
        betas = ais_betas(size)
        assert len(betas) == size and betas[0] == 0 and betas[-1] == 1
        assert np.all(np.diff(betas) > 0)
    with pytest.raises(ValueError, match="num_betas must be >= 4"):
        ais_betas(3)


def test_ais_log_z_is_within_0_02_nats_of_exact():
    rbm = random_rbm(12, 8)
    states, probs = exact_probabilities(rbm)
    data_mean = probs @ states  # the base-rate model of data drawn from the RBM itself
    result = ais_log_partition(rbm, data_mean, num_runs=500, num_betas=1000, seed=0)
    assert abs(result.log_z - exact_log_partition(rbm)) < 0.02
    assert 0 < result.std < 0.01 and result.log_weights.shape == (500,)


def test_ais_test_log_likelihood_matches_exact():
    rbm = random_rbm(12, 8, scale=0.5)
    images = np.random.default_rng(1).uniform(0, 1, (200, 12)).astype("float32")
    report = evaluate_log_likelihood(rbm, images, images, num_runs=500, num_betas=1000, seed=3)
    binary = rbm.binarize(images, tf.constant([3, 2], tf.int64)).numpy()  # as in the report
    exact = exact_mean_log_likelihood(rbm, binary)
    assert report["log_likelihood"] == pytest.approx(exact, abs=0.02)
    assert report["num_images"] == 200 and report["log_z_std"] < 0.02


def test_gibbs_chains_reach_the_exact_distribution():
    rbm = random_rbm(8, 4)
    states, probs = exact_probabilities(rbm)
    start = tf.cast(tf.random.stateless_uniform([50000, 8], [1, 2]) < 0.5, tf.float32)
    v, v_mean = rbm.gibbs(start, 50, seed=[3, 4])
    codes = v.numpy() @ (2 ** np.arange(8)[::-1])  # all_binary_states order
    empirical = np.bincount(codes.astype(int), minlength=256) / len(codes)
    assert 0.5 * np.abs(empirical - probs).sum() < 0.03  # total variation
    assert set(np.unique(v.numpy())) <= {0.0, 1.0} and np.all((v_mean > 0) & (v_mean < 1))


def test_pseudo_log_likelihood_estimate_is_unbiased():
    rbm = random_rbm(12, 8)
    v = tf.constant(np.random.default_rng(0).integers(0, 2, (3, 12)), tf.float32)
    exact = np.zeros(3)
    for i in range(12):  # sum_i log p(v_i | v_-i), flipping every bit
        flipped = v.numpy().copy()
        flipped[:, i] = 1 - flipped[:, i]
        exact += tf.math.log_sigmoid(rbm.free_energy(flipped) - rbm.free_energy(v)).numpy()
    draws = rbm.pseudo_log_likelihood(tf.repeat(v, 20000, axis=0), tf.constant([0, 1], tf.int64))
    draws = draws.numpy().reshape(3, 20000)
    standard_error = draws.std(1) / np.sqrt(20000)
    assert np.all(np.abs(draws.mean(1) - exact) < 4 * standard_error)
    assert np.all(standard_error < 0.3)


def test_reconstruction_error_of_an_rbm_without_weights():
    rbm = random_rbm(12, 8)
    rbm.kernel.assign(tf.zeros_like(rbm.kernel))  # then p(v | h) = sigmoid(b_v) for every h
    v = np.random.default_rng(0).integers(0, 2, (5, 12)).astype("float32")
    expected = np.mean((v - tf.sigmoid(rbm.visible_bias).numpy()) ** 2)
    recon_error = float(rbm.compute_metrics(tf.constant(v))["recon_error"])
    assert recon_error == pytest.approx(expected, rel=1e-5)


def test_visible_bias_starts_at_the_log_odds_of_the_pixel_means():
    rbm = RBM((3,), num_hidden=2, value_range=(0.0, 1.0))
    rbm.initialize_visible_bias(np.array([[0.0, 0.5, 1.0], [0.0, 0.5, 0.5]], "float32"))
    np.testing.assert_allclose(rbm.visible_bias.numpy(), [np.log(1e-3 / 0.999), 0.0, np.log(3.0)],
                               rtol=1e-5, atol=1e-6)


def test_loss_gradient_is_the_contrastive_divergence_gradient():
    rbm = random_rbm(12, 8)
    rng = np.random.default_rng(0)
    data, negatives = (tf.constant(rng.integers(0, 2, (6, 12)), tf.float32) for _ in range(2))
    with tf.GradientTape() as tape:
        loss = rbm.compute_metrics(data, negatives)["loss"]
    grad_kernel = tape.gradient(loss, rbm.kernel)

    def correlation(v):  # < v p(h | v)^T >
        return tf.matmul(v, tf.sigmoid(rbm.hidden_logits(v)), transpose_a=True) / 6

    expected = -(correlation(data) - correlation(negatives))
    np.testing.assert_allclose(grad_kernel.numpy(), expected.numpy(), atol=1e-5)


def toy_data(num=512, seed=0):
    """Four 12-bit prototypes with 5% of the bits flipped."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 2, (4, 12))
    x = prototypes[rng.integers(0, 4, num)]
    return np.abs(x - (rng.uniform(size=x.shape) < 0.05)).astype("float32")


@pytest.mark.parametrize("persistent", [False, True])
def test_training_raises_the_exact_log_likelihood(persistent):
    x = toy_data()
    rbm = RBM((12,), num_hidden=8, persistent=persistent, num_chains=100, value_range=(0.0, 1.0),
              seed=0)
    before = exact_mean_log_likelihood(rbm, x)
    rbm.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.1, 160, alpha=0.01)))
    history = rbm.fit(x, batch_size=32, epochs=10, verbose=0, shuffle=False)
    after = exact_mean_log_likelihood(rbm, x)
    # Start: 12 log(1/2) = -8.3 nats; the data's entropy is about 3.8 nats
    # (log 4 prototypes + 12 bits flipped with probability 0.05).
    assert before == pytest.approx(-12 * np.log(2), abs=0.1)
    assert after > -5.5
    pseudo_log_likelihood, recon_error = (history.history[name]
                                          for name in ("pseudo_log_likelihood", "recon_error"))
    assert pseudo_log_likelihood[-1] > pseudo_log_likelihood[0]
    assert recon_error[-1] < recon_error[0]


def test_persistent_chains_survive_save_load_and_backup_and_restore(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype("float32")
    rbm = RBM((28, 28, 1), num_hidden=16, cd_steps=2, persistent=True, num_chains=16, seed=0)
    rbm.compile(keras.optimizers.Adam(1e-3))
    backup = str(tmp_path / "backup")
    rbm.fit(x, batch_size=16, epochs=1, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
    assert rbm.buffer.samples in rbm.non_trainable_weights

    rbm.save(tmp_path / "rbm.keras")
    loaded = keras.saving.load_model(tmp_path / "rbm.keras")
    assert loaded.get_config() == rbm.get_config()
    for original, restored in zip(rbm.weights, loaded.weights):
        np.testing.assert_array_equal(original.numpy(), restored.numpy())
    np.testing.assert_array_equal(loaded(x).numpy(), rbm(x).numpy())
    np.testing.assert_array_equal(loaded.generate(4, steps=5, seed=7).numpy(),
                                  rbm.generate(4, steps=5, seed=7).numpy())

    fresh = RBM((28, 28, 1), num_hidden=16, cd_steps=2, persistent=True, num_chains=16, seed=1)
    fresh.compile(keras.optimizers.Adam(1e-3))
    # The epoch is already done: fit restores the backup and trains no further.
    fresh.fit(x, batch_size=16, epochs=1, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
    np.testing.assert_array_equal(fresh.buffer.samples.numpy(), rbm.buffer.samples.numpy())
    np.testing.assert_array_equal(fresh.kernel.numpy(), rbm.kernel.numpy())


def test_generate_gives_deterministic_images_in_range_and_snapshots():
    rbm = RBM((4, 3, 1), num_hidden=5, seed=0)
    images = rbm.generate(6, steps=4, seed=1).numpy()
    assert images.shape == (6, 4, 3, 1) and np.all(np.abs(images) < 1)
    np.testing.assert_array_equal(images, rbm.generate(6, steps=4, seed=1).numpy())
    assert np.any(images != rbm.generate(6, steps=4, seed=2).numpy())
    final, snapshots = rbm.generate(6, steps=7, seed=1, snapshot_every=3)
    assert final.shape == (6, 4, 3, 1) and snapshots.shape == (3, 6, 4, 3, 1)
    assert set(np.unique(snapshots[0].numpy())) <= {-1.0, 1.0}  # the random binary start


def test_reverse_annealing_is_conservative_and_with_forward_ais_brackets_the_exact_value():
    rbm = random_rbm(num_visible=12, num_hidden=8)
    states, probabilities = exact_probabilities(rbm)
    rows = np.random.default_rng(0).choice(len(states), 200, p=probabilities / probabilities.sum())
    v = states[rows]  # exact draws from the RBM: the annealing model cannot score them higher
    exact = float(np.mean(np.log(probabilities[rows])))
    data_mean = np.full(12, 0.5)
    estimates = {num_betas: float(np.mean(raise_log_likelihood(rbm, v, data_mean, num_betas)))
                 for num_betas in (20, 200, 2000)}
    assert estimates[20] < estimates[200] < estimates[2000] <= exact + 0.02
    assert estimates[20] < exact - 0.5 and estimates[2000] > exact - 0.15
    log_z = ais_log_partition(rbm, data_mean, num_runs=100, num_betas=2000).log_z
    forward = float(np.mean(rbm.log_likelihood(tf.constant(v, tf.float32), log_z)))
    assert estimates[2000] <= exact <= forward + 0.05 and forward - estimates[2000] < 0.2


def bimodal_rbm(num_visible=10):
    """Two modes, all units off and all on (one hidden unit turns on only when most visible
    units are), the second with about 4x the mass: a Gibbs chain started in one never reaches
    the other."""
    rbm = RBM((num_visible,), num_hidden=1, persistent=True, num_chains=400, temperatures=8,
              min_beta=0.05, value_range=(0.0, 1.0), seed=0)
    rbm.kernel.assign(np.full((num_visible, 1), 6.0, "float32"))
    rbm.visible_bias.assign(np.full(num_visible, -3.0, "float32"))
    rbm.hidden_bias.assign(np.array([-28.6], "float32"))
    return rbm


def test_parallel_tempering_finds_both_modes_in_their_exact_proportions():
    rbm = bimodal_rbm()
    states, probabilities = exact_probabilities(rbm)
    exact_on = probabilities[states.sum(axis=1) > 5].sum()
    exact_active = probabilities @ states.sum(axis=1)  # mean number of units on
    assert 0.7 < exact_on < 0.9  # a real two-mode target
    start = np.zeros((rbm.temperatures, 400, 10), "float32")  # every chain in the "off" mode
    replicas, accepted, proposed = rbm.tempered_gibbs(start, rbm.betas, 300, tf.constant([1, 2]))
    acceptance = accepted / proposed
    cold = replicas[0].numpy().sum(axis=1)
    assert np.mean(cold > 5) == pytest.approx(exact_on, abs=0.07)
    assert np.mean(cold) == pytest.approx(exact_active, abs=0.7)
    assert acceptance.shape == (7,) and np.all(acceptance.numpy() > 0.05)
    single, _ = rbm.gibbs(start[0], 300, tf.constant([1, 2]))
    assert np.mean(single.numpy().sum(axis=1) > 5) < 0.02  # one chain per start sticks


def test_tempered_gibbs_proposes_every_pair_even_with_one_step_per_call():
    """PCD-1 calls the ladder for one step at a time: the pair proposed first must vary,
    or odd pairs would never swap."""
    rbm = RBM((12,), num_hidden=8, persistent=True, temperatures=4, seed=0)
    start = np.zeros((4, 16, 12), "float32")
    proposed = sum(rbm.tempered_gibbs(start, rbm.betas, 1, tf.constant([seed, 0]))[2]
                   for seed in range(20)).numpy()
    assert np.all(proposed > 0)
    # Each step proposes the even pairs (0 and 2) or the odd one, for all 16 chains.
    assert proposed[0] == proposed[2] and proposed[0] + proposed[1] == 20 * 16


def test_tempered_pcd_reports_the_swap_rate_of_proposed_pairs():
    """Rungs 0.001 apart accept nearly every proposed swap, so the training metric is near 1."""
    rbm = RBM((12,), num_hidden=8, persistent=True, num_chains=32, temperatures=3,
              min_beta=0.998, value_range=(0.0, 1.0), seed=0)
    rbm.compile(keras.optimizers.Adam(0.01))
    history = rbm.fit(toy_data(), batch_size=32, epochs=1, verbose=0)
    assert history.history["swap_acceptance"][-1] > 0.9


def test_tempered_pcd_trains_reports_swaps_and_keeps_its_replicas(tmp_path):
    x = toy_data()
    rbm = RBM((12,), num_hidden=8, persistent=True, num_chains=32, temperatures=3,
              value_range=(0.0, 1.0), seed=0)
    before = exact_mean_log_likelihood(rbm, x)
    rbm.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.1, 160, alpha=0.01)))
    history = rbm.fit(x, batch_size=32, epochs=10, verbose=0, shuffle=False)
    assert exact_mean_log_likelihood(rbm, x) > before + 2
    assert 0 < history.history["swap_acceptance"][-1] <= 1
    rbm.save(tmp_path / "rbm.keras")
    loaded = keras.saving.load_model(tmp_path / "rbm.keras")
    np.testing.assert_array_equal(loaded.hot_chains.numpy(), rbm.hot_chains.numpy())
    assert loaded.temperatures == 3 and loaded.betas[-1] == pytest.approx(0.5)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="num_hidden must be > 0"):
        RBM((4,), num_hidden=0)
    with pytest.raises(ValueError, match="pass persistent=True"):
        RBM((4,), temperatures=3)
    with pytest.raises(ValueError, match="Use ais_log_partition"):
        exact_log_partition(RBM((28, 28, 1), num_hidden=30))
    with pytest.raises(ValueError, match="one per visible unit"):
        ais_log_partition(RBM((4,), num_hidden=2), np.full(5, 0.5))
    for flags, message in ((["--model", "rbm", "--export"], "--export supports"),
                           (["--model", "rbm", "--conditional_sampling"], "RBM has no classes"),
                           (["--model", "rbm", "--cd_steps", "0"], "--cd_steps must be > 0"),
                           (["--model", "rbm", "--rbm_temperatures", "4"], "add --persistent true"),
                           (["--model", "rbm", "--rbm_min_beta", "1"], "must be in \\(0, 1\\)")):
        with pytest.raises(ValueError, match=message):
            config_lib.from_args(flags)


def test_train_py_rbm_writes_the_run_directory_and_the_ais_log_likelihood(tmp_path):
    run_dir = tmp_path / "rbm"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), "--model", "rbm", "--persistent",
         "--out", str(run_dir), "--subset", "256", "--validation_size", "64", "--epochs", "1",
         "--batch_size", "64", "--rbm_hidden", "16", "--sample_steps", "2",
         "--final_sample_steps", "4", "--ais_runs", "8", "--ais_betas", "50",
         "--ais_reverse_images", "20", "--eval_num_test", "100", "--verbose", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.json", "train.log", "metrics.csv", "test_metrics.json",
                 "log_likelihood.json", "checkpoints/best.keras", "checkpoints/last.keras",
                 "samples/epoch_001.png", "samples/final.png", "samples/chain_final.png"):
        assert os.path.isfile(run_dir / name), name
    assert not os.path.exists(run_dir / "evaluation")  # the JEM/EBM evaluation is skipped
    with open(run_dir / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert {"loss", "recon_error", "pseudo_log_likelihood", "val_recon_error",
            "val_pseudo_log_likelihood"} <= set(row)
    report = json.loads((run_dir / "log_likelihood.json").read_text())
    # 784 pixels: a barely trained RBM sits between a perfect model and coin flips.
    assert -784 * np.log(2) < report["log_likelihood"] < 0 and report["num_images"] == 100
    reverse = report["reverse"]
    assert reverse["num_images"] == 20 and reverse["log_likelihood_reverse"] < 0
    assert reverse["gap"] == pytest.approx(reverse["log_likelihood_forward"]
                                           - reverse["log_likelihood_reverse"])
    loaded = keras.saving.load_model(run_dir / "checkpoints" / "last.keras")
    assert isinstance(loaded, RBM) and loaded.num_hidden == 16 and loaded.persistent


def test_weight_decay_shrinks_the_weights_and_spares_the_biases():
    config = config_lib.Config(model="rbm", weight_decay=0.5, lr=0.1, epochs=1).validate()
    rbm = random_rbm(num_visible=6, num_hidden=3)
    experiment.compile_model(rbm, config, steps_per_epoch=1)
    before = [w.numpy() for w in rbm.trainable_weights]
    rbm.optimizer.apply([tf.zeros_like(w) for w in rbm.trainable_weights], rbm.trainable_weights)
    for weight, old in zip(rbm.trainable_weights, before):
        shrink = 1.0 if "bias" in weight.name else 1 - 0.1 * 0.5
        np.testing.assert_allclose(weight.numpy(), shrink * old, rtol=1e-5, err_msg=weight.name)
    with pytest.raises(ValueError, match="--weight_decay must be >= 0"):
        config_lib.Config(weight_decay=-1.0).validate()
