"""Train a JEM (default) or an unconditional EBM on MNIST.

    python train.py                      # the default JEM on bundled MNIST
    python train.py --model ebm --epochs 5 --out runs/my-ebm
    python train.py --help               # every flag
"""

import sys

from keras_ebm import config as config_lib
from keras_ebm import experiment
from keras_ebm.data import DataError


def main(argv=None):
    try:
        config = config_lib.from_args(argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = experiment.run(config)
    except (DataError, experiment.RunError, OSError) as err:  # OSError: a full disk, say
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result["diverged"]:
        print(f"error: {result['diverged']}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
