"""The ``keras-ebm`` command: ``keras-ebm train | evaluate | export | tune [flags]``.

Each subcommand is the ``main()`` of its module (``python train.py`` is ``keras-ebm train``).
"""

import os
import signal
import sys

COMMANDS = {
    "train": "train an EBM, JEM or RBM into a run directory",
    "evaluate": "calibration, OOD detection and sample quality of a trained model",
    "export": "export a trained model as a SavedModel with named endpoints",
    "tune": "search JEM hyperparameters with keras-tuner",
}


def train(argv=None):
    """``keras-ebm train``: parse flags, run, map library errors to exit codes."""
    from keras_ebm import config as config_lib

    try:
        config = config_lib.from_args(argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from keras_ebm import experiment
    from keras_ebm.data import DataError

    previous = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop: like Ctrl-C
    try:
        result = experiment.run(config)
    except (DataError, experiment.RunError, OSError) as err:  # OSError: a full disk, say
        print(f"error: {err}", file=sys.stderr)
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = "usage: keras-ebm {" + ",".join(COMMANDS) + "} [flags]  (keras-ebm COMMAND --help)\n\n"
    usage += "\n".join(f"  {name:<9} {text}" for name, text in COMMANDS.items())
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n{usage}", file=sys.stderr)
        return 2
    if command == "train":
        return train(rest)
    if command == "evaluate":
        from keras_ebm.evaluate import main as run
    elif command == "export":
        from keras_ebm.export import main as run
    else:
        from keras_ebm.tune import main as run
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
