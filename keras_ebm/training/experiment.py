"""``run(config)``: data, model, callbacks, fit, test metrics, all in one run directory.

A run directory holds::

    config.json          the full configuration
    train.log            the log (or --log_file)
    metrics.csv          per-epoch training and validation metrics
    checkpoints/         last.keras and best.keras
    samples/             sample grids per epoch and final, chain snapshots
    test_metrics.json    final test-set metrics
    tensorboard/         with --tensorboard: scalars and sample grids
    evaluation/          evaluation.json and figures (see keras_ebm.evaluation.report)
    export/              with --export: a SavedModel (see keras_ebm.export)
    recoveries.json      rollbacks after divergences, if any
    backup.npz           the training state for --resume (removed when the run finishes)
"""

import dataclasses
import json
import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import data, distribute, export, files
from keras_ebm.evaluation import metrics, report
from keras_ebm.models import networks
from keras_ebm.models.ebm import EBM, JEM
from keras_ebm.models.rbm import RBM
from keras_ebm.models.score_matching import ScoreMatching
from keras_ebm.samplers.langevin import AnnealedLangevinSampler, LangevinSampler
from keras_ebm.training import callbacks, state
from keras_ebm.training.kinds import KINDS, kind_of
from keras_ebm.training.run_dir import BACKUP, RunError, keep_epochs_before, open_run_dir

log = logging.getLogger("keras_ebm")


def build_model(config, input_shape, num_classes, value_range=(-1.0, 1.0)):
    """The model described by ``config`` (uncompiled); samples stay in ``value_range``."""
    keras.utils.set_random_seed(config.seed)
    if config.model == "rbm":
        return RBM(input_shape, num_hidden=config.rbm_hidden, cd_steps=config.cd_steps,
                   persistent=config.persistent, num_chains=config.batch_size,
                   sample_steps=config.sample_steps, temperatures=config.rbm_temperatures,
                   min_beta=config.rbm_min_beta, seed=config.seed)
    num_outputs = num_classes if config.model == "jem" else 1
    with distribute.precision(config.mixed_precision):
        if config.noise_conditional:  # one more input channel: log sigma
            input_shape = (*input_shape[:-1], input_shape[-1] + 1)
        network = networks.get_network(
            config.network, input_shape=input_shape, num_outputs=num_outputs,
            spectral_norm=config.spectral_norm,
        )
    sampler = LangevinSampler(
        steps=config.langevin_steps,
        step_size=config.langevin_alpha,
        noise_scale=config.langevin_sigma,
        grad_clip=config.grad_clip or None,
        parameterization=config.parameterization,
        value_range=value_range,
    )
    common = dict(
        sampler=sampler, buffer_size=config.buffer_size, reinit_prob=config.reinit_prob,
        reg_weight=config.reg_weight, real_noise=config.real_noise, seed=config.seed,
        value_range=value_range, chain_start=config.chain_start,
        refine_steps=config.refine_steps, refine_step_size=config.refine_step_size,
    )
    if config.model == "jem":
        return JEM(network, ce_weight=config.ce_weight, px_weight=config.px_weight,
                   conditional_sampling=config.conditional_sampling, **common)
    if config.model in ("dsm", "ssm"):
        noise_levels = config.noise_level_values
        if config.annealed_chain:
            sampler = AnnealedLangevinSampler(noise_levels, steps=config.langevin_steps,
                                              step_size=config.langevin_alpha,
                                              value_range=value_range,
                                              noise_conditional=config.noise_conditional)
        return ScoreMatching(network, objective="denoising" if config.model == "dsm" else "sliced",
                             noise_levels=noise_levels, annealed=config.annealed,
                             noise_conditional=config.noise_conditional,
                             continuous_noise=config.continuous_noise,
                             weight_power=config.noise_weight_power,
                             sampler=sampler, value_range=value_range, seed=config.seed)
    return EBM(network, **common)


def compile_model(model, config, steps_per_epoch):
    if config.budget_minutes:
        decay = state.BudgetCosineDecay(config.lr, alpha=0.01,
                                        decay_steps=max(1, config.epochs * steps_per_epoch))
    else:
        decay = keras.optimizers.schedules.CosineDecay(
            config.lr, decay_steps=max(1, config.epochs * steps_per_epoch), alpha=0.01)
    schedule = state.ScaledSchedule(decay)  # the divergence guard lowers its scale after a rollback
    ema = dict(use_ema=True, ema_momentum=config.ema) if config.ema else {}
    optimizer = keras.optimizers.Adam(schedule, beta_1=config.beta_1, beta_2=0.999,
                                      weight_decay=config.weight_decay or None, **ema)
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    if config.jit_compile and not model.jit_compile:  # Keras declined, e.g. op determinism is on
        raise RunError("--jit_compile: Keras cannot compile this model with XLA in this process "
                       "(op determinism on, or a layer without XLA support); drop --jit_compile")
    return model


