import numpy as np
import pytest
import tensorflow as tf

from keras_ebm.data import toy
from keras_ebm.evaluation import distances
from keras_ebm.samplers import mcmc
from keras_ebm.samplers.langevin import LangevinSampler

tfd = toy.tfd
MEAN = np.array([1.0, -0.5], np.float32)
COV = np.array([[0.5, 0.4], [0.4, 0.5]], np.float32)  # correlation 0.8
CORRELATED = tfd.MultivariateNormalTriL(MEAN, np.linalg.cholesky(COV))
# Overlapping modes, so that every chain can visit both within the test's budget.
MIXTURE = tfd.MixtureSameFamily(
    tfd.Categorical(probs=[0.3, 0.7]),
    tfd.MultivariateNormalDiag([[-1.0, 0.0], [1.0, 0.5]], [[0.6, 0.6], [0.6, 0.6]]))
NUM_CHAINS = 1000


def energy_of(distribution):
    return lambda x: -distribution.log_prob(x)


def exact_draws(distribution, seed=5):
    return distribution.sample(NUM_CHAINS, seed=tf.constant([seed, 0])).numpy()


def starts():
    return tf.random.stateless_uniform([NUM_CHAINS, 2], [1, 1], -3.0, 3.0)


SAMPLERS = {
    "mala": lambda: mcmc.MALA(steps=400, step_size=0.1),
    "hmc": lambda: mcmc.HMC(steps=150, step_size=0.3, leapfrog_steps=5),
    # Hot (T = 5) to cold with step sizes shrinking to 0.005 (bias O(step size)).
    "annealed": lambda: mcmc.AnnealedLangevin(
        step_sizes=np.geomspace(0.05, 0.005, 400),
        temperatures=np.concatenate([np.geomspace(5.0, 1.0, 200), np.ones(200)])),
}


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("target", ["correlated", "mixture"])
def test_sampler_reproduces_analytic_2d_density(name, target):
    distribution = {"correlated": CORRELATED, "mixture": MIXTURE}[target]
    samples, acceptance = SAMPLERS[name]()(energy_of(distribution), starts(), seed=[0, 1])
    samples = samples.numpy()
    exact = exact_draws(distribution)
    true_mean = distribution.mean().numpy()
    true_cov = distribution.covariance().numpy()
    # 1000 chains: the mean's standard error is <= 0.036 per axis.
    np.testing.assert_allclose(samples.mean(axis=0), true_mean, atol=0.1)
    np.testing.assert_allclose(np.cov(samples.T), true_cov, atol=0.12)
    _, p_value = distances.mmd_test(samples, exact, seed=0)
    assert p_value > 0.01, f"{name} samples differ from exact draws (MMD test p = {p_value})"
    if name == "annealed":
        assert float(acceptance) == 1.0
    else:
        assert 0.5 < float(acceptance) < 1.0  # a step size that moves and is mostly accepted


def test_two_sample_test_rejects_unadjusted_langevin_where_mala_is_exact():
    # Step 0.2 on a Gaussian of curvature 10 makes the unadjusted update unstable;
    # MALA's accept/reject step keeps the same proposal exact.
    energy = energy_of(CORRELATED)
    exact = exact_draws(CORRELATED)
    ula = LangevinSampler(steps=300, step_size=0.2, parameterization="langevin",
                          grad_clip=None, value_range=(-20.0, 20.0))
    assert distances.mmd_test(ula(energy, starts(), seed=[0, 1]).numpy(), exact)[1] < 0.01
    samples, acceptance = mcmc.MALA(steps=300, step_size=0.2)(energy, starts(), seed=[0, 1])
    assert distances.mmd_test(samples.numpy(), exact)[1] > 0.01
    assert 0.2 < float(acceptance) < 0.8


def test_tempering_crosses_an_energy_barrier_that_plain_langevin_cannot():
    # Modes at x = -3 and x = +3 (std 0.5, equal weights): a barrier of 18 nats.
    # Every chain starts in the left mode.
    modes = tfd.MixtureSameFamily(tfd.Categorical(probs=[0.5, 0.5]),
                                  tfd.MultivariateNormalDiag([[-3.0, 0.0], [3.0, 0.0]],
                                                             [[0.5, 0.5], [0.5, 0.5]]))
    x0 = tf.constant([[-3.0, 0.0]]) + tf.zeros([500, 2])
    temperatures = np.concatenate([np.full(200, 20.0), np.geomspace(20.0, 1.0, 400),
                                   np.ones(100)])
    tempered = mcmc.AnnealedLangevin(step_sizes=0.01 * temperatures, temperatures=temperatures)
    plain = mcmc.AnnealedLangevin(step_sizes=0.01, steps=len(temperatures))
    right = [np.mean(s(energy_of(modes), x0, seed=[2, 3])[0].numpy()[:, 0] > 0)
             for s in (tempered, plain)]
    assert 0.35 < right[0] < 0.65
    assert right[1] < 0.02


