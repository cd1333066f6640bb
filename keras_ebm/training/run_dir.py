"""The run directory: created new (never over another run's results) or, with ``--resume``,
reopened with the same settings; its log, its configuration and the backup's name."""

import dataclasses
import json
import logging
import os
import sys
import time

from keras_ebm import files

log = logging.getLogger("keras_ebm")
BACKUP = "backup.npz"  # the training state for --resume, removed when the run finishes


class RunError(RuntimeError):
    """A run could not start or finish; the message says why and what to do."""


def default_run_dir(config):
    return os.path.join("runs", f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}")


def create_run_dir(path):
    """Create a new, empty run directory; refuse to reuse a non-empty one."""
    if os.path.isdir(path) and os.listdir(path):
        raise RunError(
            f"Run directory {path} already exists and is not empty; its results are kept. "
            "Choose another --out."
        )
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise RunError(f"Cannot write to run directory {path}: {err}. Choose another --out.") from None


def reopen_run_dir(path, config):
    """For ``--resume``: True when ``path`` holds an unfinished run with the same settings,
    False when it holds no run (a new one starts there); otherwise a ``RunError``."""
    if not os.path.isfile(os.path.join(path, "config.json")):
        return False
    with open(os.path.join(path, "config.json")) as f:
        saved = json.load(f)
    current = dataclasses.asdict(config)
    # A setting added after the run started reads as its default.
    defaults = {field.name: field.default for field in dataclasses.fields(config)}
    saved = {k: saved.get(k, defaults.get(k)) for k in current}
    changed = [f"--{k} {saved[k]} (now {current[k]})" for k in sorted(current)
               if k not in ("resume", "verbose") and saved[k] != current[k]]
    if changed:
        raise RunError(f"Cannot resume {path}: it was started with {', '.join(changed)}. "
                       "Rerun with its flags (see its config.json), or choose another --out.")
    finished = os.path.isfile(os.path.join(path, "test_metrics.json"))
    if finished and not os.path.isfile(os.path.join(path, BACKUP)):
        raise RunError(f"{path} holds a finished run; its results are kept. "
                       "Choose another --out.")
    return True


def keep_epochs_before(csv_path, epoch):
    """Drop rows of ``metrics.csv`` from ``epoch`` on: a resumed run writes them again."""
    if not os.path.isfile(csv_path):
        return
    with open(csv_path) as f:
        lines = f.readlines()
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < epoch]
    with files.atomic_path(csv_path) as tmp, open(tmp, "w") as f:
        f.writelines(kept)


def setup_logging(log_file):
    logger = logging.getLogger("keras_ebm")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(log_file)):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.propagate = False


def open_run_dir(config):
    """Create (or, with ``--resume``, reopen) the run directory; start its log and config."""
    run_dir = config.out or default_run_dir(config)
    resuming = config.resume and reopen_run_dir(run_dir, config)
    if not resuming:
        create_run_dir(run_dir)
    config.out = run_dir
    setup_logging(config.log_file or os.path.join(run_dir, "train.log"))
    if not resuming:
        files.write_json(os.path.join(run_dir, "config.json"), dataclasses.asdict(config))
    log.info("Run directory: %s", run_dir)
    return run_dir, resuming
