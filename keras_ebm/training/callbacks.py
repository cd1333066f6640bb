"""Callbacks that keep a run safe and bounded, one job each: divergence guard, a watch on each
class's energy, checkpoints, backups for resuming, the step and compute budgets, the epoch log."""

import json
import logging
import math
import os
import time

import keras
import numpy as np

from keras_ebm import files
from keras_ebm.training import state

log = logging.getLogger("keras_ebm")


class DivergenceGuard(keras.callbacks.Callback):
    """Detect a diverging run and roll it back, a bounded number of times.

    After each batch the running epoch means in ``logs`` are checked: a NaN/inf,
    ``|loss|``, ``|energy_real|`` or ``|energy_sample|`` above ``max_abs_energy``,
    or a real/sample energy gap ``|cdiv|`` above ``max_energy_gap`` (the
    sampler's negatives have left the data: far lower energy than the data means
    the energy collapsed onto spurious modes, far higher that the chains no longer
    reach it). On a divergence the guard restores the last good state (weights,
    optimizer, replay buffer, seed generators: see :mod:`keras_ebm.training.state`; taken
    at the start and after every healthy epoch), reseeds the model's and buffer's
    seed generators, multiplies the learning-rate scale by ``lr_factor`` (when the
    optimizer uses a :class:`~keras_ebm.training.state.ScaledSchedule`) and carries on with
    the next batches. Each event is logged and appended to ``events_path`` (JSON);
    ``checkpoint_path`` (the last checkpoint, if any) is named in the final message.
    After ``max_recoveries`` rollbacks the next divergence restores the last good
    state once more and stops training; ``diverged`` holds the reason (``None`` otherwise).
    """

    watched = ("loss", "energy_real", "energy_sample")

    def __init__(self, max_abs_energy=1e4, max_energy_gap=float("inf"), max_recoveries=0,
                 lr_factor=1.0, events_path=None, checkpoint_path=None):
        super().__init__()
        if max_recoveries < 0 or not 0 < lr_factor <= 1:
            raise ValueError(f"max_recoveries must be >= 0 and lr_factor in (0, 1], got "
                             f"{max_recoveries} and {lr_factor}.")
        self.max_abs_energy = max_abs_energy
        self.max_energy_gap = max_energy_gap
        self.max_recoveries = max_recoveries
        self.lr_factor = lr_factor
        self.events_path = events_path
        self.events = []  # a resumed run counts the rollbacks before it too
        if events_path and os.path.isfile(events_path):
            with open(events_path) as f:
                self.events = json.load(f)
        self.diverged = None
        self.epoch = 0
        self.good = None  # (description, state arrays) to roll back to
        self.checkpoint_path = checkpoint_path

    def on_train_begin(self, logs=None):
        self.good = ("state at the start of training", state.capture(self.model))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        # Training metrics come before each step's update; validation ones after the last.
        if self.problem(logs, validation=True) is None:
            self.good = (f"state after epoch {epoch + 1}", state.capture(self.model))

    def problem(self, logs, validation=False):
        """Why ``logs`` show a divergence, or ``None``."""
        limits = {name: self.max_abs_energy for name in self.watched}
        limits["cdiv"] = self.max_energy_gap
        if validation:
            limits.update({f"val_{name}": self.max_abs_energy for name in self.watched})
        for name, limit in limits.items():
            if logs and name in logs:
                value = float(logs[name])
                if not math.isfinite(value) or abs(value) > limit:
                    return f"{name} = {value} (limit |{name}| <= {limit:g})"
        return None

    def on_train_batch_end(self, batch, logs=None):
        problem = self.problem(logs)
        if problem is None:
            return
        where = f"epoch {self.epoch + 1}, batch {batch + 1}"
        if len(self.events) >= self.max_recoveries:
            self.diverged = (
                f"training diverged at {where}: {problem}"
                + (f", after {len(self.events)} rollback(s)" if self.events else "") + ". "
                "Lower --lr or --langevin_alpha, or raise --reg_weight; "
                + self.checkpoint_note()
            )
            log.error(self.diverged)
            if self.good is not None:
                state.restore(self.model, self.good[1])  # stop with the last good weights
            self.model.stop_training = True
            return
        self.roll_back(where, problem)

    def checkpoint_note(self):
        if self.checkpoint_path is None:
            return "the model holds the last good state."
        if os.path.isfile(self.checkpoint_path):
            return f"the last checkpoint before it is kept ({self.checkpoint_path})."
        return "no epoch had finished, so no checkpoint was written."

    def roll_back(self, where, problem):
        restored, arrays = self.good
        scale = state.lr_scale(self.model)
        lowest = None if scale is None else float(keras.ops.convert_to_numpy(scale))
        spent = state.budget_progress(self.model)  # compute spent stays spent
        spent_value = None if spent is None else keras.ops.convert_to_numpy(spent)
        state.restore(self.model, arrays)
        if spent is not None:
            spent.assign(spent_value)
        number = len(self.events) + 1
        for owner in (self.model, getattr(self.model, "buffer", None)):
            generator = getattr(owner, "seed_generator", None)
            if generator is not None:  # a new stream: shift the seed, keep the counter
                generator.state.assign(generator.state + np.array([1_000_003 * number, 0]))
        if scale is not None:  # lower than both the restored and the diverging rate
            lowest = min(lowest, float(keras.ops.convert_to_numpy(scale))) * self.lr_factor
            scale.assign(lowest)
        self.model.reset_metrics()  # the epoch means restart after the rollback
        event = {"at": where, "problem": problem, "restored": restored,
                 "lr_scale": None if scale is None else float(f"{lowest:.6g}")}
        self.events.append(event)
        log.warning("Divergence at %s: %s. Rollback %d of at most %d: restored the %s, "
                    "reseeded the sampler, learning-rate scale now %s.", where, problem, number,
                    self.max_recoveries, event["restored"], event["lr_scale"])
        if self.events_path:
            files.write_json(self.events_path, self.events)


