"""``python -m keras_ebm.cli.reference [PATH]``: train the MNIST reference classifier that
judges samples (:mod:`keras_ebm.evaluation.reference`) and save it, without its optimizer,
to ``PATH`` (default: the copy that ships in the package)."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_ebm.cli.reference",
        description="Train the MNIST reference classifier that judges samples (deterministic).")
    parser.add_argument("path", nargs="?", default=None,
                        help="the .keras file to write (default: the copy that ships in the package)")
    args = parser.parse_args(argv)
    from keras_ebm import data, files  # after parsing: --help stays quick
    from keras_ebm.evaluation.reference import PATH, train_reference_classifier

    path = args.path or PATH
    splits = data.load_dataset("mnist", validation_size=0)
    judge, accuracy, _ = train_reference_classifier(splits)
    with files.atomic_path(path, suffix=".keras") as tmp:
        judge.save(tmp)
    print(f"Reference classifier test accuracy {accuracy:.4f}; saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
