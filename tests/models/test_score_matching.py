"""Score matching recovers a Gaussian's parameters; the objectives' mechanics."""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from keras_ebm.data.toy import ToyDensity
from keras_ebm.evaluation.distances import evaluate, evaluate_model
from keras_ebm.models import networks
from keras_ebm.models.score_matching import ScoreMatching
from keras_ebm.samplers.langevin import AnnealedLangevinSampler, LangevinSampler

MEAN = np.array([1.0, -0.5], np.float32)
COV = np.array([[0.5, 0.2], [0.2, 0.3]], np.float32)
tfd = tfp.distributions


class Quadratic(keras.layers.Layer):
    """Scores ``-0.5 (x - m)^T L L^T (x - m)``: the energy of a Gaussian with precision L L^T."""

    def build(self, input_shape):
        self.m = self.add_weight(shape=(2,), initializer="zeros")
        self.l = self.add_weight(shape=(2, 2), initializer="identity")

    def call(self, x):
        lower = tf.linalg.band_part(self.l, -1, 0)
        return -0.5 * tf.reduce_sum(tf.matmul(x - self.m, lower) ** 2, axis=1, keepdims=True)

    def precision(self):
        lower = np.tril(self.l.numpy())
        return lower @ lower.T


def fit_gaussian(objective, **kwargs):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    layer = Quadratic()
    model = ScoreMatching(keras.Model(inputs, layer(inputs)), objective=objective, seed=0,
                          value_range=(-4, 4), **kwargs)
    model.compile(keras.optimizers.Adam(0.02))
    points = np.random.default_rng(0).multivariate_normal(MEAN, COV, 8000).astype("float32")
    model.fit(points, batch_size=400, epochs=25, verbose=0)
    return layer, model


def test_sliced_score_matching_recovers_the_mean_and_precision():
    layer, _ = fit_gaussian("sliced", num_projections=2)
    np.testing.assert_allclose(layer.m.numpy(), MEAN, atol=0.08)
    np.testing.assert_allclose(layer.precision(), np.linalg.inv(COV), rtol=0.12, atol=0.3)


def test_denoising_score_matching_recovers_the_smoothed_gaussian():
    sigma = 0.3
    layer, model = fit_gaussian("denoising", noise_levels=(sigma,))
    np.testing.assert_allclose(layer.m.numpy(), MEAN, atol=0.08)
    # The data convolved with N(0, sigma^2 I): covariance COV + sigma^2 I.
    np.testing.assert_allclose(layer.precision(), np.linalg.inv(COV + sigma**2 * np.eye(2)),
                               rtol=0.12, atol=0.3)
    assert np.isfinite(model.evaluate(np.zeros((4, 2), np.float32), verbose=0)[0])


@pytest.mark.parametrize("power", [2.0, -2.0])
def test_level_weights_set_the_smoothing_of_a_two_level_fit(power):
    # For a quadratic energy the weighted objective is minimised by the data smoothed with
    # sigma_eff^2 = sum sigma^(p+2) / sum sigma^p: 0.49^2 at p = 2, 0.14^2 at p = -2.
    levels = np.array([0.1, 0.5])
    layer, model = fit_gaussian("denoising", noise_levels=tuple(levels), weight_power=power)
    smoothing = (levels ** (power + 2)).sum() / (levels ** power).sum()
    np.testing.assert_allclose(layer.m.numpy(), MEAN, atol=0.08)
    np.testing.assert_allclose(layer.precision(), np.linalg.inv(COV + smoothing * np.eye(2)),
                               rtol=0.12, atol=0.3)
    assert model.get_config()["weight_power"] == power


def test_annealed_denoising_score_matching_learns_the_smoothed_gaussian_times_sigma():
    sigma = 0.3
    layer, model = fit_gaussian("denoising", noise_levels=(sigma,), annealed=True)
    np.testing.assert_allclose(layer.m.numpy(), MEAN, atol=0.08)
    # E(x) / sigma is the energy of the data smoothed at sigma.
    np.testing.assert_allclose(layer.precision() / sigma,
                               np.linalg.inv(COV + sigma**2 * np.eye(2)), rtol=0.12, atol=0.3)
    samples = model.generate(2000, steps=300, seed=0).numpy()
    np.testing.assert_allclose(samples.mean(axis=0), MEAN, atol=0.08)