class ClassEnergyWatch(keras.callbacks.Callback):
    """Log how far the lowest class's real images sink below the others in energy, and warn
    when one class sinks into a well the training chains do not reach.

    A JEM pushes the energy of real images down and that of its chain samples up. When the
    chains never reach one class's images, nothing pushes back but the L2 regulariser, and that
    class's energy settles at ``-cdiv_weight / (2 reg_weight)``: a deep, narrow well that
    sampling chains cannot enter, so the class vanishes from the samples. (On MNIST it struck
    the 1s of one seed in its first two epochs; half the Langevin step size, or 3x the
    regulariser, kept them.) Each epoch this adds ``val_class_energy_gap`` to the logs (median
    minus lowest of the per-class mean energies of ``images``; before the CSV logger in the
    callback list, so it reaches ``metrics.csv``) and warns once per class when the gap passes
    half the well's depth.

    Args:
        images: real images ``[N, ...]`` (e.g. validation images), every class present.
        labels: their class indices ``[N]``.
        batch_size: images per energy call.
    """

    def __init__(self, images, labels, batch_size=500):
        super().__init__()
        self.images = np.asarray(images, dtype="float32")
        self.labels = np.asarray(labels).reshape(-1)
        self.batch_size = int(batch_size)
        self.warned = set()

    def class_energies(self):
        """Mean energy of each class's images, ``{class: energy}``."""
        energies = np.concatenate([
            np.asarray(self.model.energy(self.images[i:i + self.batch_size]))
            for i in range(0, len(self.images), self.batch_size)])
        return {int(c): float(energies[self.labels == c].mean()) for c in np.unique(self.labels)}

    def on_epoch_end(self, epoch, logs=None):
        means = self.class_energies()
        median = float(np.median(list(means.values())))
        lowest = min(means, key=means.get)
        gap = median - means[lowest]
        if logs is not None:
            logs["val_class_energy_gap"] = gap
        reg_weight = self.model.reg_weight
        well = self.model.cdiv_weight / (2 * reg_weight) if reg_weight > 0 else math.inf
        if gap > well / 2 and lowest not in self.warned:
            self.warned.add(lowest)
            log.warning(
                "Class %d's real images sit at energy %.2f, %.2f below the median class (%.2f): "
                "the training chains do not reach them and the class is vanishing from the "
                "samples (unreached images sink to -%.2f). Retrain with a smaller "
                "--langevin_alpha (now %g; try half) or a larger --reg_weight (now %g; try 3x).",
                lowest, means[lowest], gap, median, well, self.model.sampler.step_size,
                reg_weight)


