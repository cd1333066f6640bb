"""What a run does differently for each kind of model (JEM, EBM, RBM, score matching; images
or toy densities): one row of ``KINDS`` each."""

import dataclasses
import json
import logging
import os
import typing

from keras_ebm import data, files
from keras_ebm.data import toy
from keras_ebm.evaluation import distances, report
from keras_ebm.evaluation.likelihood import evaluate_log_likelihood
from keras_ebm.models.ebm import EBM
from keras_ebm.training import figures

log = logging.getLogger("keras_ebm")


def _set_up_network(model, config, splits):
    log.info("Model: %s with network %s (%d parameters)", type(model).__name__, config.network,
             model.network.count_params())
    if isinstance(model, EBM) and model.start is not None:
        model.fit_chain_start(data.preprocess(splits.x_train, config.pad).numpy(), splits.y_train)
        log.info("Chains start from one Gaussian per class fitted to the %d training images",
                 len(splits.x_train))


def _set_up_rbm(model, config, splits):
    log.info("Model: RBM, %d visible x %d hidden units, %s-%d", model.num_visible,
             model.num_hidden, "PCD" if model.persistent else "CD", model.cd_steps)
    model.initialize_visible_bias(data.preprocess(splits.x_train.mean(axis=0, keepdims=True),
                                                  config.pad))


def _image_callbacks(config, run_dir, real_images):
    samples_dir = os.path.join(run_dir, "samples")
    tensorboard_dir = os.path.join(run_dir, "tensorboard", "samples") if config.tensorboard else None
    return [figures.SampleGrid(samples_dir, real_images, every=config.sample_every,
                                 steps=config.sample_steps, final_steps=config.final_sample_steps,
                                 tensorboard_dir=tensorboard_dir, seed=config.seed),
            figures.ChainSnapshots(samples_dir, steps=config.final_sample_steps, seed=config.seed)]


def _density_callbacks(config, run_dir, real_images):
    return [figures.DensityPlots(os.path.join(run_dir, "samples"), _density(config),
                                   every=config.sample_every, steps=config.final_sample_steps,
                                   seed=config.seed)]


def _density(config):
    return toy.get_density(config.dataset[len("toy:"):])


def _evaluate_images(model, splits, config, run_dir):
    log.info("Evaluating (calibration, OOD detection, sample quality)...")
    results = report.evaluate_model(
        model, splits, os.path.join(run_dir, "evaluation"), pad=config.pad,
        num_samples=config.eval_samples, steps=config.eval_steps, num_test=config.eval_num_test,
        warm_start=config.eval_warm_start)
    log.info("Evaluation:\n%s", report.format_table(results))


def _evaluate_density(model, splits, config, run_dir):
    density = _density(config)
    results = distances.evaluate_model(model, density, num_samples=config.eval_samples,
                                       steps=config.eval_steps, seed=config.seed)
    os.makedirs(os.path.join(run_dir, "evaluation"), exist_ok=True)
    files.write_json(os.path.join(run_dir, "evaluation", "evaluation.json"), results)
    log.info("Distances to the true %s density: %s", density.name,
             json.dumps(results, sort_keys=True))


def _evaluate_likelihood(model, splits, config, run_dir):
    log.info("AIS test log-likelihood (%d runs, %d inverse temperatures)...", config.ais_runs,
             config.ais_betas)
    results = evaluate_log_likelihood(
        model, data.preprocess(splits.x_test[:config.eval_num_test], config.pad),
        data.preprocess(splits.x_train.mean(axis=0, keepdims=True), config.pad),
        num_runs=config.ais_runs, num_betas=config.ais_betas, seed=config.seed,
        reverse_images=config.ais_reverse_images)
    files.write_json(os.path.join(run_dir, "log_likelihood.json"), results)
    log.info("Test log-likelihood %.2f nats (log Z %.2f +- %.2f)", results["log_likelihood"],
             results["log_z"], results["log_z_std"])
    if "reverse" in results:
        reverse = results["reverse"]
        log.info("First %d test images: reverse annealing %.2f <= log-likelihood <= forward AIS "
                 "%.2f nats (gap %.2f)", reverse["num_images"], reverse["log_likelihood_reverse"],
                 reverse["log_likelihood_forward"], reverse["gap"])


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a run does differently for one kind of model: the metric that picks
    ``best.keras``, its set-up (and the log line describing it), sample figures, and the
    final evaluation."""

    monitor: tuple
    set_up: typing.Callable
    figures: typing.Callable
    evaluate: typing.Callable


KINDS = {
    "jem": Kind(("accuracy", "max"), _set_up_network, _image_callbacks, _evaluate_images),
    "ebm": Kind(("cdiv", "min"), _set_up_network, _image_callbacks, _evaluate_images),
    "toy": Kind(("cdiv", "min"), _set_up_network, _density_callbacks, _evaluate_density),
    "rbm": Kind(("pseudo_log_likelihood", "max"), _set_up_rbm, _image_callbacks,
                _evaluate_likelihood),
    "score": Kind(("loss", "min"), _set_up_network, _image_callbacks, _evaluate_images),
    "toy_score": Kind(("loss", "min"), _set_up_network, _density_callbacks, _evaluate_density),
}


def kind_of(config):
    score = config.model in ("dsm", "ssm")
    if config.dataset.startswith("toy:"):
        return "toy_score" if score else "toy"
    return "score" if score else config.model