def test_the_density_of_an_annealed_model_is_its_energy_at_the_smallest_level():
    density = ToyDensity("gaussian", tfd.MultivariateNormalFullCovariance(MEAN, COV), (-4.0, 4.0))
    _, model = fit_gaussian("denoising", noise_levels=(0.1,), annealed=True)
    x = tf.constant([[0.0, 0.0], [1.0, -0.5], [2.0, 1.0]])
    two_levels = ScoreMatching(model.network, noise_levels=(0.5, 0.1), annealed=True)
    np.testing.assert_allclose(two_levels.density_energy(x), model.energy(x) / 0.1, rtol=1e-6)
    plain = ScoreMatching(model.network, noise_levels=(0.1,))
    np.testing.assert_allclose(plain.density_energy(x), plain.energy(x), rtol=1e-6)
    # The toy evaluation scores that density: close to the data's, far from exp(-E).
    points = np.zeros((10, 2), np.float32)
    assert evaluate(model.density_energy, points, density)["tv_density"] < 0.1
    assert evaluate(model.energy, points, density)["tv_density"] > 0.5
    assert evaluate_model(model, density, num_samples=10, steps=10)["tv_density"] < 0.1


@keras.saving.register_keras_serializable(package="tests")
class LevelQuadratic(keras.layers.Layer):
    """Scores ``-0.5 (x - m)^2 exp(a + b log sigma)`` of 1-D points carrying a log-sigma
    channel: a Gaussian energy whose precision is set per noise level."""

    def build(self, input_shape):
        self.m = self.add_weight(shape=(), initializer="zeros")
        self.ab = self.add_weight(shape=(2,), initializer="zeros")

    def call(self, inputs):
        x, log_sigma = inputs[:, :1], inputs[:, 1:]
        return -0.5 * (x - self.m) ** 2 * tf.exp(self.ab[0] + self.ab[1] * log_sigma)

    def precision(self, sigma):
        return float(np.exp(self.ab[0] + self.ab[1] * np.log(sigma)))


def test_noise_conditional_model_fits_each_level_its_own_smoothed_gaussian(tmp_path):
    # Data N(1, 0.5^2); at level sigma the smoothed data has precision 1 / (0.25 + sigma^2):
    # 3.85 at 0.1 and 0.8 at 1. One unconditional energy would fit ~0.8 for both.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    layer = LevelQuadratic()
    model = ScoreMatching(keras.Model(inputs, layer(inputs)), noise_levels=(1.0, 0.1),
                          noise_conditional=True, seed=0, value_range=(-3, 3))
    assert model.sample_shape == (1,) and model.sampler.noise_conditional
    model.compile(keras.optimizers.Adam(0.02))
    points = np.random.default_rng(0).normal(1.0, 0.5, (8000, 1)).astype("float32")
    model.fit(points, batch_size=400, epochs=40, verbose=0)
    assert float(layer.m.numpy()) == pytest.approx(1.0, abs=0.05)
    for sigma in (0.1, 1.0):
        assert layer.precision(sigma) == pytest.approx(1 / (0.25 + sigma**2), rel=0.12)
    # The energy defaults to the smallest level's; samples anneal down to it.
    x = tf.constant([[0.0], [1.0], [2.5]])
    expected = 0.5 * (x.numpy()[:, 0] - layer.m.numpy()) ** 2 * layer.precision(0.1)
    np.testing.assert_allclose(model.energy(x), expected, rtol=1e-4)
    np.testing.assert_allclose(model.energy(x, sigma=1.0),
                               expected * layer.precision(1.0) / layer.precision(0.1), rtol=1e-4)
    samples = model.generate(2000, steps=400, seed=0).numpy()
    assert samples.shape == (2000, 1)
    assert samples.mean() == pytest.approx(1.0, abs=0.05)
    model.save(tmp_path / "conditional.keras")
    loaded = keras.saving.load_model(tmp_path / "conditional.keras")
    assert loaded.noise_conditional and loaded.sample_shape == (1,)
    np.testing.assert_allclose(loaded.density_energy(x), model.density_energy(x), rtol=1e-6)
    np.testing.assert_allclose(loaded.generate(4, steps=6, seed=2),
                               model.generate(4, steps=6, seed=2), rtol=1e-5)


