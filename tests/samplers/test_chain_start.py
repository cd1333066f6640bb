"""Chain starts from class Gaussians fitted to data, and the noise-free refinement."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm.models import networks
from keras_ebm.models.ebm import EBM, JEM
from keras_ebm.samplers.buffer import ReplayBuffer
from keras_ebm.samplers.chain_start import ClassGaussianStart
from keras_ebm.samplers.langevin import LangevinSampler


def low_rank_classes(num_per_class=4000, dim=12, rank=2, seed=0):
    """Two classes with known means and covariance ``A A^T + 0.05^2 I``."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-0.3, 0.3, (2, dim))
    loadings = rng.normal(0, 0.2, (2, dim, rank))
    images, labels = [], []
    for c in range(2):
        z = rng.standard_normal((num_per_class, rank))
        images.append(means[c] + z @ loadings[c].T + 0.05 * rng.standard_normal((num_per_class, dim)))
        labels.append(np.full(num_per_class, c))
    return (np.concatenate(images).reshape(-1, 3, 4, 1), np.concatenate(labels),
            means, loadings)



@pytest.mark.parametrize("num_images", [5, 40])  # fewer images than pixels, and more
def test_fit_matches_the_svd_of_each_class(num_images):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2 * num_images, 4, 4, 1)) * np.linspace(0.1, 2.0, 16).reshape(4, 4, 1)
    labels = np.repeat([0, 1], num_images)
    start = ClassGaussianStart(2, (4, 4, 1), rank=3).fit(images, labels)
    for c in range(2):
        centered = images[labels == c].reshape(num_images, -1)
        centered = centered - centered.mean(0)
        _, singular, directions = np.linalg.svd(centered, full_matrices=False)
        variances = singular**2 / (num_images - 1)
        factors = directions[:3].T * np.sqrt(variances[:3])
        fitted = start.factors.numpy()[c]
        # Directions are defined up to sign: compare the covariances they span.
        np.testing.assert_allclose(fitted @ fitted.T, factors @ factors.T, atol=1e-5)
        np.testing.assert_allclose(start.residual_std.numpy()[c],
                                   np.sqrt(variances[3:].sum() / 16), rtol=1e-5)

def test_fit_recovers_means_covariances_and_proportions():
    images, labels, means, loadings = low_rank_classes()
    keep = np.concatenate([np.arange(4000), 4000 + np.arange(1000)])  # classes 80% / 20%
    start = ClassGaussianStart(2, (3, 4, 1), rank=2).fit(images[keep], labels[keep])
    np.testing.assert_allclose(start.means.numpy(), means, atol=0.03)
    np.testing.assert_allclose(np.exp(start.log_prior.numpy()), [0.8, 0.2], atol=1e-6)
    for c in range(2):
        factors = start.factors.numpy()[c]
        fitted = factors @ factors.T + start.residual_std.numpy()[c] ** 2 * np.eye(12)
        true = loadings[c] @ loadings[c].T + 0.05**2 * np.eye(12)
        assert np.abs(fitted - true).max() < 0.02


def test_samples_follow_the_fitted_gaussian_of_their_label():
    images, labels, means, loadings = low_rank_classes()
    start = ClassGaussianStart(2, (3, 4, 1), rank=2, value_range=(-5, 5)).fit(images, labels)
    wanted = np.repeat([1, 0], 5000).astype(np.int32)
    x = start.sample(wanted, tf.constant([3, 4], tf.int64)).numpy().reshape(10000, 12)
    for c, rows in ((1, slice(0, 5000)), (0, slice(5000, None))):
        np.testing.assert_allclose(x[rows].mean(0), means[c], atol=0.03)
        true = loadings[c] @ loadings[c].T + 0.05**2 * np.eye(12)
        assert np.abs(np.cov(x[rows].T) - true).max() < 0.02
    drawn = start.draw_labels(20000, tf.constant([0, 1], tf.int64)).numpy()
    assert abs(drawn.mean() - 0.5) < 0.02
    # Clipped to the value range; the same seed gives the same starts.
    narrow = ClassGaussianStart(2, (3, 4, 1), rank=2, value_range=(-0.1, 0.1)).fit(images, labels)
    again = narrow.sample(wanted[:10], tf.constant([3, 4], tf.int64)).numpy()
    assert again.min() >= -0.1 and again.max() <= 0.1
    np.testing.assert_array_equal(again, narrow.sample(wanted[:10], tf.constant([3, 4], tf.int64)))


def test_labels_follow_the_prior_and_starts_compile_with_xla():
    images, labels, _, _ = low_rank_classes(num_per_class=1000)
    keep = np.concatenate([np.arange(1000), 1000 + np.arange(250)])  # classes 80% / 20%
    start = ClassGaussianStart(2, (3, 4, 1), rank=2, value_range=(-5, 5)).fit(images[keep],
                                                                            labels[keep])
    means = start.means.numpy()

    def starts(seed):
        chosen = start.draw_labels(40000, seed)
        return chosen, start.sample(chosen, seed)

    # XLA draws other random streams than TensorFlow's kernels: compare distributions.
    for run in (starts, tf.function(starts, jit_compile=True)):
        chosen, x = run(tf.constant([5, 6], tf.int64))
        chosen, x = chosen.numpy(), x.numpy().reshape(40000, 12)
        assert abs(chosen.mean() - 0.2) < 0.01  # binomial sd 0.002
        for c in range(2):
            factors = start.factors.numpy()[c]
            sd = np.sqrt((factors**2).sum(1) + start.residual_std.numpy()[c] ** 2)
            error = np.abs(x[chosen == c].mean(0) - means[c]) / (sd / np.sqrt(np.sum(chosen == c)))
            assert error.max() < 4.5  # standard errors, over 12 dimensions


