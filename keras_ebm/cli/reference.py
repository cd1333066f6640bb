"""``python -m keras_ebm.cli.reference [PATH]``: train the MNIST reference classifier that
judges samples (:mod:`keras_ebm.evaluation.reference`) and save it, without its optimizer,
to ``PATH`` (default: the copy that ships in the package)."""

import sys

from keras_ebm import data, files
from keras_ebm.evaluation.reference import PATH, train_reference_classifier


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else PATH
    splits = data.load_dataset("mnist", validation_size=0)
    judge, accuracy, _ = train_reference_classifier(splits)
    with files.atomic_path(path, suffix=".keras") as tmp:
        judge.save(tmp)
    print(f"Reference classifier test accuracy {accuracy:.4f}; saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
