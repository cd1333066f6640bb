"""Should p(y|x) be temperature-scaled? Decided on validation data only.

    python benchmarks/bench_calibration.py RUN_DIR [RUN_DIR ...] [--no-record]

For each JEM run directory: the network's logits (temperature 1, whatever the run's
calibration) on the run's own validation split, split into two random halves; a temperature
is fitted on one half (``fit_temperature``, as ``JEM.calibrate`` does) and the ECE of the
other half is read at temperature 1 and calibrated, both ways round. The test set is not
touched. Records one row per run in ``benchmarks/RESULTS.md``.
"""

import argparse
import json
import os
import sys

import numpy as np

import keras_ebm  # noqa: F401  (first: sets TensorFlow's options)
from bench_frontier import validation_images
from bench_mnist import machine, publish
from keras_ebm.evaluation import metrics, reference
from keras_ebm.export import load_for_export
from keras_ebm.models.calibration import fit_temperature


def two_fold(logits, labels, seed=0):
    """``(ECE at temperature 1, ECE calibrated)`` of held-out halves, averaged over the two
    ways round; each half's temperature is fitted on the other half."""
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = order[:len(labels) // 2], order[len(labels) // 2:]
    plain, calibrated = [], []
    for fit, held in (halves, halves[::-1]):
        temperature = fit_temperature(logits[fit], labels[fit])
        plain.append(metrics.expected_calibration_error(metrics.softmax(logits[held]),
                                                        labels[held]))
        calibrated.append(metrics.expected_calibration_error(
            metrics.softmax(logits[held] / temperature), labels[held]))
    return float(np.mean(plain)), float(np.mean(calibrated))


def validation_logits(run_dir):
    """The run's network logits and labels on its own validation split."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    if not config.get("validation_size"):
        raise ValueError(f"{run_dir} was trained without a validation split")
    model, _ = load_for_export(run_dir)
    images, labels = validation_images(config)
    return reference.predict(model, images).astype(np.float64), labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="JEM run directories")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)
    rows = []
    for run_dir in args.run_dirs:
        try:
            logits, labels = validation_logits(run_dir)
        except (OSError, ValueError) as err:
            parser.error(str(err))
        plain, calibrated = two_fold(logits, labels)
        rows.append(f"| {os.path.basename(os.path.normpath(run_dir))} | {len(labels)} | "
                    f"{100 * plain:.2f}% | {100 * calibrated:.2f}% |")
        print(rows[-1], flush=True)
    publish("\n## Temperature scaling decided on validation data: two-fold ECE\n\n"
            f"Command: `python benchmarks/bench_calibration.py {' '.join(sys.argv[1:])}`. "
            f"Machine: {machine()}. Each run's validation split in two random halves; a "
            "temperature fitted on one half, the ECE (15 bins) of the other read at "
            "temperature 1 and calibrated, both ways round, averaged. No test image used.\n\n"
            "| run | validation images | ECE at temperature 1 | ECE calibrated |\n"
            "|---|---|---|---|\n" + "\n".join(rows) + "\n", record=args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