def test_metrics(model, dataset):
    """Keras test metrics plus, for classifiers, the expected calibration error of ``p(y|x)``
    with the model's temperature (and at temperature 1)."""
    results = {k: float(v) for k, v in model.evaluate(dataset, verbose=0, return_dict=True).items()}
    if isinstance(model, JEM):
        logits = model.predict(dataset, verbose=0)
        labels = np.concatenate([y.numpy() for _, y in dataset])
        results.update(
            ece=metrics.expected_calibration_error(metrics.softmax(logits / model.temperature),
                                                   labels),
            ece_uncalibrated=metrics.expected_calibration_error(metrics.softmax(logits), labels),
            temperature=model.temperature)
    return results


def calibrate(model, config, prepared, checkpoint, diverged=False):
    """Temperature-scale a JEM's ``p(y|x)`` on the validation split (``--calibrate``): the
    model in memory and ``last.keras`` (unless training ``diverged``) and ``best.keras``, each
    with its own temperature."""
    if not (isinstance(model, JEM) and config.calibrate):
        return
    if prepared.val is None:
        log.info("No validation split (--validation_size 0): p(y|x) is not calibrated.")
        return
    fitted = []
    if not diverged:
        fitted.append(f"{model.calibrate(prepared.val):.3f} (final weights)")
        checkpoint.save("last.keras")
    best_path = os.path.join(checkpoint.directory, "best.keras")
    if os.path.isfile(best_path):
        best = keras.saving.load_model(best_path)
        fitted.append(f"{best.calibrate(prepared.val):.3f} (best.keras)")
        checkpoint.save("best.keras", best)
    if fitted:
        log.info("Calibrated p(y|x) on the validation split: temperature %s", ", ".join(fitted))


@dataclasses.dataclass
class PreparedData:
    """The pipelines and shapes a run (or a tuning trial) trains on."""

    train: object
    val: object
    test: object
    steps_per_epoch: int
    input_shape: tuple


def prepare_data(config, splits):
    """Batched ``tf.data`` pipelines (train shuffled, shifted and dequantised as configured),
    steps per epoch and the padded input shape of ``splits`` under ``config``."""
    make = dict(batch_size=config.batch_size, pad=config.pad)
    train = data.make_dataset(splits.x_train, splits.y_train, shuffle=True,
                              dequantize=config.dequantize, shift=config.shift,
                              seed=config.seed, drop_remainder=True, **make)
    val = data.make_dataset(splits.x_val, splits.y_val, **make) if len(splits.x_val) else None
    test = data.make_dataset(splits.x_test, splits.y_test, **make)
    steps_per_epoch = len(splits.x_train) // config.batch_size
    if steps_per_epoch == 0:
        raise RunError(
            f"--batch_size {config.batch_size} is larger than the {len(splits.x_train)} "
            "training images; lower it."
        )
    check_fits(config, splits)
    input_shape = splits.image_shape  # toy densities: points [dim]
    if len(input_shape) == 3:
        height, width, channels = input_shape
        input_shape = (height + 2 * config.pad, width + 2 * config.pad, channels)
    return PreparedData(train, val, test, steps_per_epoch, input_shape)


def check_fits(config, splits):
    """A ``RunError`` naming the flag to change when ``splits`` cannot serve ``config``."""
    if config.model == "jem" and splits.num_classes < 2:
        raise RunError(f"--model jem classifies, and the training labels hold "
                       f"{splits.num_classes} class; train an unconditional --model ebm instead.")
    if config.chain_start == "class_gaussian" and config.model == "jem":
        counts = np.bincount(splits.y_train, minlength=splits.num_classes)
        if counts.min() < 2:
            raise RunError(f"--chain_start class_gaussian fits one Gaussian per class and needs at "
                           f"least 2 training images of each; the training split has "
                           f"{counts.tolist()} per class. Train on more images (--subset) or pass "
                           "--chain_start uniform.")
    if config.chain_start == "class_gaussian" and len(splits.y_train) < 2:  # one Gaussian
        raise RunError("--chain_start class_gaussian fits a Gaussian to the training images and "
                       f"needs at least 2; the training split has {len(splits.y_train)}. Train "
                       "on more images (--subset) or pass --chain_start uniform.")
    if config.model == "jem" and config.conditional_sampling and (
            config.buffer_size < splits.num_classes):
        raise RunError(f"--conditional_sampling keeps buffer chains per class: --buffer_size "
                       f"{config.buffer_size} must be at least the {splits.num_classes} classes.")