def test_fit_refuses_bad_data():
    start = ClassGaussianStart(3, (2, 2, 1), rank=2)
    images = np.zeros((6, 2, 2, 1))
    with pytest.raises(ValueError, match="at least 2 images"):
        start.fit(images, np.array([0, 0, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="one class per image"):
        start.fit(images, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \[N, 2, 2, 1\]"):
        start.fit(np.zeros((6, 3, 3, 1)), np.array([0, 0, 1, 1, 2, 2]))
    assert not start.is_fitted


def test_buffer_restarts_come_from_the_restart_function():
    buffer = ReplayBuffer(size=8, sample_shape=(2,), reinit_prob=1.0, seed=0)
    states, _ = buffer.sample(4, restart_fn=lambda labels, seed: tf.fill([4, 2], 0.25))
    np.testing.assert_array_equal(states.numpy(), np.full((4, 2), 0.25))
    never = ReplayBuffer(size=8, sample_shape=(2,), reinit_prob=0.0, seed=0)
    stored = never.samples.numpy()
    states, slots = never.sample(4, restart_fn=lambda labels, seed: tf.fill([4, 2], 0.25))
    np.testing.assert_array_equal(states.numpy(), stored[slots.numpy()])


def small_jem(**kwargs):
    keras.utils.set_random_seed(0)
    return JEM(networks.get_network("mlp", input_shape=(3, 4, 1), num_outputs=2,
                                    hidden_units=(8,)),
               sampler=LangevinSampler(steps=2), buffer_size=40, seed=0,
               chain_start="class_gaussian", start_rank=2, **kwargs)


def test_fit_chain_start_fills_the_buffer_by_class_and_fit_needs_it():
    images, labels, means, _ = low_rank_classes(num_per_class=500)
    model = small_jem(conditional_sampling=1.0)
    model.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="fit_chain_start"):
        model.fit(images, labels, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="fit_chain_start"):
        model.generate(4, steps=1)
    with pytest.raises(ValueError, match="labels"):
        model.fit_chain_start(images)
    model.fit_chain_start(images, labels)
    stored = model.buffer.samples.numpy().reshape(40, 12)
    # Slots 0-19 hold class 0, 20-39 class 1: each partition is nearer its own class mean.
    for c, part in ((0, stored[:20]), (1, stored[20:])):
        own = np.linalg.norm(part.mean(0) - means[c])
        other = np.linalg.norm(part.mean(0) - means[1 - c])
        assert own < other
    model.fit(images[:64], labels[:64], batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class_gaussian"):
        JEM(networks.get_network("mlp", input_shape=(3, 4, 1), num_outputs=2, hidden_units=(4,)),
            buffer_size=4).fit_chain_start(images, labels)


def test_generate_starts_from_the_fitted_gaussians_and_round_trips(tmp_path):
    images, labels, means, _ = low_rank_classes(num_per_class=500)
    model = small_jem().fit_chain_start(images, labels)
    wanted = np.repeat([0, 1], 300).astype(np.int32)
    x = model.generate(600, steps=0, labels=wanted, seed=3).numpy().reshape(600, 12)
    np.testing.assert_allclose(x[:300].mean(0), means[0], atol=0.05)
    np.testing.assert_allclose(x[300:].mean(0), means[1], atol=0.05)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.start.is_fitted
    np.testing.assert_array_equal(loaded.generate(5, steps=2, seed=1).numpy(),
                                  model.generate(5, steps=2, seed=1).numpy())


def test_refinement_is_noise_free_descent():
    # E(x) = 0.5 |x|^2: each noise-free step of size 0.1 multiplies x by 0.9.
    inputs = keras.Input((2,))
    outputs = keras.layers.Lambda(lambda x: -0.5 * tf.reduce_sum(x**2, -1, keepdims=True))(inputs)
    sampler = LangevinSampler(steps=3, step_size=0.1, noise_scale=0.0, grad_clip=None,
                              value_range=None)
    model = EBM(keras.Model(inputs, outputs), sampler=sampler, buffer_size=4,
                value_range=(-1e3, 1e3), refine_steps=10, refine_step_size=0.1, seed=0)
    start = model.generate(5, steps=0, refine_steps=0, seed=2).numpy()
    np.testing.assert_allclose(model.generate(5, steps=0, seed=2).numpy(), start * 0.9**10,
                               rtol=1e-5)
    np.testing.assert_allclose(model.generate(5, steps=3, refine_steps=2, seed=2).numpy(),
                               start * 0.9**5, rtol=1e-5)
    with pytest.raises(ValueError, match="refine_steps"):
        EBM(keras.Model(inputs, outputs), refine_steps=-1)


def test_one_graph_per_chain_kind_for_any_batch_size():
    model = small_jem(refine_steps=2).fit_chain_start(*low_rank_classes(num_per_class=50)[:2])
    for n in (7, 30, 2, 64):
        model.generate(n, steps=2)
        model.generate(n, steps=2, labels=np.arange(n) % 2)
    for sampler in (model.sampler, model.refiner):
        assert len(sampler._compiled_runs) == 2
        assert all(run.experimental_get_tracing_count() == 1
                   for run in sampler._compiled_runs.values())


def test_many_chain_kinds_compile_without_retracing_warnings(caplog):
    models = [small_jem(refine_steps=1).fit_chain_start(*low_rank_classes(num_per_class=20)[:2])
              for _ in range(3)]
    with caplog.at_level("WARNING"):
        for model in models:
            for n in (3, 5):
                model.generate(n, steps=1)
                model.generate(n, steps=1, labels=np.arange(n) % 2)
                model.generate(n, steps=2, snapshot_every=1)
    assert "retracing" not in caplog.text
