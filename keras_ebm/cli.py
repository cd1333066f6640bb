"""The ``keras-ebm`` command: ``keras-ebm train | evaluate | export | tune [flags]``.

Each subcommand is the ``main()`` of its module (``python train.py`` is ``keras-ebm train``).
"""

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

    try:
        result = experiment.run(config)
    except (DataError, experiment.RunError, OSError) as err:  # OSError: a full disk, say
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result["diverged"]:
        print(f"error: {result['diverged']}", file=sys.stderr)
        return 3
    return 0


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
