"""Hyperparameter search with keras-tuner.

    keras-ebm tune --max_trials 10 --epochs 2 --subset 10000 --out runs/tune

Objective ``val_hybrid`` (maximised) = mean of

* ``val_accuracy``: classification accuracy on the validation split, and
* ``val_sample_accuracy``: the fraction of class-conditional samples drawn from
  uniform noise (``sample_steps`` Langevin steps, ``samples_per_class`` per
  class) that the fixed reference classifier (``keras_ebm.evaluation.reference``) reads as
  the requested class.

Both lie in [0, 1] and a trial only scores well if it classifies *and*
generates; the reference classifier is the same for every trial, so the
generation score is comparable across trials (a model's own energies are not).
"""

import dataclasses
import os

import keras_tuner as kt
import numpy as np

from keras_ebm import data, files
from keras_ebm.evaluation import reference
from keras_ebm.training import experiment

SEARCH_SPACE = ("langevin_steps", "langevin_alpha", "langevin_sigma", "reinit_prob",
                "reg_weight", "lr")


class JEMHyperModel(kt.HyperModel):
    """Builds a JEM from a base :class:`~keras_ebm.config.Config` with the searched
    Langevin steps, step size, noise, buffer re-init, energy regulariser and learning rate.

    Args:
        config: the base configuration (model must be ``"jem"``).
        input_shape, num_classes: of the data.
        steps_per_epoch: for the learning-rate schedule.
        samples_per_class, sample_steps: of the generation score.
        start_data: ``(images, labels)`` of the training split (model range), to fit the
            chain starts of ``--chain_start class_gaussian`` trials.
        judge: the classifier that reads the samples (default: the shipped MNIST one).
    """

    def __init__(self, config, input_shape, num_classes, steps_per_epoch, samples_per_class=10,
                 sample_steps=100, start_data=None, judge=None, **kwargs):
        super().__init__(**kwargs)
        if config.model != "jem":
            raise ValueError("Tuning needs --model jem (the objective uses classification).")
        self.config = config
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.steps_per_epoch = steps_per_epoch
        self.samples_per_class = samples_per_class
        self.sample_steps = sample_steps
        self.start_data = start_data
        self.reference = reference.load_reference_classifier() if judge is None else judge

    def trial_config(self, hp):
        return dataclasses.replace(
            self.config,
            langevin_steps=hp.Int("langevin_steps", 10, 40, step=10),
            langevin_alpha=hp.Float("langevin_alpha", 1.0, 20.0, sampling="log"),
            langevin_sigma=hp.Float("langevin_sigma", 0.001, 0.02, sampling="log"),
            reinit_prob=hp.Choice("reinit_prob", [0.01, 0.05, 0.1]),
            reg_weight=hp.Float("reg_weight", 0.01, 1.0, sampling="log"),
            lr=hp.Float("lr", 1e-4, 3e-3, sampling="log"),
        ).validate()

    def build(self, hp):
        config = self.trial_config(hp)
        model = experiment.build_model(config, self.input_shape, self.num_classes)
        if model.start is not None:
            if self.start_data is None:
                raise ValueError("class_gaussian chain starts are fitted to data: pass "
                                 "start_data=(train_images, train_labels).")
            model.fit_chain_start(*self.start_data)
        return experiment.compile_model(model, config, self.steps_per_epoch)

    def fit(self, hp, model, *args, **kwargs):
        budget = experiment.compute_budget(self.config, model)  # every trial gets the budget
        if budget is not None:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), budget]
        history = model.fit(*args, **kwargs)
        val_accuracy = history.history["val_accuracy"][-1]
        labels = np.repeat(np.arange(self.num_classes), self.samples_per_class).astype("int32")
        samples = model.generate(len(labels), steps=self.sample_steps, labels=labels, seed=0)
        sample_accuracy = reference.label_accuracy(self.reference, samples, labels)
        scores = {"val_accuracy": float(val_accuracy), "val_sample_accuracy": sample_accuracy,
                  "val_hybrid": 0.5 * (float(val_accuracy) + sample_accuracy)}
        if not all(np.isfinite(v) for v in scores.values()):
            raise RuntimeError(f"Trial produced non-finite scores {scores}.")
        return scores


def search(config, splits, directory, max_trials=4, samples_per_class=10, sample_steps=100,
           seed=0):
    """Run a random search; returns ``(best_hyperparameters_dict, tuner)``.

    A failing trial stops the search with its error rather than yielding a
    silent "best" of the trials that did run.
    """
    prepared = experiment.prepare_data(config, splits)
    start_data = (data.preprocess(splits.x_train, config.pad).numpy(), splits.y_train)
    hypermodel = JEMHyperModel(config, prepared.input_shape, splits.num_classes,
                               prepared.steps_per_epoch, samples_per_class, sample_steps,
                               start_data=start_data,
                               judge=reference.for_dataset(
                                   splits, os.path.join(directory, "reference_classifier.keras")))
    tuner = kt.RandomSearch(
        hypermodel,
        objective=kt.Objective("val_hybrid", direction="max"),
        max_trials=max_trials,
        seed=seed,
        directory=directory,
        project_name="jem",
        max_consecutive_failed_trials=1,
    )
    tuner.search(prepared.train, validation_data=prepared.val, epochs=config.epochs, verbose=config.verbose,
                 shuffle=False)
    failed = [t.trial_id for t in tuner.oracle.trials.values()
              if t.status == kt.engine.trial.TrialStatus.FAILED]
    if failed:
        raise RuntimeError(f"Trials {failed} failed; see the log above. No best is reported.")
    best = tuner.get_best_hyperparameters(1)[0].values
    return best, tuner


def write_results(run_dir, best, tuner):
    trials = []
    for trial in tuner.oracle.get_best_trials(len(tuner.oracle.trials)):
        metrics = {name: trial.metrics.get_last_value(name)
                   for name in ("val_hybrid", "val_accuracy", "val_sample_accuracy")}
        trials.append({"trial_id": trial.trial_id, "hyperparameters": trial.hyperparameters.values,
                       **metrics})
    files.write_json(os.path.join(run_dir, "best_hyperparameters.json"), best)
    files.write_json(os.path.join(run_dir, "trials.json"), trials)
    return trials


def format_table(trials):
    keys = list(SEARCH_SPACE)
    lines = ["trial  hybrid  val_acc  sample_acc  " + "  ".join(keys)]
    for t in trials:
        hp = "  ".join(f"{t['hyperparameters'][k]:.4g}" for k in keys)
        lines.append(f"{t['trial_id']:>5}  {t['val_hybrid']:.4f}  {t['val_accuracy']:.4f}   "
                     f"{t['val_sample_accuracy']:.4f}     {hp}")
    return "\n".join(lines)


def best_as_flags(best):
    return " ".join(f"--{k} {v}" for k, v in best.items())