@keras.saving.register_keras_serializable(package="tests")
class SmoothedGaussian(keras.layers.Layer):
    """Scores ``-0.5 (x - m)^2 / (v + sigma^2)`` of 1-D points carrying a log-sigma channel:
    the energy family of Gaussian data N(m, v) smoothed at every level, fitted through m, v."""

    def build(self, input_shape):
        self.m = self.add_weight(shape=(), initializer="zeros")
        self.log_v = self.add_weight(shape=(), initializer="zeros")

    def call(self, inputs):
        x, sigma = inputs[:, :1], tf.exp(inputs[:, 1:])
        return -0.5 * (x - self.m) ** 2 / (tf.exp(self.log_v) + sigma**2)


def test_continuous_noise_draws_log_uniform_levels_with_mean_one_weights():
    network = networks.get_network("mlp", input_shape=(3,), num_outputs=1)
    for power in (2.0, 0.0):
        model = ScoreMatching(network, noise_levels=(0.02, 0.1, 1.0), noise_conditional=True,
                              continuous_noise=True, weight_power=power, seed=0)
        sigma, weight = model.draw_levels(20000)
        log_sigma = np.log(sigma.numpy())
        assert log_sigma.min() >= np.log(0.02) and log_sigma.max() <= 0.0
        # Log-uniform: quartiles of log sigma evenly spaced, no mass piled on the listed levels.
        np.testing.assert_allclose(np.percentile(log_sigma, [25, 50, 75]),
                                   np.log(0.02) * np.array([0.75, 0.5, 0.25]), atol=0.06)
        assert np.mean(np.isclose(sigma.numpy(), 0.1, rtol=1e-3)) < 0.01
        if power == 2.0:
            assert weight is None
        else:  # sigma^-2 over its mean: mean 1, largest at the smallest levels
            assert weight.numpy().mean() == pytest.approx(1.0, rel=0.1)
            assert np.corrcoef(log_sigma, np.log(weight.numpy()))[0, 1] == pytest.approx(-1.0)


def test_continuous_noise_fits_every_level_and_its_flow_density_is_the_data():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    layer = SmoothedGaussian()
    model = ScoreMatching(keras.Model(inputs, layer(inputs)), noise_levels=(0.05, 1.0),
                          noise_conditional=True, continuous_noise=True, seed=0,
                          value_range=(-3, 3))
    model.compile(keras.optimizers.Adam(0.02))
    points = np.random.default_rng(0).normal(1.0, 0.5, (8000, 1)).astype("float32")
    model.fit(points, batch_size=400, epochs=25, verbose=0)
    assert float(layer.m.numpy()) == pytest.approx(1.0, abs=0.05)
    assert float(np.exp(layer.log_v.numpy())) == pytest.approx(0.25, rel=0.1)
    # The flow carries the family down to N(m, v + 0.05^2): its log-density up to a constant.
    x = tf.constant([[-0.5], [0.5], [1.0], [2.0]])
    flow = -model.density_energy(x).numpy()
    exact = -0.5 * (x.numpy()[:, 0] - layer.m.numpy()) ** 2 / (np.exp(layer.log_v.numpy())
                                                               + 0.05**2)
    np.testing.assert_allclose(flow - flow[2], exact - exact[2], atol=0.01)
    assert model.get_config()["continuous_noise"]


