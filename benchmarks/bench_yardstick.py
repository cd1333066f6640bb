"""The yardstick itself: the judge's accuracy and the classifier-FID floors it gives.

    python benchmarks/bench_yardstick.py

Prints and records (benchmarks/RESULTS.md) the shipped reference classifier's test
accuracy and three "real vs real" FIDs with its features: the test set's first half
against its second (writer-ordered, the floor used before 2026-12-02), random halves
of the test set, and the floor the evaluation reports now (500 held-out validation
images against the 10000 test images, as 500 samples are scored; 10 random subsets).
"""

import time

import numpy as np

import keras_ebm  # noqa: F401  (first: sets TensorFlow's options)
from bench_mnist import append_results, machine
from keras_ebm import data
from keras_ebm.evaluation import metrics, reference, report


def main():
    splits = data.load_dataset("mnist", validation_size=5000, seed=0)
    judge = reference.load_reference_classifier()
    test_x = data.preprocess(splits.x_test).numpy()
    accuracy = reference.label_accuracy(judge, test_x, splits.y_test)
    test = report.reference_features(judge, test_x)
    ordered = metrics.frechet_distance(test[:5000], test[5000:])
    rng = np.random.default_rng(0)
    halves = []
    for _ in range(10):
        order = rng.permutation(len(test))
        halves.append(metrics.frechet_distance(test[order[:5000]], test[order[5000:]]))
    floors = report.real_floor(judge, data.preprocess(splits.x_val).numpy(), test, 500,
                                 repeats=10)
    section = (
        f"\n## The yardstick: judge and FID floors ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_yardstick.py`\n\nMachine: {machine()}.\n\n"
        "| quantity | value |\n|---|---|\n"
        f"| reference classifier (judge) test accuracy | {100 * accuracy:.2f}% |\n"
        f"| FID, test images 1-5000 vs 5001-10000 (writer-ordered halves; the old floor) | {ordered:.2f} |\n"
        f"| FID, random halves of the test set, 5000 vs 5000 (10 splits) | {np.mean(halves):.2f} ± {np.std(halves, ddof=1):.2f} |\n"
        f"| FID floor as reported now: 500 held-out validation images vs the 10000 test images (10 subsets) | {np.mean(floors):.2f} ± {np.std(floors, ddof=1):.2f} (min {min(floors):.2f}, max {max(floors):.2f}) |\n\n"
        "Samples are scored exactly like the last row (500 per seed against the 10000 test images), "
        "so FID / floor is read against it.\n")
    append_results(section)
    print(section)


if __name__ == "__main__":
    main()
