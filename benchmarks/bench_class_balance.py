"""Does every class keep its place? Per-class energies and sample shares of trained JEMs.

    python benchmarks/bench_class_balance.py RUN_DIR [RUN_DIR ...] [--checkpoint last.keras]
        [--seeds 0 1] [--steps 50]

A JEM loses a class from its samples when its training chains stop reaching that class's
images: their energy then sinks until the L2 regulariser balances the contrastive term
(at ``-1 / (2 reg_weight)``) and sampling chains cannot enter the well. Per run directory
this prints the mean energy of each class's validation images (held out from training), the
median minus the lowest (the run's ``val_class_energy_gap``), the run's ``reg`` (mean E^2 of
real and sampled images) after each of its first epochs, and the judge's label counts over
500 unconditional samples per sample seed (the model's own chain starts, ``--steps``
Langevin steps and its noise-free refinement). Appends the table to RESULTS.md.
"""

import argparse
import csv
import json
import os
import sys
import time

import numpy as np

from bench_mnist import machine, publish
import keras
from keras_ebm import data
from keras_ebm.evaluation import reference
from keras_ebm.training import callbacks


def class_energies(model, images, labels):
    """Mean energy of each class's images, as training's ``ClassEnergyWatch`` computes it."""
    watch = callbacks.ClassEnergyWatch(images, labels)
    watch.set_model(model)
    return list(watch.class_energies().values())


def reg_per_epoch(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [float(row["reg"]) for row in csv.DictReader(f)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="finished JEM run directories")
    parser.add_argument("--checkpoint", default="last.keras", help="file in checkpoints/")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="sample seeds")
    parser.add_argument("--steps", type=int, default=50, help="Langevin steps per sample chain")
    parser.add_argument("--no_record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        for name in ("config.json", "metrics.csv", os.path.join("checkpoints", args.checkpoint)):
            if not os.path.isfile(os.path.join(run_dir, name)):
                parser.error(f"{run_dir} has no {name}: pass finished JEM run directories")
    judge = reference.load_reference_classifier()
    lines = ["| run | epochs | reg after epochs 1, 2, 3 | energy of validation images per class "
             "0-9 | median - lowest | labels of 500 samples per seed, classes 0-9 |",
             "|---|---|---|---|---|---|"]
    for run_dir in args.run_dirs:
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
        splits = data.load_dataset(config["dataset"], config["data_file"],
                                   config["validation_size"], None, config["seed"])
        model = keras.saving.load_model(os.path.join(run_dir, "checkpoints", args.checkpoint))
        energies = class_energies(model, data.preprocess(splits.x_val).numpy(), splits.y_val)
        counts = []
        for seed in args.seeds:
            samples = model.generate(500, steps=args.steps, seed=seed)
            labels = reference.predict(judge, samples.numpy()).argmax(-1)
            counts.append(np.bincount(labels, minlength=splits.num_classes).tolist())
        reg = reg_per_epoch(run_dir)
        lines.append(f"| `{run_dir}` | {len(reg)} "
                     f"| {', '.join(f'{r:.2f}' for r in reg[:3])} "
                     f"| {' / '.join(f'{e:.2f}' for e in energies)} "
                     f"| {np.median(energies) - min(energies):.2f} "
                     f"| {'; '.join(' '.join(map(str, c)) for c in counts)} |")
        print(lines[-1], flush=True)
    flags = "" if args.checkpoint == "last.keras" else f" --checkpoint {args.checkpoint}"
    flags += "" if args.seeds == [0, 1] else f" --seeds {' '.join(map(str, args.seeds))}"
    flags += "" if args.steps == 50 else f" --steps {args.steps}"
    section = (f"\n## Class balance: per-class energies and sample shares ({time.strftime('%Y-%m-%d')})\n\n"
               f"Command: `python benchmarks/bench_class_balance.py {' '.join(args.run_dirs)}{flags}`\n\n"
               f"Machine: {machine()}. Weights: checkpoints/{args.checkpoint} of each run. Energies: "
               f"mean E(x) of each class's validation images (held out from training). Samples: "
               f"500 per sample seed ({', '.join(map(str, args.seeds))}), the model's chain starts, "
               f"{args.steps} Langevin steps and its noise-free refinement, labelled by the "
               "reference classifier.\n\n" + "\n".join(lines) + "\n")
    publish(section, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