@keras.saving.register_keras_serializable(package="tests")
class SpoiledSmallLevels(SmoothedGaussian):
    """Data N(1, 0.25) smoothed at every level, plus a spurious 40-nat well at x = 3 (4 std
    from the data, where no small level's noisy points go) in the levels below 0.03."""

    def build(self, input_shape):
        super().build(input_shape)
        self.m.assign(1.0)
        self.log_v.assign(np.log(0.25))

    def call(self, inputs):
        well = 40.0 * tf.exp(-0.5 * ((inputs[:, :1] - 3.0) / 0.2) ** 2) * tf.cast(
            inputs[:, 1:] < np.log(0.03), tf.float32)
        return super().call(inputs) + well


def test_the_density_of_a_noise_conditional_model_is_its_flow_not_its_smallest_level():
    inputs = keras.Input((2,))
    model = ScoreMatching(keras.Model(inputs, SpoiledSmallLevels()(inputs)),
                          noise_levels=(0.02, 1.0), noise_conditional=True, value_range=(-4, 4))
    density = ToyDensity("gaussian", tfd.MultivariateNormalDiag([1.0], [0.5]), (-4.0, 4.0))
    points = np.zeros((10, 1), np.float32)
    assert evaluate(model.density_energy, points, density)["tv_density"] < 0.02
    assert evaluate(model.energy, points, density)["tv_density"] > 0.5
    # One level: no flow, the energy is the density.
    one_level = ScoreMatching(model.network, noise_levels=(0.02,), noise_conditional=True)
    x = tf.constant([[0.0], [3.0]])
    np.testing.assert_allclose(one_level.density_energy(x), one_level.energy(x), rtol=1e-6)
    with pytest.raises(ValueError, match="Only a noise-conditional model"):
        ScoreMatching(networks.get_network("mlp", input_shape=(2,), num_outputs=1)).energy(
            tf.zeros([1, 2]), sigma=0.1)
    images = ScoreMatching(networks.get_network("mlp", input_shape=(4, 4, 2), num_outputs=1),
                           noise_levels=(0.1, 1.0), noise_conditional=True)
    with pytest.raises(ValueError, match="for points \\[batch, dim\\].*Use energy\\(x\\)"):
        images.density_energy(tf.zeros([1, 4, 4, 1]))


def test_annealed_model_saves_its_sampler(tmp_path):
    model = ScoreMatching(networks.get_network("mlp", input_shape=(2,), num_outputs=1),
                          noise_levels=(1.0, 0.1), annealed=True, seed=3)
    assert model.sampler.step_size == pytest.approx(0.1 * 0.1**2)
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(np.zeros((32, 2), np.float32), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "annealed.keras")
    loaded = keras.saving.load_model(tmp_path / "annealed.keras")
    assert loaded.annealed and loaded.sampler.get_config() == model.sampler.get_config()
    np.testing.assert_allclose(loaded.generate(4, steps=6, seed=2), model.generate(4, steps=6, seed=2),
                               rtol=1e-5)


def test_score_is_minus_the_energy_gradient_by_finite_differences():
    model = ScoreMatching(networks.get_network("mlp", input_shape=(3,), num_outputs=1), seed=0)
    x = tf.constant([[0.1, -0.2, 0.3]])
    eps = 1e-3
    numeric = [(model.energy(x + eps * e) - model.energy(x - eps * e)).numpy()[0] / (2 * eps)
               for e in np.eye(3, dtype=np.float32)]
    np.testing.assert_allclose(model.score(x).numpy()[0], -np.array(numeric), rtol=2e-2, atol=1e-4)


