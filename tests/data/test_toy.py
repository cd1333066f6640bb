import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import EBM, LangevinSampler
from keras_ebm import config as config_lib
from keras_ebm import data, get_network
from keras_ebm.data import toy
from keras_ebm.evaluation import distances
from keras_ebm.training import experiment


def gaussian_log_density(mean):
    return lambda x: -0.5 * tf.reduce_sum((x - mean) ** 2, axis=-1) - 0.5 * math.log(2 * math.pi)


def test_grid_distances_match_closed_forms():
    # N(0, 1) vs N(1, 1): TV = 2 Phi(1/2) - 1 and KL = 1/2.
    box = (-8.0, 9.0)
    log_p = distances.grid_log_masses(gaussian_log_density(0.0), box, 1, 2000)
    log_q = distances.grid_log_masses(gaussian_log_density(1.0), box, 1, 2000)
    assert distances.total_variation(np.exp(log_p), np.exp(log_q)) == pytest.approx(
        math.erf(0.5 / math.sqrt(2)), abs=1e-4)
    assert distances.kl_divergence(log_p, log_q) == pytest.approx(0.5, abs=1e-4)
    assert distances.total_variation(np.exp(log_p), np.exp(log_p)) == 0.0
    # Normalisation is numerical: an energy with an arbitrary offset gives the same grid.
    shifted = distances.grid_log_masses(lambda x: gaussian_log_density(0.0)(x) + 123.0, box, 1, 2000)
    np.testing.assert_allclose(shifted, log_p, atol=1e-5)


@pytest.mark.parametrize("name", list(toy.DENSITIES))
def test_densities_are_normalised_and_their_draws_follow_them(name):
    density = toy.get_density(name)
    resolution = 400 if density.dim == 1 else 160  # multiples of the histogram's bins
    points, _ = distances.grid_points(density.box, density.dim, resolution)
    cell = ((density.box[1] - density.box[0]) / resolution) ** density.dim
    # The exact log-density integrates to 1 over its box (midpoint rule).
    assert np.exp(density.log_prob(points).numpy()).sum() * cell == pytest.approx(1.0, abs=0.01)
    draws = density.sample(20000, seed=3)
    assert draws.shape == (20000, density.dim) and draws.dtype == np.float32
    bins = 50 if density.dim == 1 else 20
    fine = distances.grid_log_masses(density.log_prob, density.box, density.dim, resolution)
    truth = distances.pool_masses(np.exp(fine), bins)
    # 20000 draws: the finite-sample TV is ~0.035 for the widest (rings).
    assert distances.total_variation(distances.histogram_masses(draws, density.box, bins), truth) < 0.06


def test_pool_masses_sums_blocks():
    masses = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(distances.pool_masses(masses, 2), [[10, 18], [42, 50]])


def test_histogram_counts_samples_outside_the_box_as_missing_mass():
    masses = distances.histogram_masses(np.array([[0.5], [1.5], [7.0]]), (0.0, 2.0), 2)
    np.testing.assert_allclose(masses, [1 / 3, 1 / 3])
    assert distances.total_variation(masses, np.array([0.5, 0.5])) == pytest.approx(1 / 3)


def test_region_decomposition_splits_mass_and_shape_and_bounds_the_distance():
    p = np.array([0.1, 0.3, 0.2, 0.2, 0.2, 0.0])
    regions = np.array([0, 0, 1, 1, 2, 2])
    # The same shapes, other region masses (0.2, 0.4, 0.4): all of the distance is in the masses.
    reweighted = np.array([0.05, 0.15, 0.2, 0.2, 0.4, 0.0])
    split = distances.region_decomposition(p, reweighted, regions)
    assert split["region_tv"] == pytest.approx(0.2) and split["shape_tv"] == pytest.approx(0.0)
    # The same region masses, other shapes: none of it is.
    reshaped = np.array([0.4, 0.0, 0.0, 0.4, 0.1, 0.1])
    split = distances.region_decomposition(p, reshaped, regions)
    assert split["region_tv"] == pytest.approx(0.0)
    assert split["shape_tv"] == pytest.approx(distances.total_variation(p, reshaped))
    # A region q leaves empty takes p's shape; the bounds hold for random grids too.
    rng = np.random.default_rng(0)
    for q in [np.array([0.0, 0.0, 0.5, 0.1, 0.4, 0.0])] + list(rng.dirichlet(np.ones(6), 20)):
        split = distances.region_decomposition(p, q, regions)
        tv = distances.total_variation(p, q)
        assert split["region_tv"] - 1e-12 <= tv <= split["region_tv"] + split["shape_tv"] + 1e-12
    with pytest.raises(ValueError, match="one entry per cell"):
        distances.region_decomposition(p, p[:5], regions)


def test_mixture_regions_name_the_nearest_component_or_far():
    density = toy.get_density("eight_gaussians")
    points = np.array([[2.5, 0.0], [0.0, 2.6], [0.0, 0.0], [1.8, 1.7]], np.float32)
    np.testing.assert_array_equal(distances.mixture_regions(density, points), [0, 2, 8, 1])
    assert distances.num_components(density) == 8
    with pytest.raises(ValueError, match="not a mixture of diagonal Gaussians"):
        distances.mixture_regions(toy.get_density("checkerboard"), points)


