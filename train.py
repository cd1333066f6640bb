"""Train a JEM (default) or an unconditional EBM on MNIST; the same as ``keras-ebm train``.

    python train.py                      # the default JEM on bundled MNIST
    python train.py --model ebm --epochs 5 --out runs/my-ebm
    python train.py --help               # every flag, grouped, with its default
"""

import sys

from keras_ebm.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
