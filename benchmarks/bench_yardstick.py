"""The yardstick itself: the judge's accuracy and the classifier-FID floors it gives.

    python benchmarks/bench_yardstick.py [--seeds 1 2 3 4] [--repeats 200]
        [--cells benchmarks/frontier benchmarks/frontier/paired-alpha5]

Prints and records (benchmarks/RESULTS.md):

- the shipped reference classifier's test accuracy and three "real vs real" FIDs with its
  features: the test set's first half against its second (writer-ordered, the floor used
  before 2026-12-02), random halves of the test set, and the floor the evaluation reports
  (500 held-out validation images against the 10000 test images, as 500 samples are scored);
- per training seed (each has its own validation split), that floor over ``--repeats`` random
  subsets beside the same floor from images the judge never saw (500 test images against
  the other 9500: the judge trained on all 60000 training images, validation included);
- the recorded frontier cells' FID / floor, re-read against their seed's many-subset floor
  (a cell's own floor averaged 5 subsets until 2026-12-03).
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

import keras_ebm  # noqa: F401  (first: sets TensorFlow's options)
from bench_frontier import mean_std
from bench_mnist import append_results, machine
from keras_ebm import data
from keras_ebm.evaluation import metrics, reference, report

NUM_SAMPLES = 500


def judge_and_halves(judge):
    splits = data.load_dataset("mnist", validation_size=5000, seed=0)
    test_x = data.preprocess(splits.x_test).numpy()
    accuracy = reference.label_accuracy(judge, test_x, splits.y_test)
    test = report.reference_features(judge, test_x)
    ordered = metrics.frechet_distance(test[:5000], test[5000:])
    rng = np.random.default_rng(0)
    halves = []
    for _ in range(10):
        order = rng.permutation(len(test))
        halves.append(metrics.frechet_distance(test[order[:5000]], test[order[5000:]]))
    return (f"| reference classifier (judge) test accuracy | {100 * accuracy:.2f}% |\n"
            f"| FID, test images 1-5000 vs 5001-10000 (writer-ordered halves; the old floor) | "
            f"{ordered:.2f} |\n"
            f"| FID, random halves of the test set, 5000 vs 5000 (10 splits) | "
            f"{mean_std(halves)} |\n")


def seed_floors(judge, seed, repeats):
    """(floor as the evaluation builds it, the same from judge-unseen test images) over
    ``repeats`` subsets each, for the validation split of training seed ``seed``."""
    splits = data.load_dataset("mnist", validation_size=5000, seed=seed)
    test_x = data.preprocess(splits.x_test).numpy()
    test = report.reference_features(judge, test_x)
    floors = report.real_floor(judge, data.preprocess(splits.x_val).numpy(), test, NUM_SAMPLES,
                               repeats=repeats, seed=seed)
    rng = np.random.default_rng(seed)
    unseen = []
    for _ in range(repeats):
        order = rng.permutation(len(test))
        unseen.append(metrics.frechet_distance(test[order[:NUM_SAMPLES]],
                                               test[order[NUM_SAMPLES:]]))
    return floors, unseen


def reread_cells(directories, floors):
    """Rows (recipe, budget, seeds, recorded ratio, ratio against the seed's floor)."""
    groups = {}
    for directory in directories:
        for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
            with open(path) as f:
                cell = json.load(f)
            if cell["seed"] not in floors:
                continue
            key = (os.path.relpath(directory), cell["recipe"], cell["budget"])
            groups.setdefault(key, []).append(
                (cell["seed"], cell["fid_ratio"], cell["fid"] / floors[cell["seed"]]))
    rows = []
    for (directory, recipe, budget), cells in sorted(groups.items()):
        seeds = ",".join(str(s) for s, _, _ in cells)
        reread = [r for _, _, r in cells]
        per_seed = ", ".join(f"{r:.2f}" for r in reread)
        rows.append(f"| `{directory}` | {recipe} | {budget:g} | {seeds} | "
                    f"{mean_std([r for _, r, _ in cells])} | {mean_std(reread)} | {per_seed} |")
    return rows


def main(args):
    judge = reference.load_reference_classifier()
    table = judge_and_halves(judge)
    floors = {}
    for seed in args.seeds:
        built, unseen = seed_floors(judge, seed, args.repeats)
        floors[seed] = float(np.mean(built))
        table += (f"| seed {seed}: FID floor as reported, 500 validation images vs the 10000 test "
                  f"images ({args.repeats} subsets; standard error) | {mean_std(built)} "
                  f"({np.std(built, ddof=1) / np.sqrt(args.repeats):.2f}) |\n"
                  f"| seed {seed}: the same from images the judge never saw, 500 test images vs "
                  f"the other 9500 ({args.repeats} subsets) | {mean_std(unseen)} "
                  f"({np.std(unseen, ddof=1) / np.sqrt(args.repeats):.2f}) |\n")
        print(table.splitlines()[-2], table.splitlines()[-1], sep="\n", flush=True)
    rows = reread_cells(args.cells, floors)
    section = (
        f"\n## The yardstick: judge and FID floors ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_yardstick.py {' '.join(sys.argv[1:])}`\n\n"
        f"Machine: {machine()}.\n\n| quantity | value (mean ± std over subsets) |\n|---|---|\n"
        + table +
        "\nRecorded frontier cells, FID / floor with the cell's own floor (5 subsets) and "
        f"re-read against its seed's {args.repeats}-subset floor above (the same FID of the "
        "cell's samples; mean ± std over the seeds):\n\n"
        "| cells | recipe | budget (CPU min) | seeds | FID / floor, recorded | FID / floor, "
        "re-read | re-read per seed |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    append_results(section)
    print(section)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4],
                        help="training seeds whose validation splits give floors")
    parser.add_argument("--repeats", type=int, default=200, help="random subsets per floor")
    parser.add_argument("--cells", nargs="*", default=["benchmarks/frontier",
                                                        "benchmarks/frontier/paired-alpha5"],
                        help="directories of recorded frontier cells to re-read")
    main(parser.parse_args())
