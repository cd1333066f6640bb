import numpy as np
import pytest
import tensorflow as tf

from keras_ebm.samplers.buffer import ReplayBuffer, last_write_per_slot


def test_initial_buffer_is_uniform_in_range():
    buffer = ReplayBuffer(size=2000, sample_shape=(4,), seed=0)
    x = buffer.samples.numpy()
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x.mean() == pytest.approx(0.0, abs=0.02)
    assert x.var() == pytest.approx(1.0 / 3.0, rel=0.03)


def test_reinit_fraction_matches_probability():
    # Fill the buffer with a marker value; restarted draws are the only values != marker.
    buffer = ReplayBuffer(size=1000, sample_shape=(3,), reinit_prob=0.05, seed=1)
    buffer.samples.assign(tf.fill(buffer.samples.shape, 5.0))
    restarted = 0
    draws = 0
    for _ in range(20):
        states, _ = buffer.sample(1000)
        states = states.numpy()
        is_new = np.all(states != 5.0, axis=1)
        assert np.all((states[is_new] >= -1) & (states[is_new] <= 1))
        restarted += is_new.sum()
        draws += len(states)
    # 20000 draws: standard error of the fraction is 0.0015.
    assert restarted / draws == pytest.approx(0.05, abs=0.005)


def test_update_writes_back_into_the_drawn_slots():
    buffer = ReplayBuffer(size=50, sample_shape=(2,), reinit_prob=0.0, seed=2)
    before = buffer.samples.numpy().copy()
    states, indices = buffer.sample(10)
    np.testing.assert_array_equal(states.numpy(), before[indices.numpy()])
    buffer.update(indices, tf.fill([10, 2], 7.0))
    after = buffer.samples.numpy()
    touched = np.unique(indices.numpy())
    np.testing.assert_array_equal(after[touched], 7.0)
    untouched = np.setdiff1d(np.arange(50), touched)
    np.testing.assert_array_equal(after[untouched], before[untouched])


def test_update_works_under_a_distribution_strategy():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        buffer = ReplayBuffer(size=20, sample_shape=(2,), reinit_prob=0.0, seed=3)

    def step():
        states, indices = buffer.sample(4)
        buffer.update(indices, states + 10.0)
        return indices

    indices = strategy.run(tf.function(step)).numpy()
    assert np.all(buffer.samples.numpy()[indices] > 5.0)


def test_class_partitions_for_conditional_sampling():
    buffer = ReplayBuffer(size=100, sample_shape=(1,), num_classes=10, seed=4)
    labels = tf.constant(np.repeat(np.arange(10), 20), tf.int32)
    _, indices = buffer.sample(200, labels=labels)
    np.testing.assert_array_equal(indices.numpy() // 10, labels.numpy())
    with pytest.raises(ValueError, match="num_classes"):
        ReplayBuffer(size=10, sample_shape=(1,)).sample(2, labels=tf.constant([0, 1]))


def test_label_minus_one_draws_from_any_partition():
    buffer = ReplayBuffer(size=100, sample_shape=(1,), num_classes=10, seed=4)
    labels = tf.constant([-1, 3] * 200, tf.int32)
    _, indices = buffer.sample(400, labels=labels)
    indices = indices.numpy()
    assert np.all(indices[1::2] // 10 == 3)
    assert np.all((0 <= indices) & (indices < 100))
    assert len(set(indices[::2] // 10)) == 10


def test_same_seed_same_draws():
    a = ReplayBuffer(size=100, sample_shape=(2,), seed=7)
    b = ReplayBuffer(size=100, sample_shape=(2,), seed=7)
    np.testing.assert_array_equal(a.samples.numpy(), b.samples.numpy())
    np.testing.assert_array_equal(a.sample(16)[0].numpy(), b.sample(16)[0].numpy())


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(size=0), "size"), (dict(reinit_prob=1.5), "reinit_prob"),
     (dict(size=5, num_classes=10), "num_classes")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(**{"sample_shape": (1,), **kwargs})


def test_a_slot_drawn_twice_keeps_its_last_state_on_any_device():
    indices = tf.constant([5, 2, 5, 7, 2, 5])
    states = tf.reshape(tf.range(6, dtype=tf.float32), [6, 1])
    slots, kept = last_write_per_slot(indices, states)
    assert dict(zip(slots.numpy().tolist(), kept.numpy()[:, 0].tolist())) == {5: 5.0, 2: 4.0, 7: 3.0}
    buffer = ReplayBuffer(size=8, sample_shape=(1,), seed=0)
    buffer.update(indices, states)
    np.testing.assert_array_equal(buffer.samples.numpy()[[2, 5, 7], 0], [4.0, 5.0, 3.0])