def test_mmd_test_accepts_equal_and_rejects_shifted_distributions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    assert distances.mmd_test(x, y, seed=1)[1] > 0.05
    mmd, p_value = distances.mmd_test(x, y + [0.3, 0.0], seed=1)
    assert p_value < 0.01 and mmd > 0


def test_sample_mmd_and_its_floor_share_one_kernel_fixed_by_exact_draws():
    density = toy.get_density("two_moons")
    spread = np.random.default_rng(0).uniform(-4, 4, (1000, 2)).astype("float32")
    result = distances.evaluate(lambda x: tf.zeros(tf.shape(x)[:1]), spread, density)
    exact, reference = density.sample(1000, seed=1), density.sample(1000, seed=2)
    pooled = np.concatenate([exact, reference]).astype(np.float64)
    sq = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    bandwidth = np.sqrt(0.5 * np.median(sq[np.triu_indices(len(pooled), 1)]))
    assert result["mmd_bandwidth"] == pytest.approx(bandwidth, rel=1e-6)
    assert result["mmd_samples"] == pytest.approx(distances.mmd(spread, reference, bandwidth))
    # The samples' own median heuristic would widen the kernel and lower their MMD.
    assert distances.mmd(spread, reference) < result["mmd_samples"]


def test_toy_datasets_load_as_splits_with_their_box():
    splits = data.load_dataset("toy:two_moons", validation_size=100, subset=300)
    assert splits.x_train.shape == (300, 2) and splits.x_val.shape == (100, 2)
    assert splits.value_range == (-4.0, 4.0) and splits.num_classes == 1
    batch, _ = next(iter(data.make_dataset(splits.x_train, splits.y_train, batch_size=8)))
    np.testing.assert_array_equal(batch.numpy(), splits.x_train[:8])  # used as they are
    with pytest.raises(data.DataError, match="two_moons"):
        data.load_dataset("toy:moons")


def test_toy_config_rejects_image_only_settings():
    with pytest.raises(ValueError, match=r"--model ebm \(or dsm, ssm\) --network mlp"):
        config_lib.Config(dataset="toy:rings").validate()
    with pytest.raises(ValueError, match="--pad"):
        config_lib.Config(dataset="toy:rings", model="ebm", network="mlp", pad=2).validate()


def train_ebm(name, steps, seed=0):
    density = toy.get_density(name)
    keras.utils.set_random_seed(seed)
    network = get_network("mlp", input_shape=(density.dim,), num_outputs=1, hidden_units=(64, 64))
    model = EBM(network, sampler=LangevinSampler(steps=20, step_size=0.01, grad_clip=None,
                                                 parameterization="langevin",
                                                 value_range=density.box),
                buffer_size=5000, value_range=density.box, reg_weight=0.01, real_noise=0.0,
                seed=seed)
    model.compile(keras.optimizers.Adam(3e-3))
    untrained = distances.evaluate(model.energy, density.sample(1000, seed=9), density)["tv_density"]
    points = density.sample(128 * steps, seed=seed)
    model.fit(data.make_dataset(points, np.zeros(len(points), np.int32), 128), verbose=0)
    return model, density, untrained


# Measured on the 2-core CI machine: TV 0.087 and 0.42 (untrained: 0.59 and 0.79).
@pytest.mark.parametrize("name, steps, bound", [("gaussian1d", 300, 0.13),
                                                ("two_moons", 500, 0.5)])
def test_training_on_a_toy_density_lowers_total_variation(name, steps, bound):
    model, density, untrained = train_ebm(name, steps)
    report = distances.evaluate_model(model, density, num_samples=2000, steps=200)
    assert report["tv_density"] < bound < untrained
    assert report["tv_density"] < 0.7 * untrained
    assert report["tv_samples"] < untrained


def test_a_toy_run_writes_density_plots_and_distances(tmp_path):
    # What `python train.py --dataset toy:eight_gaussians --model ebm --network mlp ...` runs.
    run_dir = tmp_path / "toy"
    config = config_lib.Config(
        dataset="toy:eight_gaussians", model="ebm", network="mlp", subset=512,
        validation_size=128, epochs=1, batch_size=128, langevin_steps=5, langevin_alpha=0.01,
        grad_clip=0, parameterization="langevin", sample_every=0, final_sample_steps=10,
        eval_samples=200, eval_steps=10, verbose=0, out=str(run_dir))
    result = experiment.run(config)
    assert result["diverged"] is None
    for plot in ("landscape", "flow", "histogram"):
        assert os.path.isfile(run_dir / "samples" / f"final_{plot}.png"), plot
    assert not os.path.exists(run_dir / "samples" / "final.png")  # no image grids
    report = json.loads((run_dir / "evaluation" / "evaluation.json").read_text())
    assert 0 < report["tv_density"] <= 1 and report["num_samples"] == 200
    assert os.path.isfile(run_dir / "checkpoints" / "last.keras")
    assert result["model"].value_range == (-4.0, 4.0)  # samples live in the density's box