class Checkpoint(keras.callbacks.Callback):
    """Save ``last.keras`` every epoch and ``best.keras`` when ``monitor`` improves
    (``monitor=None``: no ``best.keras``). An epoch whose metrics a :class:`DivergenceGuard`
    ``guard`` flags is never the best, however good its monitored value looks.

    Files are written to a temporary name and renamed, so an interrupted or
    failed save (a full disk) never leaves a truncated checkpoint behind and
    keeps the previous one. The best value is kept in ``best.json``, so a
    resumed run only replaces ``best.keras`` with a better model.
    """

    def __init__(self, directory, monitor="val_loss", mode="min", guard=None):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self.directory = directory
        self.monitor = monitor
        self.mode = mode
        self.guard = guard
        self.best = None
        best_file = os.path.join(directory, "best.json")
        if os.path.isfile(best_file):
            with open(best_file) as f:
                self.best = json.load(f).get(monitor)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if any(not math.isfinite(float(v)) for v in logs.values()):
            log.warning("Epoch %d has non-finite metrics; not checkpointing it.", epoch + 1)
            return
        self.save("last.keras")
        value = logs.get(self.monitor)
        problem = self.guard.problem(logs, validation=True) if self.guard else None
        if value is not None and problem:
            log.warning("Epoch %d is past the divergence limits (%s); it cannot be best.keras.",
                        epoch + 1, problem)
        elif value is not None and self.improved(float(value)):
            self.save("best.keras")
            self.best = float(value)
            files.write_json(os.path.join(self.directory, "best.json"),
                              {self.monitor: self.best, "epoch": epoch + 1})
            log.info("New best %s = %.5f; saved best.keras", self.monitor, self.best)

    def improved(self, value):
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def save(self, name, model=None):
        """Write ``model`` (default: the one being trained) to ``name`` in the directory."""
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, name)
        try:
            with files.atomic_path(path, suffix=".keras") as tmp:
                (self.model if model is None else model).save(tmp)
        except OSError as err:
            raise OSError(err.errno, f"Cannot write checkpoint {path} ({err.strerror or err}); "
                          "the previous checkpoints are kept. Free space or fix permissions, "
                          "then rerun with --resume.") from None


class Backup(keras.callbacks.Callback):
    """Back up the whole training state for ``--resume``: every ``every`` batches
    (0: never mid-epoch) and after every epoch, atomically, to one ``.npz``.

    The file holds the weights, optimizer, replay buffer and seed generators
    (:mod:`keras_ebm.training.state`) and the position: the epoch ``fit`` continues in and
    ``step``, the number of batches of the training stream consumed. States with
    non-finite metrics are not backed up. With ``steps_per_epoch`` the last batch of an
    epoch is backed up only at the epoch's end (after validation), so an interrupt during
    validation resumes before it and the run stays exact.
    """

    def __init__(self, path, every=0, step=0, steps_per_epoch=None):
        super().__init__()
        self.path = path
        self.every = every
        self.step = step
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        # An epoch's last batch is backed up by on_epoch_end, after validation: a state saved
        # before it would resume into an epoch whose batches are all done.
        last_of_epoch = self.steps_per_epoch and self.step % self.steps_per_epoch == 0
        if self.every and self.step % self.every == 0 and not last_of_epoch:
            self.save(self.epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1, logs)

    def save(self, epoch, logs):
        if any(not math.isfinite(float(v)) for v in (logs or {}).values()):
            return
        try:
            state.save(self.model, self.path, epoch=epoch, step=self.step)
        except OSError as err:
            raise OSError(err.errno, f"Cannot write the backup {self.path} "
                          f"({err.strerror or err}); the previous backup is kept. Free space "
                          "or fix permissions, then rerun with --resume.") from None


