"""How long does the default ``python train.py`` train, against an earlier default?

    python benchmarks/bench_default_time.py [--epochs 1 3]

Runs ``train.py`` with each recipe below for each of two numbers of epochs, in fresh
processes one after the other on the same machine, evaluation off, and measures the CPU time
each process used (divided by its usable cores, as the frontier budget counts it). Run it
with nothing else on the machine: TensorFlow's threads spin while they wait, so a shared
machine inflates CPU time. The difference between the two runs is the cost of the
extra epochs; the rest is the recipe's fixed cost (start-up, fitting chain starts, the final
sample grids). From the two it projects each recipe's full run (its own number of epochs)
and prints the ratio of the current default to the earlier one; appends the table to
RESULTS.md.
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


def time_recipe(flags, epochs, out_dir):
    from keras_ebm.training.callbacks import usable_cores  # the budget's own count

    """CPU seconds (per usable core), wall seconds and fit seconds of a run of ``epochs``."""
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
    parser.add_argument("--epochs", type=int, nargs=2, default=[1, 3],
                        help="the two numbers of epochs timed per recipe")
    parser.add_argument("--no_record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from keras_ebm.config import Config

    few, many = sorted(args.epochs)
    if not 0 < few < many:
        parser.error(f"--epochs needs two different positive numbers, got {args.epochs}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (flags, full_epochs)) in enumerate(RECIPES.items()):
            full_epochs = full_epochs or Config().epochs
            cpu = {}
            for epochs in (few, many):
                print(f"[{time.strftime('%H:%M:%S')}] {name}: {epochs} epochs", flush=True)
                cpu[epochs] = time_recipe(flags, epochs, os.path.join(tmp, f"{i}-{epochs}"))[0]
            per_epoch = (cpu[many] - cpu[few]) / (many - few)
            fixed = cpu[few] - few * per_epoch
            rows.append({"name": name, "flags": " ".join(flags) or "(none)", "epochs": full_epochs,
                         "per_epoch": per_epoch, "fixed": fixed,
                         "projected": fixed + full_epochs * per_epoch})
            print(f"  {per_epoch / 60:.2f} CPU min per epoch, {fixed / 60:.2f} fixed", flush=True)
    old, new = rows
    ratio = new["projected"] / old["projected"]
    lines = ["| recipe | train.py flags | epochs | CPU min per epoch | fixed CPU min | "
             "projected run, CPU min |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | `{row['flags']}` | {row['epochs']} | "
                     f"{row['per_epoch'] / 60:.2f} | {row['fixed'] / 60:.2f} | "
                     f"{row['projected'] / 60:.1f} |")
    summary = f"current default / earlier default training time: **{ratio:.2f}**"
    print("\n".join(lines) + "\n\n" + summary)
    if args.record:
        append_results(
            "\n## Default training time against the earlier default "
            f"({time.strftime('%Y-%m-%d %H:%M')})\n\n"
            f"Command: `python benchmarks/bench_default_time.py --epochs {few} {many}` "
            f"(each recipe run for {few} and for {many} epochs in fresh processes, one after "
            "the other, evaluation off; CPU time of the training process / usable cores, with "
            "nothing else running (TensorFlow's threads spin while they wait, so a shared "
            "machine inflates it); per-epoch and fixed cost from the two, "
            f"full runs projected from them). Machine: {machine()}.\n\n"
            + "\n".join(lines) + f"\n\n{summary}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