def test_decaying_step_sizes_and_snapshots():
    # The tutorial seed's decaying schedule 1 / (k + 1) on N(5, 1): the chain
    # forgets its start and the snapshots record it.
    energy = lambda x: 0.5 * tf.reduce_sum((x - 5.0) ** 2, axis=-1)  # noqa: E731
    sampler = mcmc.AnnealedLangevin(step_sizes=1.0 / np.arange(1, 101))
    x0 = tf.zeros([4000, 1])
    x, acceptance, snapshots = sampler(energy, x0, seed=[0, 0], snapshot_every=25)
    assert snapshots.shape == (5, 4000, 1) and float(acceptance) == 1.0
    np.testing.assert_array_equal(snapshots[0], x0)
    np.testing.assert_array_equal(snapshots[-1], x)
    assert x.numpy().mean() == pytest.approx(5.0, abs=0.06)
    assert x.numpy().std() == pytest.approx(1.0, abs=0.05)


def test_samplers_run_on_image_shaped_chains():
    # One chain per image: the energy sums over pixels, tfp reduces over the event.
    energy = lambda x: 0.5 * tf.reduce_sum(x**2, axis=[1, 2, 3])  # noqa: E731
    x, acceptance = mcmc.MALA(steps=20, step_size=0.1)(energy, tf.zeros([3, 4, 4, 1]), [0, 0])
    assert x.shape == (3, 4, 4, 1) and 0 < float(acceptance) <= 1


@pytest.mark.parametrize("build, match", [
    (lambda: mcmc.MALA(step_size=0.0), "step_size"),
    (lambda: mcmc.HMC(leapfrog_steps=0), "leapfrog_steps"),
    (lambda: mcmc.MALA(steps=0), "steps"),
    (lambda: mcmc.AnnealedLangevin(step_sizes=[0.1, 0.1], temperatures=[2.0, 1.5, 1.0]),
     "different lengths"),
    (lambda: mcmc.AnnealedLangevin(step_sizes=0.1, temperatures=[1.0, -1.0]), "temperatures"),
])
def test_bad_arguments_raise_clear_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def two_modes(x):
    """Modes at -4 and +4 (std 0.5) with weights 0.3 and 0.7: a barrier of ~32 nats."""
    x = tf.reshape(x, [tf.shape(x)[0], -1])[:, 0]
    a = tf.math.log(0.3) - 0.5 * ((x + 4) / 0.5) ** 2
    b = tf.math.log(0.7) - 0.5 * ((x - 4) / 0.5) ** 2
    return -tf.reduce_logsumexp(tf.stack([a, b]), axis=0)


def test_parallel_tempering_finds_both_modes_in_the_right_proportions():
    x0 = tf.fill([400, 1], -4.0)  # every chain starts in the light mode
    single, _ = mcmc.MALA(steps=300, step_size=0.05)(two_modes, x0, [0, 1])
    assert np.mean(single.numpy() > 0) == 0.0  # one chain never crosses the barrier
    pt = mcmc.ParallelTempering(steps=300, step_size=0.05,
                                inverse_temperatures=np.geomspace(1, 0.02, 8))
    samples, swap_rate = pt(two_modes, x0, [0, 1])
    samples = samples.numpy()[:, 0]
    assert abs(np.mean(samples > 0) - 0.7) < 0.07
    assert abs(samples[samples > 0].mean() - 4) < 0.15 and abs(samples[samples > 0].std() - 0.5) < 0.1
    assert pt.swap_acceptance.shape == (7,) and np.all(pt.swap_acceptance > 0.1)
    assert float(swap_rate) == pytest.approx(pt.swap_acceptance.mean(), rel=1e-5)


def test_parallel_tempering_swap_rate_counts_only_proposed_swaps():
    """Rungs 0.01 apart on a standard normal accept nearly every swap; each pair is proposed
    on about half the steps, which a rate per step would halve."""
    pt = mcmc.ParallelTempering(steps=200, step_size=0.1,
                                inverse_temperatures=[1.0, 0.99, 0.98, 0.97])
    _, swap_rate = pt(lambda x: 0.5 * tf.reduce_sum(x ** 2, axis=-1),
                      tf.zeros([200, 1]), [0, 1])
    assert np.all(pt.swap_acceptance > 0.95) and float(swap_rate) > 0.95


def test_parallel_tempering_takes_image_shaped_states():
    """A standard normal on [N, 4, 4, 1]: the replica axis is folded into the batch."""
    def energy(x):
        return 0.5 * tf.reduce_sum(x**2, axis=[1, 2, 3])

    pt = mcmc.ParallelTempering(steps=200, step_size=0.2, inverse_temperatures=[1.0, 0.5])
    samples, _ = pt(energy, tf.zeros([500, 4, 4, 1]), [3, 4])
    assert samples.shape == (500, 4, 4, 1)
    assert abs(samples.numpy().std() - 1.0) < 0.08 and abs(samples.numpy().mean()) < 0.05


@pytest.mark.parametrize("ladder", [[0.5, 0.25], [1.0], [1.0, 2.0], [1.0, 0.5, 0.5], [1.0, -0.5]])
def test_parallel_tempering_refuses_bad_ladders(ladder):
    with pytest.raises(ValueError, match="inverse_temperatures"):
        mcmc.ParallelTempering(inverse_temperatures=ladder)