def test_save_load_round_trip_and_sampling(tmp_path):
    model = ScoreMatching(networks.get_network("mlp", input_shape=(2,), num_outputs=1),
                          objective="sliced", noise_levels=(0.1, 0.2), seed=3)
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(np.zeros((32, 2), np.float32), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "sm.keras")
    loaded = keras.saving.load_model(tmp_path / "sm.keras")
    assert loaded.objective == "sliced" and loaded.noise_levels == (0.1, 0.2)
    x = tf.constant([[0.3, -0.1]])
    np.testing.assert_allclose(loaded.energy(x), model.energy(x), rtol=1e-6)
    samples = loaded.generate(5, steps=3, seed=1)
    assert samples.shape == (5, 2) and np.all(np.abs(samples) <= 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "ssm"}, "objective must be one of"),
    ({"noise_levels": (0.1, -1)}, "noise_levels must be positive"),
    ({"noise_levels": ()}, "noise_levels must be positive"),
    ({"num_projections": 0}, "num_projections must be >= 1"),
    ({"objective": "sliced", "annealed": True}, "annealed=True needs objective='denoising'"),
    ({"weight_power": float("nan")}, "weight_power must be a finite number"),
    ({"objective": "sliced", "weight_power": 0}, "sliced score matching has none"),
    ({"annealed": True, "sampler": LangevinSampler()}, "AnnealedLangevinSampler"),
    ({"sampler": AnnealedLangevinSampler((0.1,))}, "only such a model can use one"),
    ({"objective": "sliced", "noise_conditional": True}, "noise_conditional=True needs"),
    ({"annealed": True, "noise_conditional": True}, "pick one"),
    ({"noise_conditional": True, "sampler": AnnealedLangevinSampler((0.1,))},
     "noise_conditional as the model's"),
    ({"continuous_noise": True, "noise_levels": (0.1, 1.0)}, "needs noise_conditional=True"),
    ({"continuous_noise": True, "noise_conditional": True}, "at least two different"),
    ({"continuous_noise": True, "noise_conditional": True, "noise_levels": (0.1, 0.1)},
     "at least two different"),
    ({"annealed": True, "noise_levels": (1.0, 0.1), "sampler": AnnealedLangevinSampler((1.0, 0.2))},
     "noise levels .* differ from the model's"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScoreMatching(networks.get_network("mlp", input_shape=(2,), num_outputs=1), **kwargs)


def test_a_noise_conditional_network_needs_the_level_channel():
    with pytest.raises(ValueError, match="one more channel"):
        ScoreMatching(networks.get_network("mlp", input_shape=(1,), num_outputs=1),
                      noise_conditional=True)


def test_train_py_runs_score_matching_on_a_toy_density_and_on_mnist(tmp_path):
    import json

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "training"))
    from test_train import train  # the same subprocess helper as the end-to-end tests

    toy = ["--dataset", "toy:two_moons", "--network", "mlp", "--epochs", "1", "--subset", "512",
           "--validation_size", "128", "--batch_size", "64", "--parameterization", "langevin",
           "--langevin_alpha", "0.001", "--langevin_steps", "5", "--final_sample_steps", "5",
           "--eval_samples", "200", "--eval_steps", "5", "--sample_every", "0", "--verbose", "0"]
    # The noise-conditional model on a 1-D density: its flow density costs an ODE per grid cell.
    for name, flags in (("dsm", ["--model", "dsm"]), ("ssm", ["--model", "ssm"]),
                        ("ncsn", ["--model", "dsm", "--noise_conditional", "--continuous_noise",
                                  "--dataset", "toy:gaussian1d"])):
        result = train("--out", str(tmp_path / name), *toy, *flags)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads((tmp_path / name / "evaluation" / "evaluation.json").read_text())
        assert 0 <= report["tv_density"] <= 1
    images = ["--model", "dsm", "--annealed", "--noise_levels", "1,0.1", "--network", "cnn",
              "--epochs", "1", "--subset", "256",
              "--validation_size", "64", "--batch_size", "64", "--langevin_steps", "2",
              "--final_sample_steps", "4", "--sample_steps", "2", "--eval_samples", "20",
              "--eval_steps", "2", "--eval_num_test", "100", "--verbose", "0"]
    result = train("--out", str(tmp_path / "mnist"), *images)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "mnist" / "test_metrics.json").read_text())
    assert np.isfinite(metrics["loss"]) and "score_norm" in metrics
    assert (tmp_path / "mnist" / "evaluation" / "evaluation.json").exists()
