import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ebm.models import networks
from keras_ebm.models.ebm import EBM, JEM, class_energy, marginal_energy
from keras_ebm.samplers.langevin import LangevinSampler


def linear_network(num_outputs=2, dim=2):
    inputs = keras.Input((dim,))
    outputs = keras.layers.Dense(num_outputs, use_bias=False)(inputs)
    return keras.Model(inputs, outputs)


def small_jem(**kwargs):
    keras.utils.set_random_seed(0)
    net = networks.get_network("cnn", num_outputs=10)
    kwargs.setdefault("sampler", LangevinSampler(steps=3))
    return JEM(net, buffer_size=100, seed=0, **kwargs)


def test_energies_on_hand_made_scores():
    scores = tf.constant([[2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(marginal_energy(scores), [-np.log(np.e**2 + 1), -np.log(2)],
                               rtol=1e-6)
    np.testing.assert_allclose(class_energy(scores, tf.constant([0, 1])), [-2.0, 0.0])
    # Label -1: the marginal energy (an unconditional chain among conditional ones).
    np.testing.assert_allclose(class_energy(scores, tf.constant([-1, 1])),
                               [-np.log(np.e**2 + 1), 0.0], rtol=1e-6)


def test_jem_loss_terms_signs_on_a_hand_made_batch():
    # The real image's logits are confident and correct; the sample's are flat.
    model = JEM(linear_network(), buffer_size=4, reg_weight=0.1, seed=0)
    real = tf.constant([[3.0, 0.0]])
    sample = tf.constant([[0.0, 0.0]])
    terms = model.loss_terms(real, sample, tf.constant([0]))
    e_real, e_sample = -np.log(np.exp(3) + 1), -np.log(2)
    assert terms["energy_real"].numpy() == pytest.approx(e_real, rel=1e-6)
    assert terms["energy_sample"].numpy() == pytest.approx(e_sample, rel=1e-6)
    # Energy is -logsumexp of the *same* logits as the classifier: the confident
    # real image has the lower energy, so the contrastive term is negative.
    assert terms["cdiv"].numpy() == pytest.approx(e_real - e_sample, rel=1e-6)
    assert terms["cdiv"].numpy() < 0
    ce = np.log(np.exp(3) + 1) - 3
    assert terms["ce"].numpy() == pytest.approx(ce, rel=1e-5)
    reg = e_real**2 + e_sample**2
    assert terms["loss"].numpy() == pytest.approx(ce + (e_real - e_sample) + 0.1 * reg, rel=1e-5)


def test_gradient_step_lowers_real_energy_and_raises_sample_energy():
    # With only the contrastive term, one SGD step must move E(real) down and E(sample) up.
    net = linear_network(num_outputs=2, dim=2)
    net.layers[-1].set_weights([np.array([[0.5, -0.2], [0.1, 0.3]], "float32")])
    model = EBM(net, buffer_size=4, reg_weight=0.0, real_noise=0.0, seed=0)
    real, sample = tf.constant([[1.0, 0.0]]), tf.constant([[0.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = model.compute_metrics(real, None, sample)["loss"]
    grads = tape.gradient(loss, net.trainable_variables)
    before = model.energy(real), model.energy(sample)
    for v, g in zip(net.trainable_variables, grads):
        v.assign_sub(0.1 * g)
    assert model.energy(real).numpy() < before[0].numpy()
    assert model.energy(sample).numpy() > before[1].numpy()


def test_cross_entropy_uses_logits_with_the_right_sign():
    # Minimising the JEM loss with px_weight=0 must raise the true-class logit.
    net = linear_network(num_outputs=2, dim=2)
    model = JEM(net, px_weight=0.0, buffer_size=4, seed=0)
    x, y = tf.constant([[1.0, 1.0]]), tf.constant([1])
    with tf.GradientTape() as tape:
        loss = model.compute_metrics(x, y, tf.zeros_like(x))["loss"]
    grads = tape.gradient(loss, net.trainable_variables)
    logit_gap = lambda: (net(x)[0, 1] - net(x)[0, 0]).numpy()  # noqa: E731
    before = logit_gap()
    net.trainable_variables[0].assign_sub(0.5 * grads[0])
    assert logit_gap() > before


def test_plain_classifier_baseline_draws_no_samples():
    model = small_jem(px_weight=0.0)
    model.compile(keras.optimizers.Adam(1e-3))
    before = model.buffer.samples.numpy().copy()
    x = tf.random.stateless_uniform([8, 28, 28, 1], seed=[0, 1], minval=-1, maxval=1)
    logs = model.train_on_batch(x, tf.range(8) % 10, return_dict=True)
    np.testing.assert_array_equal(model.buffer.samples.numpy(), before)
    assert logs["loss"] == pytest.approx(logs["ce"], rel=1e-5)


def test_train_step_updates_buffer_and_reports_all_metrics():
    model = small_jem()
    model.compile(keras.optimizers.Adam(1e-3, beta_1=0.0))
    before = model.buffer.samples.numpy().copy()
    x = tf.random.stateless_uniform([16, 28, 28, 1], seed=[0, 1], minval=-1, maxval=1)
    logs = model.train_on_batch(x, tf.range(16) % 10, return_dict=True)
    assert set(logs) == {"loss", "ce", "cdiv", "reg", "energy_real", "energy_sample", "accuracy"}
    changed = np.any(model.buffer.samples.numpy() != before, axis=(1, 2, 3))
    assert 1 <= changed.sum() <= 16
    test_logs = model.test_on_batch(x, tf.range(16) % 10, return_dict=True)
    assert set(test_logs) == set(logs)


def test_evaluate_weighs_a_short_last_batch_by_its_images():
    """5 images in batches of 4 and 1: the metrics are means over the 5 images, not over
    the 2 batches."""
    model = small_jem()
    model.compile(keras.optimizers.Adam(1e-3))
    x = tf.random.stateless_uniform([5, 28, 28, 1], seed=[0, 2], minval=-1, maxval=1)
    y = tf.constant([0, 1, 2, 3, 4])
    logits = model.network(x).numpy()
    energies = -tf.reduce_logsumexp(logits, axis=1).numpy()
    ce = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True).numpy()
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert logs["energy_real"] == pytest.approx(energies.mean(), rel=1e-4)
    assert logs["ce"] == pytest.approx(ce.mean(), rel=1e-4)


def test_conditional_sampling_uses_class_partitions():
    model = small_jem(conditional_sampling=True)
    assert model.buffer.num_classes == 10
    model.compile(keras.optimizers.Adam(1e-3))
    x = tf.zeros([8, 28, 28, 1])
    model.train_on_batch(x, tf.range(8), return_dict=True)
    samples = model.generate(4, steps=2, labels=[0, 1, 2, 3], seed=0)
    assert samples.shape == (4, 28, 28, 1)


def test_a_share_of_conditional_negatives():
    model = small_jem(conditional_sampling=0.25)
    assert model.buffer.num_classes == 10
    labels = model.negative_labels(tf.zeros([4000], tf.int32)).numpy()
    conditional = labels >= 0
    assert 0.22 < conditional.mean() < 0.28
    assert np.all(labels[~conditional] == -1)
    assert set(np.unique(labels[conditional])) == set(range(10))
    # Mixed chains: each example follows its own energy, E(x, y) or E(x).
    x = tf.random.stateless_uniform([2, 28, 28, 1], seed=[1, 2], minval=-1, maxval=1)
    mixed = model.conditional_energy(x, tf.constant([-1, 3]))
    np.testing.assert_allclose(mixed[0], model.energy(x)[0], rtol=1e-6)
    np.testing.assert_allclose(mixed[1], -model(x)[1, 3], rtol=1e-6)
    model.compile(keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(tf.zeros([8, 28, 28, 1]), tf.range(8), return_dict=True)
    assert np.isfinite(logs["loss"])
    with pytest.raises(ValueError, match="share in"):
        small_jem(conditional_sampling=1.5)


def test_warm_started_conditional_generation():
    # The first unconditional_steps run on E(x), the rest on E(x, y), from the same noise.
    model = small_jem()
    labels = tf.constant([0, 3, 7, 9])
    all_marginal = model.generate(4, steps=5, labels=labels, seed=3, unconditional_steps=5)
    np.testing.assert_array_equal(all_marginal, model.generate(4, steps=5, seed=3))
    first = model.generate(4, steps=2, seed=3)
    seed = tf.random.experimental.stateless_split(tf.constant([3, 0], tf.int64), 2)[1]
    expected = model.sampler(model.conditional_energy, first, steps=3, condition=labels,
                             seed=tf.random.experimental.stateless_fold_in(seed, 1))
    warm = model.generate(4, steps=5, labels=labels, seed=3, unconditional_steps=2)
    np.testing.assert_allclose(warm, expected, atol=1e-6)
    cold = model.generate(4, steps=5, labels=labels, seed=3)
    assert np.abs(warm.numpy() - cold.numpy()).max() > 0
    with pytest.raises(ValueError, match="unconditional_steps in"):
        model.generate(4, steps=5, labels=labels, unconditional_steps=6)
    with pytest.raises(ValueError, match="needs labels"):
        model.generate(4, steps=5, unconditional_steps=2)


def test_generate_is_deterministic_per_seed_and_in_range():
    model = small_jem()
    a = model.generate(6, steps=5, seed=1).numpy()
    b = model.generate(6, steps=5, seed=1).numpy()
    c = model.generate(6, steps=5, seed=2).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0
    assert a.min() >= -1 and a.max() <= 1


def test_keras_save_load_round_trip_including_buffer(tmp_path):
    model = small_jem(conditional_sampling=True)
    model.compile(keras.optimizers.Adam(1e-3))
    x = tf.random.stateless_uniform([8, 28, 28, 1], seed=[3, 4], minval=-1, maxval=1)
    model.train_on_batch(x, tf.range(8), return_dict=True)
    model.temperature = 0.7
    path = str(tmp_path / "jem.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, JEM) and restored.temperature == 0.7
    drop_network = lambda c: {k: v for k, v in c.items() if k != "network"}  # noqa: E731
    assert drop_network(restored.get_config()) == drop_network(model.get_config())
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
    np.testing.assert_array_equal(restored.buffer.samples.numpy(), model.buffer.samples.numpy())
    np.testing.assert_array_equal(restored.energy(x).numpy(), model.energy(x).numpy())


def test_unconditional_ebm_save_load(tmp_path):
    model = EBM(networks.get_network("mlp", num_outputs=1), buffer_size=10, seed=0,
                sampler=LangevinSampler(steps=2))
    model.compile(keras.optimizers.Adam(1e-3))
    x = tf.random.stateless_uniform([4, 28, 28, 1], seed=[1, 1], minval=-1, maxval=1)
    logs = model.train_on_batch(x, return_dict=True)
    assert "accuracy" not in logs and np.isfinite(logs["loss"])
    path = str(tmp_path / "ebm.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.energy(x).numpy(), model.energy(x).numpy())


def test_jem_rejects_a_one_output_network_and_ebm_rejects_labels_for_sampling():
    with pytest.raises(ValueError, match="one logit per class"):
        JEM(networks.get_network("mlp", num_outputs=1))
    ebm = EBM(networks.get_network("mlp", num_outputs=1), buffer_size=4)
    with pytest.raises(ValueError, match="one output per class"):
        ebm.generate(2, steps=1, labels=[0, 1])


def test_backup_and_restore_restores_the_replay_buffer(tmp_path):
    x = tf.random.stateless_uniform([16, 28, 28, 1], seed=[5, 5], minval=-1, maxval=1)
    ds = tf.data.Dataset.from_tensor_slices((x, tf.range(16) % 10)).batch(8)
    model = small_jem()
    model.compile(keras.optimizers.Adam(1e-3))
    backup = str(tmp_path / "backup")
    model.fit(ds, epochs=2, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
    fresh = JEM(networks.get_network("cnn", num_outputs=10), buffer_size=100, seed=1,
                sampler=LangevinSampler(steps=3))
    fresh.compile(keras.optimizers.Adam(1e-3))
    assert np.any(fresh.buffer.samples.numpy() != model.buffer.samples.numpy())
    # Both epochs are already done: fit restores the backup and trains no further.
    fresh.fit(ds, epochs=2, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
    np.testing.assert_array_equal(fresh.buffer.samples.numpy(), model.buffer.samples.numpy())
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())


def test_calibrate_fits_the_temperature_of_the_held_out_logits():
    from keras_ebm.models.calibration import fit_temperature

    model = small_jem(px_weight=0.0)
    x = tf.random.stateless_uniform([40, 28, 28, 1], seed=[5, 6], minval=-1, maxval=1).numpy()
    labels = np.arange(40) % 10
    logits = model(x).numpy()
    expected = fit_temperature(logits, labels)
    assert model.calibrate(x, labels, batch_size=16) == pytest.approx(expected, rel=1e-6)
    assert model.temperature == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(model.class_logits(x).numpy(), logits / expected, rtol=1e-5)
    # Energies and predicted classes do not move.
    np.testing.assert_allclose(model(x).numpy(), logits)
    model.temperature = 1.0
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(16)
    assert model.calibrate(dataset) == pytest.approx(expected, rel=1e-5)


def test_calibrate_and_temperature_refuse_bad_input():
    model = small_jem(px_weight=0.0)
    with pytest.raises(ValueError, match="labels"):
        model.calibrate(np.zeros((4, 28, 28, 1), "float32"))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        small_jem(temperature=0.0)
