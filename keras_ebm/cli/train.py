"""``keras-ebm train [flags]`` (and ``python train.py``): train a model into a run directory;
library errors become messages and exit codes (2: bad input, 3: diverged, 130: interrupted)."""

import os
import signal
import sys

from keras_ebm import config as config_lib


def main(argv=None):
    """``keras-ebm train``: parse flags, run, map library errors to exit codes."""
    try:
        config = config_lib.from_args(argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from keras_ebm.data import DataError  # after parsing: --help stays quick
    from keras_ebm.training import experiment

    previous = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop: like Ctrl-C
    try:
        result = experiment.run(config)
    except (DataError, experiment.RunError, OSError) as err:  # OSError: a full disk, say
        print(f"error: {config_lib.in_flag_terms(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted. {resume_hint(argv, config.out)}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if result["diverged"]:
        print(f"error: {result['diverged']}", file=sys.stderr)
        return 3
    return 0


def resume_hint(argv, run_dir):
    """How to continue an interrupted run: its command with ``--resume --out RUN_DIR``."""
    if not run_dir or not os.path.isfile(os.path.join(run_dir, "config.json")):
        return "No run directory was written yet; rerun the same command."
    flags, skip = [], False
    for arg in (sys.argv[1:] if argv is None else argv):
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not (arg.startswith("--out=") or arg.startswith("--resume")):
            flags.append(arg)
    return (f"{run_dir} keeps its checkpoints and last backup (if any); continue with:\n"
            f"  keras-ebm train {' '.join(flags + ['--out', run_dir, '--resume'])}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt
