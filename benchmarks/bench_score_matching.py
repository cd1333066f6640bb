"""MNIST without MCMC in training: denoising score matching (one energy scaled per noise
level, or a noise-conditional energy) against the contrastive-divergence EBM, at equal
training compute.

    python benchmarks/bench_score_matching.py --budget_minutes 10 --seed 1
    python benchmarks/bench_score_matching.py --budget_minutes 0.2 --subset 2000  # a smoke run

Each trainer runs ``train.py`` in its own process into
``benchmarks/runs/score-matching/<trainer>-b<budget>-s<seed>`` with ``--budget_minutes``
(process CPU time / cores, so both get the same compute). The number of sampling steps of
each is then chosen by the FID of 500 samples against 500 validation images (never the test
set), and the final weights (``checkpoints/last.keras``) are scored by the project's
evaluation (:func:`keras_ebm.evaluation.report.evaluate_model`: FID against the test set over
3 sampling seeds and its real floor, label coverage, the 3x-chain check, OOD AUROC). The
table and the command are appended to ``benchmarks/RESULTS.md``, and each cell's figures are
recorded in ``benchmarks/score_matching/<trainer>-b<budget>-s<seed>.json``.

    python benchmarks/bench_score_matching.py --table --budget_minutes 5  # seeds aggregated

``--table`` trains nothing: it averages the recorded cells of one budget over their seeds
(cells of different CPUs are never averaged) and appends that table to ``RESULTS.md``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import bench_frontier
from bench_frontier import mean_std, processor
from bench_mnist import HERE, ROOT, machine, publish

# Noise levels of NCSN on MNIST (Song & Ermon 2019: 1 to 0.01 for pixels in [0, 1]), in
# this package's [-1, 1] pixel range; the step at the smallest level is 0.1 sigma_min^2, the
# --annealed default (their epsilon / 2: this package's update moves eta * score, theirs
# epsilon / 2 * score, with noise of variance 2 eta = epsilon in both).
NOISE_LEVELS = ",".join(f"{s:.4g}" for s in np.geomspace(2.0, 0.02, 10))
TRAINERS = {
    "dsm": ["--model", "dsm", "--annealed", "--noise_levels", NOISE_LEVELS],
    "ncsn": ["--model", "dsm", "--noise_conditional", "--noise_levels", NOISE_LEVELS],
    "cd": ["--model", "ebm"],  # the image EBM recipe: 20 SGLD steps per iteration, replay buffer
}
STEP_CHOICES = {"dsm": (250, 500, 1000), "ncsn": (250, 500, 1000), "cd": (200, 500, 1000)}
CELLS = os.path.join(HERE, "score_matching")
COMMON = ["--network", "cnn_wide", "--epochs", "100000", "--sample_every", "0",
          "--evaluate", "false", "--verbose", "2"]


def validation_fids(model, splits, classifier, step_choices, num_samples=500):
    """The FID of ``num_samples`` samples against as many validation images, per step count."""
    from keras_ebm import data
    from keras_ebm.evaluation import metrics
    from keras_ebm.evaluation.report import reference_features

    real = reference_features(classifier, data.preprocess(splits.x_val[:num_samples], 0).numpy())
    return {steps: metrics.frechet_distance(reference_features(
                classifier, model.generate(num_samples, steps=steps, seed=100).numpy()), real)
            for steps in step_choices}


def cell_dir(trainer, args):
    """The name and run directory of one trainer's cell."""
    name = f"{trainer}-b{args.budget_minutes:g}-s{args.seed}" + (
        f"-subset{args.subset}" if args.subset else "")
    return name, os.path.join(HERE, "runs", "score-matching", name)


