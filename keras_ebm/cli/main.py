"""The ``keras-ebm`` command: ``keras-ebm train | evaluate | export | tune [flags]``.

Each subcommand is the ``main()`` of its module in :mod:`keras_ebm.cli` (``python train.py`` is
``keras-ebm train``).
"""

import importlib
import sys

COMMANDS = {
    "train": "train an EBM, JEM or RBM into a run directory",
    "evaluate": "calibration, OOD detection and sample quality of a trained model",
    "export": "export a trained model as a SavedModel with named endpoints",
    "tune": "search JEM hyperparameters with keras-tuner",
}


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
    return importlib.import_module(f"keras_ebm.cli.{command}").main(rest)


if __name__ == "__main__":
    sys.exit(main())