class StopAtStep(keras.callbacks.Callback):
    """Stop after ``total`` batches of the training stream (``start`` already done):
    a run resumed from a mid-epoch backup ends where an uninterrupted one does."""

    def __init__(self, total, start=0):
        super().__init__()
        self.total = total
        self.step = start

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.total:
            self.model.stop_training = True


def usable_cores(cgroup_root="/sys/fs/cgroup"):
    """CPU cores this process may run on: its CPU affinity, capped by a container's CPU quota
    (cgroup v2 ``cpu.max`` or v1 ``cpu/cpu.cfs_quota_us``, e.g. ``docker --cpus 2``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cgroup_cpu_quota(root):
    """The container's CPU quota in cores, or ``None`` when there is none or it is unreadable."""
    for quota_file, period_file in (("cpu.max", None),
                                    ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            with open(os.path.join(root, quota_file)) as f:
                fields = f.read().split()
            if period_file:
                with open(os.path.join(root, period_file)) as f:
                    fields.append(f.read().strip())
            quota, period = fields[0], fields[1]
            if quota in ("max", "-1"):
                return None
            return int(quota) / int(period)
        except (OSError, ValueError, IndexError):
            continue
    return None


class ComputeBudget(keras.callbacks.Callback):
    """Stop training once ``minutes`` of compute are spent, counted as the process's CPU
    time divided by its usable cores (other work on the machine changes it far less than wall
    time, though TensorFlow's threads spin while they wait, so sharing the cores costs some).

    ``progress`` (a variable, e.g. :class:`~keras_ebm.training.state.BudgetCosineDecay`'s) receives
    the share spent after every batch; a resumed run continues from its saved value.
    :attr:`spent_seconds` stops counting when training ends: the figures and evaluation after
    it are not part of the budget (place this callback first, so that it ends first).
    """

    def __init__(self, minutes, progress, cores=None):
        super().__init__()
        if not minutes > 0 or not math.isfinite(minutes):
            raise ValueError(f"minutes must be a positive number, got {minutes}.")
        self.seconds = 60.0 * minutes
        self.progress = progress
        self.cores = cores or usable_cores()
        self.spent_before = 0.0
        self.cpu_start = 0.0
        self.spent_at_end = None

    @property
    def spent_seconds(self):
        if self.spent_at_end is not None:
            return self.spent_at_end
        return self.spent_before + (time.process_time() - self.cpu_start) / self.cores

    def on_train_begin(self, logs=None):
        self.spent_before = float(keras.ops.convert_to_numpy(self.progress)) * self.seconds
        self.cpu_start = time.process_time()
        self.spent_at_end = None

    def on_train_end(self, logs=None):
        self.spent_at_end = self.spent_seconds

    def on_train_batch_end(self, batch, logs=None):
        spent = self.spent_seconds
        self.progress.assign(min(spent / self.seconds, 1.0))
        if spent >= self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        log.info("Compute budget: %.1f of %.1f CPU minutes spent", self.spent_seconds / 60,
                 self.seconds / 60)


class EpochLogger(keras.callbacks.Callback):
    """Write each epoch's metrics to the ``keras_ebm`` logger (and so the log file)."""

    def on_epoch_end(self, epoch, logs=None):
        text = " ".join(f"{k}={float(v):.5g}" for k, v in sorted((logs or {}).items()))
        log.info("epoch %d: %s", epoch + 1, text)