def run_trainer(trainer, args):
    import keras

    import keras_ebm  # noqa: F401  (registers the models for load_model)
    from keras_ebm import data
    from keras_ebm.evaluation import reference
    from keras_ebm.evaluation.report import evaluate_model

    name, run_dir = cell_dir(trainer, args)
    flags = [*TRAINERS[trainer], *COMMON, "--budget_minutes", f"{args.budget_minutes:g}",
             "--seed", str(args.seed)] + (["--subset", str(args.subset)] if args.subset else [])
    print(f"[{time.strftime('%H:%M:%S')}] {name}: python train.py {' '.join(flags)}", flush=True)
    start = time.time()
    subprocess.run([sys.executable, "train.py", "--out", run_dir, *flags], cwd=ROOT, check=True)
    train_wall = time.time() - start
    with open(os.path.join(run_dir, "test_metrics.json")) as f:
        test = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    model = keras.saving.load_model(os.path.join(run_dir, "checkpoints", "last.keras"))
    splits = data.load_dataset("mnist", None, config["validation_size"], config["subset"],
                               config["seed"])
    classifier = reference.for_dataset(splits, os.path.join(run_dir, "reference_classifier.keras"))
    choice = validation_fids(model, splits, classifier, STEP_CHOICES[trainer])
    steps = min(choice, key=choice.get)
    print(f"{name}: validation FID by steps {choice}; scoring with {steps}", flush=True)
    ev = evaluate_model(model, splits, os.path.join(run_dir, "evaluation"), steps=steps)
    fid = ev["unconditional"]["classifier_fid"]
    return {
        "trainer": trainer, "seed": args.seed, "budget": args.budget_minutes,
        "machine": machine(), "date": time.strftime("%Y-%m-%d"), "run_dir": os.path.relpath(run_dir, ROOT), "flags": " ".join(flags),
        "epochs": test["epochs_run"],
        "train_wall_minutes": train_wall / 60, "validation_fid_by_steps": choice, "steps": steps,
        "fid": fid["mean"], "fid_std": fid["std"], "floor": fid["floor"],
        "ratio": fid["ratio_to_floor"], "coverage": ev["unconditional"]["label_coverage"],
        "long_chain_ratio": ev["long_chain"]["fid_ratio_to_stated_steps"],
        "long_chain_coverage": ev["long_chain"]["label_coverage"],
        "auroc_log_px": {k: v["log_px"]["auroc"] for k, v in ev["ood"].items()},
    }


