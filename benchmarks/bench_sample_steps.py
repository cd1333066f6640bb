"""How many Langevin steps should samples take? FID against validation images, per step count.

    python benchmarks/bench_sample_steps.py RUN_DIR [--steps 50 100 150 200 300 450]

For a trained run (its final weights), draws 500 samples per step count (the model's own
chain starts and noise-free refinement) and prints their classifier FID against the run's
validation images (held out from training; the test set is never used to choose), the
classes covered, the class-conditional accuracy and how much worse chains 3x as long get
(the evaluation's long-chain check); appends the table to RESULTS.md.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from bench_mnist import append_results, machine
import keras
from keras_ebm import data
from keras_ebm.evaluation import report, metrics, reference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a finished run directory (config.json, checkpoints/)")
    parser.add_argument("--steps", nargs="+", type=int, default=[50, 100, 150, 200, 300, 450])
    parser.add_argument("--no_record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    with open(os.path.join(args.run_dir, "config.json")) as f:
        config = json.load(f)
    splits = data.load_dataset(config["dataset"], config["data_file"], config["validation_size"],
                               None, config["seed"])
    judge = reference.load_reference_classifier()
    val_features = report.reference_features(judge, data.preprocess(splits.x_val).numpy())
    model = keras.saving.load_model(os.path.join(args.run_dir, "checkpoints", "last.keras"))
    labels = np.repeat(np.arange(splits.num_classes, dtype=np.int32), 50)
    lines = ["| Langevin steps + noise-free | validation FID | classes covered | conditional accuracy "
             "| FID at 3x the steps (both kinds) / FID |", "|---|---|---|---|---|"]

    def validation_fid(samples):
        return metrics.frechet_distance(report.reference_features(judge, samples), val_features)

    for steps in args.steps:
        samples = model.generate(500, steps=steps, seed=0).numpy()
        fid = validation_fid(samples)
        longer = {"refine_steps": 3 * model.refine_steps} if model.refine_steps else {}
        long_fid = validation_fid(model.generate(500, steps=3 * steps, seed=0, **longer).numpy())
        counts = np.bincount(reference.predict(judge, samples).argmax(-1), minlength=splits.num_classes)
        conditional = model.generate(len(labels), steps=steps, labels=labels, seed=0)
        accuracy = reference.label_accuracy(judge, conditional, labels)
        lines.append(f"| {steps} + {model.refine_steps} | {fid:.2f} | {int(np.sum(counts >= 10))} | "
                     f"{100 * accuracy:.1f}% | {long_fid / fid:.2f} |")
        print(lines[-1], flush=True)
    section = (f"\n## Sample steps chosen on validation data ({time.strftime('%Y-%m-%d')})\n\n"
               f"Command: `python benchmarks/bench_sample_steps.py {args.run_dir} --steps "
               f"{' '.join(map(str, args.steps))}`\n\nMachine: {machine()}. 500 unconditional "
               "samples (seed 0) per row, classifier FID against the run's 5000 validation "
               "images; 50 class-conditional samples per class.\n\n" + "\n".join(lines) + "\n")
    print(section)
    if args.record:
        append_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
