"""How long does the default ``python train.py`` train, against an earlier default?

    python benchmarks/bench_default_time.py [--epochs 2]

Runs ``train.py`` for ``--epochs`` epochs with each recipe below, one after the other in
fresh processes on the same machine, with evaluation and sample grids off, and measures the
CPU time each training process used (divided by its usable cores, as the frontier budget
counts it: other work on the machine does not change it) and its wall time. From the seconds
per epoch it projects each recipe's full training (its own number of epochs) and prints the
ratio of the current default to the earlier one; appends the table to RESULTS.md.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from bench_mnist import append_results, machine

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name: (train.py flags, epochs of the full run)
RECIPES = {
    "default until 2026-12-02 (uniform starts, 20 steps)": (
        ["--chain_start", "uniform", "--langevin_steps", "20"], 18),
    "current default": ([], None),
}


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def time_recipe(flags, epochs, out_dir):
    """CPU seconds (per usable core) and wall seconds of ``epochs`` epochs of training."""
    command = [sys.executable, "train.py", "--out", out_dir, "--epochs", str(epochs),
               "--evaluate", "false", "--sample_every", "0", "--verbose", "2", *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(os.path.join(out_dir, "test_metrics.json")) as f:
        fit_seconds = json.load(f)["train_seconds"]
    return cpu / usable_cores(), wall, fit_seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per recipe")
    parser.add_argument("--no_record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from keras_ebm.config import Config

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (flags, full_epochs)) in enumerate(RECIPES.items()):
            full_epochs = full_epochs or Config().epochs
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {args.epochs} epochs", flush=True)
            cpu, wall, fit = time_recipe(flags, args.epochs, os.path.join(tmp, str(i)))
            rows.append({"name": name, "flags": " ".join(flags) or "(none)",
                         "epochs": full_epochs, "cpu_per_epoch": cpu / args.epochs,
                         "fit_per_epoch": fit / args.epochs, "wall": wall})
            print(f"  {cpu / args.epochs / 60:.2f} CPU min/epoch, fit {fit / args.epochs / 60:.2f} "
                  f"wall min/epoch", flush=True)
    old, new = rows
    ratio = (new["cpu_per_epoch"] * new["epochs"]) / (old["cpu_per_epoch"] * old["epochs"])
    lines = ["| recipe | train.py flags | epochs | CPU min / epoch | fit wall min / epoch | "
             "projected training, CPU min |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | `{row['flags']}` | {row['epochs']} | "
                     f"{row['cpu_per_epoch'] / 60:.2f} | {row['fit_per_epoch'] / 60:.2f} | "
                     f"{row['cpu_per_epoch'] * row['epochs'] / 60:.1f} |")
    summary = f"current default / earlier default training time: **{ratio:.2f}**"
    print("\n".join(lines) + "\n\n" + summary)
    if args.record:
        append_results(
            f"\n## Default training time against the earlier default ({time.strftime('%Y-%m-%d %H:%M')})\n\n"
            f"Command: `python benchmarks/bench_default_time.py --epochs {args.epochs}` "
            f"(each recipe timed for {args.epochs} epochs in a fresh process, one after the "
            "other; CPU time of the training process / usable cores, which other work on the "
            f"machine does not change; full runs projected from it). Machine: {machine()}.\n\n"
            + "\n".join(lines) + f"\n\n{summary}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