def section(rows, args, command):
    sets = list(rows[0]["auroc_log_px"])
    header = ["trainer", "epochs", "training wall min", "sample steps (validation FID)",
              "FID (3 sampling seeds)", "floor", "FID / floor", "coverage",
              "FID at 3x steps / FID (coverage)"] + [f"AUROC {s}" for s in sets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        choice = ", ".join(f"{k}: {v:.1f}" for k, v in r["validation_fid_by_steps"].items())
        cells = [r["trainer"], str(r["epochs"]), f"{r['train_wall_minutes']:.1f}",
                 f"**{r['steps']}** ({choice})", f"{r['fid']:.2f} ± {r['fid_std']:.2f}",
                 f"{r['floor']:.2f}", f"**{r['ratio']:.1f}**", f"{r['coverage']}/10",
                 f"{r['long_chain_ratio']:.2f} ({r['long_chain_coverage']}/10)"]
        cells += [f"{r['auroc_log_px'][s]:.3f}" for s in sets]
        lines.append("| " + " | ".join(cells) + " |")
    runs = "; ".join(f"{r['trainer']}: `python train.py {r['flags']}` into `{r['run_dir']}`"
                     for r in rows)
    return (f"\n## MNIST: denoising score matching against contrastive divergence "
            f"({time.strftime('%Y-%m-%d')})\n\n"
            f"Command: `{command}` ({runs}). Machine: {machine()}, CPU only. Seed {args.seed}; "
            f"each trainer gets {args.budget_minutes:g} CPU minutes (process CPU time / cores). "
            "Sample steps chosen by the FID of 500 samples against 500 validation images; the "
            "final weights (`checkpoints/last.keras`) scored by `keras_ebm.evaluation.report` "
            "(FID of the reference classifier's features against the test set, mean ± std over "
            "3 sampling seeds of 500 samples; floor: 500 validation images against the same "
            "test features; AUROC of log p(x) = -E(x), for ncsn -E(x, sigma_min)). dsm and ncsn "
            "samples: annealed Langevin from uniform noise through the 10 noise levels, then one "
            "denoising step (dsm: the energy E(x) / sigma at level sigma; ncsn: the "
            "noise-conditional energy E(x, sigma)); cd samples: SGLD from uniform noise.\n\n"
            + "\n".join(lines) + "\n")


def record(row, command, cells=CELLS):
    """Write one cell's figures (and the command that made them) to ``cells``."""
    os.makedirs(cells, exist_ok=True)
    name = f"{row['trainer']}-b{row['budget']:g}-s{row['seed']}"
    with open(os.path.join(cells, name + ".json"), "w") as f:
        json.dump({**row, "command": command}, f, indent=2, sort_keys=True)


def read_cells(budget, cells=CELLS):
    """The recorded cells of one budget, grouped by (trainer, CPU)."""
    groups = {}
    for row in bench_frontier.read_cells(cells):
        if row["budget"] == budget:
            groups.setdefault((row["trainer"], processor(row["machine"])), []).append(row)
    return groups


def seeds_table(groups):
    """Markdown: per trainer and CPU, the cells' figures as mean ± std (ddof 1) over seeds."""
    sets = sorted({name for rows in groups.values() for r in rows for name in r["auroc_log_px"]})
    header = ["trainer", "CPU", "seeds", "epochs", "sample steps", "FID / floor", "classes covered",
              "FID at 3x steps / FID", "training wall min"] + [f"AUROC {s}" for s in sets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (trainer, cpu), rows in sorted(groups.items()):
        rows = sorted(rows, key=lambda r: r["seed"])
        get = lambda key: [r[key] for r in rows]  # noqa: E731
        cells = [trainer, cpu, ",".join(str(s) for s in get("seed")),
                 "/".join(str(e) for e in get("epochs")),
                 "/".join(str(s) for s in get("steps")),
                 f"**{mean_std(get('ratio'), digits=1)}** "
                 f"({', '.join(f'{r:.1f}' for r in get('ratio'))})",
                 ", ".join(str(c) for c in get("coverage")),
                 mean_std(get("long_chain_ratio")), mean_std(get("train_wall_minutes"), digits=1)]
        cells += [mean_std([r["auroc_log_px"][s] for r in rows], digits=3) for s in sets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seeds_section(groups, budget, command):
    return (f"\n## MNIST: score matching against contrastive divergence over seeds, {budget:g} "
            f"CPU minutes ({time.strftime('%Y-%m-%d')})\n\n"
            f"Command: `{command}` (the cells recorded in `benchmarks/score_matching/`, each "
            "made by `python benchmarks/bench_score_matching.py --budget_minutes "
            f"{budget:g} --seed S --trainers T`). Mean ± std (ddof 1) over seeds, each seed's "
            "figure in brackets; each cell scores the final weights of its run (FID / floor "
            "over 3 sampling seeds of 500 samples, the sample steps chosen on validation "
            "images; AUROC of log p(x)). Cells of different CPUs are never averaged.\n\n"
            + seeds_table(groups) + "\n")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--budget_minutes", type=float, default=10.0,
                        help="training compute of each trainer, CPU minutes / cores")
    parser.add_argument("--seed", type=int, default=1, help="training seed")
    parser.add_argument("--trainers", nargs="+", choices=sorted(TRAINERS), default=["dsm", "cd"])
    parser.add_argument("--subset", type=int, default=0,
                        help="train on this many images (0: all; for smoke runs)")
    parser.add_argument("--table", action="store_true",
                        help="train nothing: average the recorded cells of --budget_minutes "
                             "over seeds into one table")
    args = parser.parse_args(argv)
    if not args.budget_minutes > 0:
        parser.error(f"--budget_minutes must be > 0, got {args.budget_minutes}")
    command = "python benchmarks/bench_score_matching.py " + " ".join(argv)
    if args.table:
        groups = read_cells(args.budget_minutes)
        if not groups:
            parser.error(f"no recorded cell of {args.budget_minutes:g} CPU minutes in "
                         f"{os.path.relpath(CELLS, ROOT)}: run cells first")
        publish(seeds_section(groups, args.budget_minutes, command))
        return
    taken = [cell_dir(trainer, args)[1] for trainer in args.trainers]
    taken = [run_dir for run_dir in taken if os.path.exists(run_dir)]
    if taken:
        parser.error(f"{', '.join(taken)} already exist(s): move them away to run these cells "
                     "again, or change --seed / --budget_minutes")
    rows = []
    for trainer in args.trainers:
        rows.append(run_trainer(trainer, args))
        if not args.subset:  # smoke runs are not results
            record(rows[-1], command)
    publish(section(rows, args, command), record=not args.subset)


if __name__ == "__main__":
    main(sys.argv[1:])