def check_evaluation(config, splits):
    """A ``RunError`` before training when the final evaluation could not score ``splits``."""
    held_out = len(report.floor_images(splits, config.eval_samples)[1])
    scores_samples = len(splits.image_shape) == 3 and config.model != "rbm"
    if config.evaluate and scores_samples and held_out < config.eval_samples:
        raise RunError(f"The evaluation compares --eval_samples {config.eval_samples} samples "
                       f"with as many held-out images, and this run has {held_out}; lower "
                       "--eval_samples or pass --evaluate false.")


# --- the run ------------------------------------------------------------------------------

def start_devices(config):
    """The distribution strategy (made before TensorFlow starts its runtime), determinism."""
    strategy = distribute.get_strategy(config.strategy)
    if config.deterministic:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    if config.batch_size % strategy.num_replicas_in_sync:
        raise RunError(f"--batch_size {config.batch_size} is the global batch; make it a multiple "
                       f"of the {strategy.num_replicas_in_sync} replicas.")
    if config.jit_compile and strategy.num_replicas_in_sync > 1:
        raise RunError(f"--jit_compile runs on one device; this run has "
                       f"{strategy.num_replicas_in_sync} replicas (--strategy {config.strategy}). "
                       "Drop --jit_compile or pass --strategy default.")
    return strategy


def restore_position(model, strategy, run_dir, resuming):
    """Where training continues (fit's epoch, batches done): from the backup when resuming."""
    backup_path = os.path.join(run_dir, BACKUP)
    position = {"epoch": 0, "step": 0}
    if resuming and os.path.isfile(backup_path):
        try:
            with strategy.scope():
                position = state.load(model, backup_path)
        except state.StateError as err:
            raise RunError(str(err)) from None
        log.info("Resuming from %s: epoch %d, %d batches done", backup_path,
                 position["epoch"] + 1, position["step"])
    keep_epochs_before(os.path.join(run_dir, "metrics.csv"), position["epoch"])
    return position


def compute_budget(config, model):
    """The callback that stops ``model``'s training at ``--budget_minutes``, or ``None``."""
    if not config.budget_minutes:
        return None
    return callbacks.ComputeBudget(config.budget_minutes, state.budget_progress(model))


def checkpoint_monitor(kind, validation):
    """``(metric, mode)`` behind ``best.keras``; metric ``None``: no ``best.keras``."""
    name, mode = kind.monitor
    if validation:
        return "val_" + name, mode
    # Against the training chains' samples a low cdiv means chains that fail to reach the data.
    return (None if name == "cdiv" else name), mode


def build_callbacks(config, kind, model, prepared, run_dir, position, resuming):
    """The run's callbacks; the divergence guard and the compute budget (or ``None``) too."""
    # A plain classifier (--px_weight 0) has no sampled negatives: its cdiv is real vs noise.
    gap = config.max_energy_gap if config.px_weight > 0 or config.model != "jem" else float("inf")
    guard = callbacks.DivergenceGuard(
        config.max_abs_energy, gap, config.max_recoveries, config.recovery_lr_factor,
        events_path=os.path.join(run_dir, "recoveries.json"),
        checkpoint_path=os.path.join(run_dir, "checkpoints", "last.keras"))
    monitor = checkpoint_monitor(kind, validation=prepared.val is not None)
    budget = compute_budget(config, model)
    real_images = next(iter(prepared.test))[0][:10].numpy()
    callback_list = [
        *([budget] if budget else []),
        guard,
        *class_energy_watch(config, prepared),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "metrics.csv"), append=resuming),
        callbacks.Checkpoint(os.path.join(run_dir, "checkpoints"), *monitor, guard=guard),
        callbacks.Backup(os.path.join(run_dir, BACKUP), every=config.backup_every,
                         step=position["step"], steps_per_epoch=prepared.steps_per_epoch),
        callbacks.StopAtStep(config.epochs * prepared.steps_per_epoch, start=position["step"]),
        callbacks.EpochLogger(),
        *kind.figures(config, run_dir, real_images),
    ]
    if config.tensorboard:
        callback_list.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")))
    return callback_list, guard, budget


