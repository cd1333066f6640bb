"""How far apart are the OOD sets from digits at all? A non-parametric yardstick, per set and
per source digit.

    python benchmarks/bench_ood_baseline.py [--num_test 2000]
    python benchmarks/bench_ood_baseline.py --run_dir RUN_DIR   # a trained JEM beside it

Scores every test image and every image of each OOD set (the evaluation's own sets, built
from the same test images) by minus its distance to the nearest of the 55000 training images
(the training split of the default run; a 1-nearest-neighbour density estimate that has seen
every training digit) and prints the AUROC per set, with the share of OOD images that are
closer to a training image than the median test image is. Sets where that share is large
overlap with digits in pixel space (a mirrored 0, 1 or 8 is a digit), which bounds what any
density score can reach there.

The flipped and rotated sets are made one image per test image, so each OOD image has a
source digit: a second table gives their AUROC per source digit (all test images against the
OOD images made from that digit). With ``--run_dir``, the run's final weights are scored the
way the evaluation scores them (each set's score is the one with the best AUROC on the whole
set, so the per-digit rows do not pick a score of their own). Appends both tables to RESULTS.md.
"""

import argparse
import os
import sys
import time

import numpy as np

from bench_mnist import machine, publish

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from keras_ebm import data  # noqa: E402
from keras_ebm.evaluation import metrics, ood  # noqa: E402

BY_SOURCE_DIGIT = ("flipped_horizontal", "flipped_vertical", "rotated_90")


def model_scores(run_dir, images, labels):
    """Per-image scores of a run's final weights on the test images and on each OOD set:
    ``{"test": {score: values}, set: {score: values}}``."""
    from keras_ebm.evaluation.report import ood_scores
    from keras_ebm.export import load_for_export

    model, pad = load_for_export(run_dir)
    test = data.preprocess(images, pad).numpy()
    scores = {"test": ood_scores(model, test)}
    for name, ood_images in ood.ood_sets(test, labels).items():
        scores[name] = ood_scores(model, ood_images)
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_test", type=int, default=2000, help="test images (and OOD images per set)")
    parser.add_argument("--run_dir", help="also score this run's final weights (a JEM or EBM run)")
    parser.add_argument("--no_record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    if args.run_dir and not os.path.isfile(os.path.join(args.run_dir, "config.json")):
        parser.error(f"--run_dir {args.run_dir} is not a run directory (no config.json)")
    splits = data.load_dataset("mnist", validation_size=5000, seed=0)
    train = data.preprocess(splits.x_train).numpy()
    labels = splits.y_test[:args.num_test]
    test = data.preprocess(splits.x_test[:args.num_test]).numpy()
    in_distance = metrics.nearest_distances(test, train)
    typical = np.median(in_distance)
    scores = model_scores(args.run_dir, splits.x_test[:args.num_test], labels) if args.run_dir else None
    model_column = " | AUROC of the run (its best score)" if scores else ""
    lines = ["| OOD set | AUROC of -(nearest-training-image distance) | OOD images closer to a "
             f"training image than the median test image{model_column} |",
             "|---|---|---|" + ("---|" if scores else "")]
    by_digit = {}
    for name, images in ood.ood_sets(test, labels).items():
        out_distance = metrics.nearest_distances(images, train)
        row = (f"| {name} | {metrics.auroc(-in_distance, -out_distance):.3f} | "
               f"{100 * np.mean(out_distance < typical):.1f}% |")
        best = None
        if scores:
            aurocs = {s: metrics.auroc(scores["test"][s], scores[name][s]) for s in scores["test"]}
            best = max(aurocs, key=aurocs.get)
            row += f" {aurocs[best]:.3f} ({best}) |"
        lines.append(row)
        print(row, flush=True)
        if name in BY_SOURCE_DIGIT:
            by_digit[name], kept = [], np.ones(len(labels), bool)
            for digit in range(splits.num_classes):
                mask = labels == digit
                nearest = metrics.auroc(-in_distance, -out_distance[mask])
                kept &= ~mask if nearest < 0.5 else True
                cell = f"{nearest:.2f}"
                if scores:
                    cell += f" / {metrics.auroc(scores['test'][best], scores[name][best][mask]):.2f}"
                by_digit[name].append(cell)
            # Without the source digits whose transformed images the yardstick finds more
            # typical than test digits (they are digits: a mirrored 1 is a 1).
            cell = f"{metrics.auroc(-in_distance, -out_distance[kept]):.3f}"
            if scores:
                cell += f" / {metrics.auroc(scores['test'][best], scores[name][best][kept]):.3f}"
            dropped = [str(d) for d in range(splits.num_classes) if not kept[labels == d].any()]
            by_digit[name].append(f"{cell} (without {', '.join(dropped)})" if dropped
                                  else f"{cell} (every digit)")
    what = "nearest-neighbour" + (" / run" if scores else "")
    digit_lines = ["| OOD set (" + what + ") | " + " | ".join(map(str, range(splits.num_classes)))
                   + " | all digits the yardstick tells apart (AUROC >= 0.5) |",
                   "|---|" + "---|" * (splits.num_classes + 1)]
    digit_lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in by_digit.items()]
    print("\n".join(digit_lines))
    command = f"python benchmarks/bench_ood_baseline.py --num_test {args.num_test}"
    command += f" --run_dir {args.run_dir}" if args.run_dir else ""
    run_text = (f" Run: the final weights of `{args.run_dir}`, scored with the evaluation's "
                "log p(x), max p(y|x), input-gradient norm and largest logit; per set, the score "
                "with the best AUROC on the whole set." if scores else "")
    section = (f"\n## OOD sets against a nearest-neighbour yardstick ({time.strftime('%Y-%m-%d')})\n\n"
               f"Command: `{command}`. Machine: {machine()}. {args.num_test} test images and as "
               "many per OOD set (the evaluation's sets); nearest-neighbour score: minus the L2 "
               f"distance to the nearest of the 55000 training images (median for test images: "
               f"{typical:.2f}).{run_text}\n\n" + "\n".join(lines) + "\n\nAUROC per source digit "
               f"({what}): all {args.num_test} test images against the OOD images made from "
               "test images of that digit; last column: the set without the OOD images made from "
               "digits whose transformed images the yardstick finds more typical than test "
               "digits (they are digits themselves: a mirrored 1 is a 1).\n\n" + "\n".join(digit_lines) + "\n")
    publish(section, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
