"""How far apart are the OOD sets from digits at all? A non-parametric yardstick.

    python benchmarks/bench_ood_baseline.py [--num_test 2000]

Scores every test image and every image of each OOD set (the evaluation's own sets, built
from the same test images) by minus its distance to the nearest of the 55000 training images
(the training split of the default run; a 1-nearest-neighbour density estimate that has seen
every training digit) and prints the AUROC per set, with the share of OOD images that are
closer to a training image than the median test image is. Sets where that share is large
overlap with digits in pixel space (a mirrored 0, 1 or 8 is a digit), which bounds what any
density score can reach there. Appends the table to RESULTS.md.
"""

import argparse
import os
import sys
import time

import numpy as np

from bench_mnist import append_results, machine

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from keras_ebm import data  # noqa: E402
from keras_ebm.evaluation import metrics, ood  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_test", type=int, default=2000, help="test images (and OOD images per set)")
    parser.add_argument("--no_record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    splits = data.load_dataset("mnist", validation_size=5000, seed=0)
    train = data.preprocess(splits.x_train).numpy()
    test = data.preprocess(splits.x_test[:args.num_test]).numpy()
    in_distance = metrics.nearest_distances(test, train)
    typical = np.median(in_distance)
    lines = ["| OOD set | AUROC of -(nearest-training-image distance) | OOD images closer to a "
             "training image than the median test image |", "|---|---|---|"]
    for name, images in ood.ood_sets(test, splits.y_test[:args.num_test]).items():
        out_distance = metrics.nearest_distances(images, train)
        lines.append(f"| {name} | {metrics.auroc(-in_distance, -out_distance):.3f} | "
                     f"{100 * np.mean(out_distance < typical):.1f}% |")
        print(lines[-1], flush=True)
    section = (f"\n## OOD sets against a nearest-neighbour yardstick ({time.strftime('%Y-%m-%d')})\n\n"
               f"Command: `python benchmarks/bench_ood_baseline.py --num_test {args.num_test}`. "
               f"Machine: {machine()}. {args.num_test} test images and as many per OOD set (the "
               "evaluation's sets); score: minus the L2 distance to the nearest of the 55000 "
               f"training images (median for test images: {typical:.2f}).\n\n"
               + "\n".join(lines) + "\n")
    print(section)
    if args.record:
        append_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
