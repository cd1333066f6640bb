import numpy as np
import pytest
import tensorflow as tf

from keras_ebm.samplers.langevin import AnnealedLangevinSampler, LangevinSampler, energy_gradient


def gaussian_energy(mu, s):
    mu = tf.constant(mu, tf.float32)
    return lambda x: tf.reduce_sum((x - mu) ** 2, axis=-1) / (2.0 * s**2)


def test_langevin_reproduces_gaussian_moments():
    # E(x) = |x - mu|^2 / (2 s^2) is N(mu, s^2 I). The unadjusted Langevin chain's
    # stationary variance is s^2 / (1 - h / (2 s^2)) for step h: 1.0025 * s^2 here.
    mu, s, h = [1.5, -2.0], 0.5, 0.00125
    sampler = LangevinSampler(steps=3000, step_size=h, parameterization="langevin",
                              grad_clip=None, value_range=None)
    x = sampler(gaussian_energy(mu, s), tf.zeros([4000, 2]), seed=[0, 1]).numpy()
    np.testing.assert_allclose(x.mean(axis=0), mu, atol=0.025)  # 3 standard errors
    np.testing.assert_allclose(x.var(axis=0), s**2 / (1 - h / (2 * s**2)), rtol=0.07)
    # Independent coordinates: the covariance is diagonal.
    assert abs(np.cov(x.T)[0, 1]) < 0.02


def test_sgld_parameterisation_uses_its_own_noise_scale():
    # With zero gradient the chain is a random walk of std noise_scale * sqrt(steps).
    sampler = LangevinSampler(steps=100, step_size=1.0, noise_scale=0.1, grad_clip=None,
                              value_range=None)
    x = sampler(lambda x: tf.zeros(tf.shape(x)[:1]), tf.zeros([20000, 1]), seed=[3, 4]).numpy()
    assert x.std() == pytest.approx(1.0, rel=0.03)


def test_same_seed_same_chain_and_different_seed_differs():
    sampler = LangevinSampler(steps=10, step_size=0.1, noise_scale=0.1)
    energy = gaussian_energy([0.0, 0.0], 1.0)
    x0 = tf.zeros([8, 2])
    a = sampler(energy, x0, seed=[1, 2]).numpy()
    b = sampler(energy, x0, seed=[1, 2]).numpy()
    c = sampler(energy, x0, seed=[1, 3]).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_gradient_clipping_and_value_clamping():
    # A steep linear energy: every step moves each coordinate by exactly
    # step_size * grad_clip until the clamp at the range boundary stops it.
    sampler = LangevinSampler(steps=3, step_size=1.0, noise_scale=0.0, grad_clip=0.1,
                              value_range=(-1.0, 0.25))
    energy = lambda x: -100.0 * tf.reduce_sum(x, axis=-1)  # noqa: E731
    x = sampler(energy, tf.zeros([2, 3]), seed=[0, 0]).numpy()
    np.testing.assert_allclose(x, 0.25)
    x = sampler(energy, tf.zeros([2, 3]), seed=[0, 0], steps=2).numpy()
    np.testing.assert_allclose(x, 0.2, rtol=1e-6)


def test_snapshots_start_at_initial_state_and_end_at_result():
    sampler = LangevinSampler(steps=6, step_size=0.1, noise_scale=0.01, value_range=None)
    energy = gaussian_energy([1.0], 1.0)
    x0 = tf.zeros([5, 1])
    x, snapshots = sampler(energy, x0, seed=[0, 1], snapshot_every=2)
    assert snapshots.shape == (4, 5, 1)
    np.testing.assert_array_equal(snapshots[0], x0)
    np.testing.assert_array_equal(snapshots[-1], x)
    np.testing.assert_array_equal(x, sampler(energy, x0, seed=[0, 1]))


def test_condition_is_passed_to_the_energy():
    # E(x, c) = |x - c|^2 / 2: without noise the chain descends to its own target.
    sampler = LangevinSampler(steps=200, step_size=0.1, noise_scale=0.0, grad_clip=None,
                              value_range=None)
    targets = tf.constant([[-1.0], [2.0]])
    energy = lambda x, c: 0.5 * tf.reduce_sum((x - c) ** 2, axis=-1)  # noqa: E731
    x = sampler(energy, tf.zeros([2, 1]), seed=[0, 0], condition=targets)
    np.testing.assert_allclose(x, targets, atol=1e-4)


