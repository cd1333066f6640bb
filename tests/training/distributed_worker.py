"""Subprocess side of tests/training/test_distribute.py (devices must be set before TF starts).

    python tests/training/distributed_worker.py mirrored OUT.npz RUN_DIR DATA_FILE
        On 2 logical CPU devices, train the same tiny JEM with the default strategy and
        with MirroredStrategy at the same global batch; save both loss trajectories,
        final weights and the replicas' replay buffers to OUT.npz; then run the whole
        experiment (callbacks, checkpoints, test metrics) under MirroredStrategy in RUN_DIR
        on DATA_FILE (a --data_file), and check that an odd global batch is refused.
    python tests/training/distributed_worker.py keras_fit
        A plain Keras model + fit under MultiWorkerMirroredStrategy (TF_CONFIG set by the
        caller), without keras_ebm's workaround; prints FIT OK if Keras has fixed its bug.
"""

import dataclasses
import sys

import numpy as np

# A deterministic set-up: noise-free Langevin steps and real images, fixed seeds.
TINY = dict(network="mlp", langevin_steps=3, langevin_sigma=0.0, real_noise=0.0,
            buffer_size=64, reinit_prob=0.2, batch_size=16, lr=1e-3, epochs=1, seed=3,
            chain_start="uniform")
STEPS = 6


def split_cpu(num_devices):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
    )
    tf.config.experimental.enable_op_determinism()


def train_tiny(strategy_name):
    """The strategy, model, loss after each step, final network weights (flat) and
    each replica's replay buffer."""
    import keras
    import tensorflow as tf

    from keras_ebm import distribute
    from keras_ebm.config import Config
    from keras_ebm.training import experiment

    config = Config(strategy=strategy_name, **TINY)
    strategy = distribute.get_strategy(strategy_name)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (STEPS * config.batch_size, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, len(x))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.batch_size)
    with strategy.scope():
        model = experiment.compile_model(experiment.build_model(config, (8, 8, 1), 3), config,
                                         steps_per_epoch=STEPS)
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    model.fit(dataset, epochs=1, verbose=0, callbacks=[record], shuffle=False)
    weights = np.concatenate([w.ravel() for w in model.network.get_weights()])
    buffers = [v.numpy() for v in strategy.experimental_local_results(model.buffer.samples.value)]
    return strategy, model, np.array(losses), weights, buffers


def uneven_evaluation(strategy, model):
    """The model's evaluation metrics on 17 images in global batches of 16: the last batch
    leaves one of the 2 replicas without images."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (17, 8, 8, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 3, 17))).batch(16)
    logs = model.evaluate(dataset, verbose=0, return_dict=True)
    with strategy.scope():
        energies = -tf.reduce_logsumexp(model.network(x), axis=1).numpy()
    return np.array([logs["energy_real"], energies.mean()])


def mirrored(out_path, run_dir, data_file):
    split_cpu(2)
    from keras_ebm.config import Config
    from keras_ebm.training import experiment, figures

    _, _, single_losses, single_weights, single_buffers = train_tiny("default")
    strategy, mirror, mirror_losses, mirror_weights, mirror_buffers = train_tiny("mirrored")
    # Sample grids (model.generate) from a model built under the strategy.
    with strategy.scope():
        rows = figures.sample_rows(mirror, np.zeros((10, 8, 8, 1), "float32"), steps=2)
    loss_gap = np.abs(mirror_losses - single_losses).max()
    weight_gap = np.abs(mirror_weights - single_weights).max()
    print(f"MirroredStrategy ({strategy.num_replicas_in_sync} CPU devices) vs one device, "
          f"{STEPS} steps: max |loss difference| {loss_gap:.2g}, "
          f"max |weight difference| {weight_gap:.2g}")
    np.savez(
        out_path, replicas=strategy.num_replicas_in_sync,
        single_losses=single_losses, mirror_losses=mirror_losses,
        single_weights=single_weights, mirror_weights=mirror_weights,
        single_buffer=single_buffers[0], mirror_buffers=np.stack(mirror_buffers),
        grid_rows=len(rows), grid_finite=all(np.isfinite(r).all() for r in rows.values()),
        uneven_logs=uneven_evaluation(strategy, mirror),
    )
    config = Config(strategy="mirrored", out=run_dir, data_file=data_file, validation_size=64,
                    batch_size=64, langevin_steps=2, buffer_size=200, sample_steps=2,
                    final_sample_steps=4, network="mlp", evaluate=False, verbose=0, epochs=1,
                    sample_every=0)
    experiment.run(config)
    try:
        experiment.run(dataclasses.replace(config, batch_size=63, out=run_dir + "-odd"))
    except experiment.RunError as err:
        print(f"RunError: {err}")


def keras_fit():
    import keras
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 3)).batch(8)
    model.fit(dataset, epochs=1, verbose=0)
    print("FIT OK")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"mirrored": mirrored, "keras_fit": keras_fit}[mode](*args)
