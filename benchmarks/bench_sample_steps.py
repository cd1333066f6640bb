"""How many Langevin steps should samples take? FID against validation images, per step count.

    python benchmarks/bench_sample_steps.py RUN_DIR [--steps 50 100 150 200 300 450]
        [--refine_steps 0 25 50] [--seeds 0 1 2]

For a trained run (its final weights), draws 500 samples per setting and sample seed (the
model's own chain starts, then noise-free refinement: the model's own count unless
``--refine_steps`` lists others) and prints their classifier FID against the run's
validation images (held out from training; the test set is never used to choose): the mean
and spread over the sample seeds and the ratio to its floor, built the same way (500 real
training images against the same validation images, 50 random subsets). Beside it: the
classes covered (the fewest over the seeds), the share of the most frequent class (a
spurious attractor shows as one class taking far more than a tenth), the class-conditional
accuracy and how much worse chains 3x as long get (the ratio of the mean FIDs over the same
sample seeds, and the classes they cover: the evaluation's long-chain check). Appends the table to RESULTS.md.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from bench_mnist import machine, publish
import keras
from keras_ebm import data
from keras_ebm.evaluation import report, reference


CONDITIONAL_SEED = 100  # not one of the unconditional samples' seeds: no shared noise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a finished run directory (config.json, checkpoints/)")
    parser.add_argument("--steps", nargs="+", type=int, default=[50, 100, 150, 200, 300, 450])
    parser.add_argument("--refine_steps", nargs="+", type=int, default=None,
                        help="noise-free step counts to try (default: the model's own)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="sample seeds per setting (the evaluation's: 0 1 2)")
    parser.add_argument("--no_record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    with open(os.path.join(args.run_dir, "config.json")) as f:
        config = json.load(f)
    splits = data.load_dataset(config["dataset"], config["data_file"], config["validation_size"],
                               None, config["seed"])
    judge = reference.load_reference_classifier()
    val_features = report.reference_features(judge, data.preprocess(splits.x_val).numpy())
    floors = report.real_floor(judge, data.preprocess(splits.x_train).numpy(), val_features, 500)
    floor = float(np.mean(floors))
    model = keras.saving.load_model(os.path.join(args.run_dir, "checkpoints", "last.keras"))
    refine_counts = args.refine_steps or [model.refine_steps]
    labels = np.repeat(np.arange(splits.num_classes, dtype=np.int32), 50)
    lines = [f"| Langevin steps + noise-free | validation FID | FID / floor ({floor:.2f}) | "
             "classes covered | most frequent class | conditional accuracy | conditional FID / floor "
             "| FID at 3x the steps (both kinds) / FID (classes covered) |", "|---|---|---|---|---|---|---|---|"]

    def judged(samples):  # the evaluation's judge: FID, label counts, classes covered
        return report._judge(judge, samples, val_features, splits.num_classes)

    for refine in refine_counts:
        for steps in args.steps:
            fids, long_fids, shares, covered, long_covered = [], [], [], [], []
            for seed in args.seeds:
                fid, counts, classes = judged(model.generate(500, steps=steps, seed=seed,
                                                             refine_steps=refine).numpy())
                fids.append(fid)
                shares.append(counts.max() / counts.sum())
                covered.append(classes)
                long_fid, _, long_classes = judged(model.generate(
                    500, steps=3 * steps, seed=seed, refine_steps=3 * refine).numpy())
                long_fids.append(long_fid)
                long_covered.append(long_classes)
            conditional = model.generate(len(labels), steps=steps, labels=labels,
                                         seed=CONDITIONAL_SEED, refine_steps=refine)
            accuracy = reference.label_accuracy(judge, conditional, labels)
            conditional_fid, _, _ = judged(conditional.numpy())
            spread = np.std(fids, ddof=1) if len(fids) > 1 else 0.0
            lines.append(f"| {steps} + {refine} | {np.mean(fids):.2f} ± {spread:.2f} "
                         f"| {np.mean(fids) / floor:.2f} | {min(covered)} | {100 * np.mean(shares):.1f}% "
                         f"| {100 * accuracy:.1f}% | {conditional_fid / floor:.2f} "
                         f"| {np.mean(long_fids) / np.mean(fids):.2f} ({min(long_covered)}) |")
            print(lines[-1], flush=True)
    flags = f" --steps {' '.join(map(str, args.steps))}"
    if args.refine_steps:
        flags += f" --refine_steps {' '.join(map(str, args.refine_steps))}"
    if args.seeds != [0, 1, 2]:
        flags += f" --seeds {' '.join(map(str, args.seeds))}"
    section = (f"\n## Sample steps chosen on validation data ({time.strftime('%Y-%m-%d')})\n\n"
               f"Command: `python benchmarks/bench_sample_steps.py {args.run_dir}{flags}`\n\n"
               f"Machine: {machine()}. Per row, 500 unconditional samples for each sample seed "
               f"({', '.join(map(str, args.seeds))}): classifier FID against the run's "
               f"{len(splits.x_val)} validation images (mean ± sample std over the seeds) and its "
               f"ratio to the floor (500 training images against the same validation images, "
               f"{floor:.2f} ± {np.std(floors, ddof=1):.2f} over {len(floors)} subsets); 50 class-conditional "
               f"samples per class (seed {CONDITIONAL_SEED}), scored for their labels and, pooled, by the same FID; "
               "at 3x the steps: the ratio of the mean FIDs over the same sample seeds, and the fewest classes covered."
               "\n\n" + "\n".join(lines) + "\n")
    publish(section, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