def class_energy_watch(config, prepared, num_images=2000):
    """A :class:`callbacks.ClassEnergyWatch` on validation images for a JEM that samples
    (in a list, empty otherwise)."""
    if config.model != "jem" or config.px_weight <= 0 or prepared.val is None:
        return []
    images, labels = [], []
    for x, y in prepared.val:
        images.append(x.numpy())
        labels.append(y.numpy())
        if sum(map(len, images)) >= num_images:
            break
    return [callbacks.ClassEnergyWatch(np.concatenate(images)[:num_images],
                                       np.concatenate(labels)[:num_images])]


def train(model, config, prepared, position, callback_list):
    """``model.fit`` over the stream of batches from ``position``; returns the seconds it took
    and the epochs of the whole run."""
    start = time.time()
    stream = state.training_stream(prepared.train, prepared.steps_per_epoch, config.epochs,
                                   start_step=position["step"])
    history = model.fit(stream, validation_data=prepared.val, epochs=config.epochs,
                        steps_per_epoch=prepared.steps_per_epoch, initial_epoch=position["epoch"],
                        callbacks=callback_list, verbose=config.verbose, shuffle=False)
    # Epochs of the whole run: those before a resume and those fit ran now.
    return {"train_seconds": time.time() - start,
            "epochs_run": position["epoch"] + len(history.epoch)}


def set_up(model, config, splits):
    """Prepare a freshly built model for training on ``splits`` as ``run`` does (per kind of
    model: fit the class-Gaussian chain starts, an RBM's visible biases)."""
    KINDS[kind_of(config)].set_up(model, config, splits)


def run(config):
    """Train and evaluate the model described by a validated ``Config``: data, model,
    callbacks, fit, test metrics, evaluation, export, all in one run directory.

    Returns a dict with the run directory, the test metrics, whether training diverged
    and the model.
    """
    config.validate()
    strategy = start_devices(config)
    splits = data.load_dataset(config.dataset, config.data_file, config.validation_size,
                               config.subset, config.seed)
    prepared = prepare_data(config, splits)
    check_evaluation(config, splits)
    run_dir, resuming = open_run_dir(config)
    log.info("Data: %d train, %d validation, %d test images of shape %s",
             len(splits.x_train), len(splits.x_val), len(splits.x_test), splits.image_shape)
    kind = KINDS[kind_of(config)]
    with strategy.scope():
        model = compile_model(build_model(config, prepared.input_shape, splits.num_classes,
                                          splits.value_range), config, prepared.steps_per_epoch)
    distribute.patch_for_multi_worker(model, strategy)
    log.info("Strategy: %s (%s), %d replica(s)", config.strategy, type(strategy).__name__,
             strategy.num_replicas_in_sync)
    kind.set_up(model, config, splits)
    position = restore_position(model, strategy, run_dir, resuming)
    callback_list, guard, budget = build_callbacks(config, kind, model, prepared, run_dir,
                                                   position, resuming)
    fitted = train(model, config, prepared, position, callback_list)
    checkpoint = next(c for c in callback_list if isinstance(c, callbacks.Checkpoint))
    if config.ema and not guard.diverged:  # fit ended by swapping in the averaged weights
        checkpoint.save("last.keras")
    calibrate(model, config, prepared, checkpoint, diverged=guard.diverged)
    results = test_metrics(model, prepared.test)
    results.update(fitted, diverged=guard.diverged, recoveries=len(guard.events))
    if budget is not None:
        results["budget_minutes_spent"] = budget.spent_seconds / 60.0
    files.write_json(os.path.join(run_dir, "test_metrics.json"), results)
    log.info("Test metrics: %s", json.dumps(results, sort_keys=True))
    if config.evaluate and not guard.diverged:
        kind.evaluate(model, splits, config, run_dir)
    if config.export and not guard.diverged:
        log.info("Exported SavedModel to %s", export.export_model(
            model, os.path.join(run_dir, "export"), pad=config.pad))
    if not guard.diverged and os.path.exists(os.path.join(run_dir, BACKUP)):
        os.remove(os.path.join(run_dir, BACKUP))  # finished: nothing left to resume
    return {"run_dir": run_dir, "test_metrics": results, "diverged": guard.diverged,
            "model": model}