def test_energy_gradient_matches_finite_differences():
    w = tf.constant([[0.3, -1.2], [0.7, 0.4]])
    energy = lambda x: tf.reduce_sum(tf.sin(x @ w) ** 2, axis=-1)  # noqa: E731
    x = tf.constant([[0.2, -0.5], [1.0, 0.3]], tf.float64)
    w = tf.cast(w, tf.float64)
    _, grad = energy_gradient(energy, x)
    eps = 1e-6
    for i in range(2):
        for j in range(2):
            d = np.zeros((2, 2))
            d[i, j] = eps
            fd = (energy(x + d) - energy(x - d))[i] / (2 * eps)
            assert grad[i, j].numpy() == pytest.approx(fd.numpy(), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=-1), "steps"),
        (dict(step_size=0.0), "step_size"),
        (dict(noise_scale=-0.1), "noise_scale"),
        (dict(grad_clip=0.0), "grad_clip"),
        (dict(parameterization="mala"), "parameterization"),
        (dict(value_range=(1.0, -1.0)), "value_range"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LangevinSampler(**kwargs)


def test_noise_and_gradient_can_be_overridden_and_overlapping_iterations_give_the_same_chain():
    # A subclass's noise() is what the chain adds: constant noise 1 with no gradient
    # moves every coordinate by noise_scale per step.
    class UnitNoise(LangevinSampler):
        def noise(self, shape, seed, dtype):
            return tf.ones(shape, dtype)

    flat = lambda x: tf.zeros(tf.shape(x)[:1])  # noqa: E731
    sampler = UnitNoise(steps=4, noise_scale=0.5, grad_clip=None, value_range=None)
    np.testing.assert_allclose(sampler(flat, tf.zeros([3, 2]), seed=[0, 0]), 2.0)

    class Overlapping(LangevinSampler):
        parallel_iterations = 2

    class HalvedGradient(LangevinSampler):  # gradient() is an override point too
        def gradient(self, energy_fn, x):
            first, second = tf.split(x, 2)
            return tf.concat([LangevinSampler.gradient(self, energy_fn, first),
                              LangevinSampler.gradient(self, energy_fn, second)], 0)

    energy = gaussian_energy([0.5, -0.5], 1.0)
    x0 = tf.zeros([6, 2])
    reference = LangevinSampler(steps=5, step_size=0.1)(energy, x0, seed=[2, 3])
    np.testing.assert_array_equal(Overlapping(steps=5, step_size=0.1)(energy, x0, seed=[2, 3]),
                                  reference)
    np.testing.assert_allclose(HalvedGradient(steps=5, step_size=0.1)(energy, x0, seed=[2, 3]),
                               reference, rtol=1e-6, atol=1e-6)


def test_annealed_chain_samples_each_level_then_the_smallest():
    # E(x) = 0.5 ||x||^2: at level sigma the chain samples exp(-E / sigma) = N(0, sigma I).
    sampler = AnnealedLangevinSampler((0.25, 1.0), steps=600, step_size=0.005, denoise=False,
                                      value_range=None)
    energy = lambda x: 0.5 * tf.reduce_sum(x**2, axis=-1)  # noqa: E731
    x0 = tf.fill([4000, 2], 3.0)
    final, snapshots = sampler(energy, x0, seed=[4, 5], snapshot_every=300)
    np.testing.assert_allclose(np.var(snapshots[1].numpy(), axis=0), [1.0, 1.0], rtol=0.08)
    np.testing.assert_allclose(np.mean(snapshots[1].numpy(), axis=0), [0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(np.var(final.numpy(), axis=0), [0.25, 0.25], rtol=0.08)
    np.testing.assert_allclose(np.mean(final.numpy(), axis=0), [0.0, 0.0], atol=0.05)
    np.testing.assert_array_equal(snapshots[-1], final)  # no denoising step, no clamping


def test_annealed_step_grows_with_the_square_of_the_level():
    # Noise-free steps on E = 0.5 ||x||^2: x <- x - eta_i x / sigma_i, eta_i = 0.01 (sigma_i / 0.25)^2.
    sampler = AnnealedLangevinSampler((1.0, 0.5, 0.25), steps=6, step_size=0.01, value_range=None)
    energy = lambda x: 0.5 * tf.reduce_sum(x**2, axis=-1)  # noqa: E731
    x, no_noise = tf.ones([1, 2]), tf.zeros([1, 2])
    for step, sigma in ((0, 1.0), (1, 1.0), (2, 0.5), (5, 0.25)):
        eta = 0.01 * (sigma / 0.25) ** 2
        moved = sampler.step_at(energy, x, no_noise, tf.constant(step), tf.constant(6))
        np.testing.assert_allclose(moved, x * (1 - eta / sigma), rtol=1e-6)


def test_an_annealed_chain_needs_a_step_per_level():
    sampler = AnnealedLangevinSampler((1.0, 0.5, 0.25), steps=3)
    energy = lambda x: 0.5 * tf.reduce_sum(x**2, axis=-1)  # noqa: E731
    with pytest.raises(ValueError, match="at least one step per noise level: got 2 steps for 3"):
        sampler(energy, tf.zeros([2, 2]), seed=[0, 1], steps=2)
    with pytest.raises(ValueError, match="use steps >= 3"):
        AnnealedLangevinSampler((1.0, 0.5, 0.25), steps=2)


def test_annealed_denoising_step_gives_tweedies_posterior_mean():
    # Data N(0, s2 I) smoothed by sigma: N(0, (s2 + sigma^2) I), energy E / sigma. The last step
    # x - sigma grad E(x) = E[clean | x] shrinks the variance to s2^2 / (s2 + sigma^2).
    s2, sigma = 0.5, 0.5
    smoothed = s2 + sigma**2
    energy = lambda x: sigma * 0.5 * tf.reduce_sum(x**2, axis=-1) / smoothed  # noqa: E731
    sampler = AnnealedLangevinSampler((sigma,), steps=400, step_size=0.1 * sigma**2,
                                      value_range=(-5.0, 5.0))
    final = sampler(energy, tf.zeros([4000, 2]), seed=[1, 2]).numpy()
    np.testing.assert_allclose(np.var(final, axis=0), [s2**2 / smoothed] * 2, rtol=0.08)
    clamped = AnnealedLangevinSampler((sigma,), steps=50, step_size=0.02, value_range=(-0.1, 0.1))
    assert np.abs(clamped(energy, tf.zeros([100, 2]), seed=[1, 2]).numpy()).max() <= 0.1


def test_noise_conditional_chain_samples_each_level_of_an_energy_told_the_level():
    # E(x, sigma) = 0.5 x^2 / (1 + sigma^2): N(0, 1 + sigma^2) at each level. The chain ends at
    # the smallest level's variance 1.01 (times the ULA bias 1 / (1 - h / (2 s^2)) at step h);
    # dividing the energy by sigma again, or holding a wrong level, would give 0.1 or 2.
    sampler = AnnealedLangevinSampler((1.0, 0.1), steps=400, step_size=0.01, denoise=False,
                                      value_range=None, noise_conditional=True)
    energy = lambda x, sigma: 0.5 * tf.reduce_sum(x**2, axis=-1) / (1.0 + sigma**2)  # noqa: E731
    final, snapshots = sampler(energy, tf.fill([4000, 2], 3.0), seed=[6, 7], snapshot_every=200)
    np.testing.assert_allclose(np.var(snapshots[1].numpy(), axis=0), [2.0 / (1 - 1.0 / 4.0)] * 2,
                               rtol=0.08)  # step 0.01 * (1 / 0.1)^2 = 1 at level 1
    np.testing.assert_allclose(np.var(final.numpy(), axis=0), [1.01 / (1 - 0.01 / 2.02)] * 2,
                               rtol=0.08)
    np.testing.assert_allclose(np.mean(final.numpy(), axis=0), [0.0, 0.0], atol=0.05)


def test_noise_conditional_chain_on_e_over_sigma_is_the_scaled_chain():
    # Told the level, the energy E(x) / sigma moves the chain exactly as the scaled chain of E,
    # denoising step and clamping included.
    energy = lambda x: 0.5 * tf.reduce_sum((x - 0.3) ** 2, axis=-1)  # noqa: E731
    scaled = AnnealedLangevinSampler((1.0, 0.5, 0.2), steps=30, value_range=(-1.0, 1.0))
    told = AnnealedLangevinSampler((1.0, 0.5, 0.2), steps=30, value_range=(-1.0, 1.0),
                                   noise_conditional=True)
    x0 = tf.random.stateless_normal([50, 2], seed=[0, 1])
    np.testing.assert_allclose(told(lambda x, sigma: energy(x) / sigma, x0, seed=[2, 3]),
                               scaled(energy, x0, seed=[2, 3]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="takes no condition"):
        told(lambda x, sigma: energy(x), x0, seed=[2, 3], condition=tf.zeros([50]))


def test_annealed_sampler_config_round_trip_and_bad_levels():
    sampler = AnnealedLangevinSampler((0.1, 1.0), steps=7, step_size=1e-3, noise_conditional=True)
    assert sampler.noise_levels == (1.0, 0.1)
    again = AnnealedLangevinSampler.from_config(sampler.get_config())
    assert again.get_config() == sampler.get_config() and again.noise_conditional
    with pytest.raises(ValueError, match="noise_levels must be positive"):
        AnnealedLangevinSampler((0.1, 0.0))
