"""JEM quality per CPU-minute: train at a compute budget, evaluate, record; then tabulate.

    python benchmarks/bench_frontier.py run --budget 15 --seed 1            # one cell
    python benchmarks/bench_frontier.py run --budget 15 --seed 1 --recipe uniform
    python benchmarks/bench_frontier.py table                                # aggregate
    python benchmarks/bench_frontier.py compare --cells DIR --baseline A --recipe B  # paired

A cell runs ``train.py`` with ``--budget_minutes BUDGET --seed SEED`` and the recipe's
flags into ``benchmarks/runs/frontier/<recipe>-b<budget>-s<seed>`` (the budget counts the
training process's CPU time divided by its usable cores, so other work on the machine changes
a cell's result far less than wall time would, though TensorFlow's spinning threads burn some
budget on a shared machine; the wall time is recorded beside it). The run ends with
``keras_ebm.evaluation.report`` on its final weights; the cell's figures are written to
``benchmarks/frontier/<cell>.json``. ``table`` writes the mean and spread over seeds of every
recorded (recipe, budget) to ``benchmarks/RESULTS.md`` and the frontier figure to
``benchmarks/figures/frontier.png``. ``compare`` pairs two recipes' cells of the same seeds
(each pair run in one session, kept in their own ``--cells`` directory, since sessions differ
more than seeds) and reports each figure's difference, paired by seed, with its spread.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

from bench_mnist import append_results, machine, publish

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CELLS = os.path.join(HERE, "frontier")

# Recipes: train.py flags on top of the defaults. Every cell trains with --budget_minutes.
RECIPES = {
    # The default of train.py until 2026-12-02 (cells recorded then as "default").
    "uniform": ["--chain_start", "uniform"],
    "ema": ["--chain_start", "uniform", "--ema", "0.995"],
    # The default of train.py for part of 2026-12-02 (spelled out, so the cells keep their meaning).
    # Chains start from class Gaussians fitted to the training images (buffer restarts and
    # samples); samples: 100 Langevin steps, then 50 noise-free ones (chosen by the FID of
    # samples against validation images: 50 / 100 / 150 / 200 / 300 / 450 steps gave
    # 56 / 41 / 39 / 41 / 46 / 56 on informative-b15-s1; 100 is the longest chain whose 3x
    # stays within 1.2x).
    "informative": ["--chain_start", "class_gaussian", "--refine_steps", "50",
                    "--eval_steps", "100", "--langevin_steps", "20", "--langevin_alpha", "10"],
    # informative-k10 was the default of train.py from the end of 2026-12-02 to 2026-12-03.
    # informative with half (a quarter) of the Langevin steps per training iteration
    # (SADA-JEM and M-EBM train with K = 5): more epochs for the same budget. Samples: 50
    # steps + 50 noise-free (validation FID 40 / 28 / 27 / 29 / 35 at 25 / 50 / 75 / 100 / 150
    # steps on informative-k10-b10-s1, 3x-chain ratio 0.70 / 1.27 / 1.58 / 1.73 / 1.90).
    "informative-k10": ["--chain_start", "class_gaussian", "--refine_steps", "50",
                        "--eval_steps", "50", "--langevin_steps", "10", "--langevin_alpha", "10"],
    # informative-k10 with 3x the L2 energy regulariser. A class whose real images the training
    # chains never reach has its energy pushed down until the regulariser balances the
    # contrastive term: at -1 / (2 reg_weight), -5 at 0.1. Seed 4 of the 45-minute cells lost
    # its 1s that way (their energy -4.9, the other classes near 0; chains could not enter the
    # well). 0.3 caps the well at -1.7; on seed 4's first 2 epochs the 1s stay at -0.4. At 15
    # minutes, seed 1: FID 3.8x the floor, a same-session informative-k10 control 4.0x.
    "informative-k10-reg03": ["--chain_start", "class_gaussian", "--refine_steps", "50",
                              "--eval_steps", "50", "--langevin_steps", "10", "--reg_weight", "0.3",
                              "--langevin_alpha", "10"],
    # informative-k10 with half the Langevin step size (5): the default of train.py since
    # 2026-12-03. On seed 4's first 2 epochs the 1s stay at -0.97 and hold their share of the
    # samples (12-14 of 500 at step 10). At 15 minutes, paired with informative-k10 on seeds
    # 1-4: seeds 1-3 within the spread (ECE +0.08 points), seed 4 keeps its 1s (the default's
    # seed 4 lost them: FID 8.2x its floor, 9 classes).
    "informative-k10-alpha5": ["--chain_start", "class_gaussian", "--refine_steps", "50",
                               "--eval_steps", "50", "--langevin_steps", "10",
                               "--langevin_alpha", "5"],
    # informative-k10-alpha5 sampled with 40 Langevin steps (+ 50 noise-free) instead of 50,
    # chosen on validation images by bench_sample_steps.py on informative-k10-alpha5-b15-s5:
    # the lowest FID among the settings whose chains 3x as long stay within 1.2x (50 + 50:
    # FID 18.7, 3x 1.34; 40 + 50: 19.5, 1.16; 50 + 0: 19.6, 1.17). Training is the same as
    # informative-k10-alpha5's. On seeds 6 and 7 its 3x ratio was 1.22 and 1.33.
    "informative-k10-alpha5-e40": ["--chain_start", "class_gaussian", "--refine_steps", "50",
                                   "--eval_steps", "40", "--langevin_steps", "10",
                                   "--langevin_alpha", "5"],
    # The same rule over the validation images of seeds 5-7 (mean FID, mean 3x ratio):
    # 50 + 50: 19.5, 1.38; 40 + 50: 20.0, 1.24; 35 + 50: 20.5, 1.15; 30 + 50: 21.4, 1.06.
    # 35 + 50 is the default of train.py since 2026-12-04.
    "informative-k10-alpha5-e35": ["--chain_start", "class_gaussian", "--refine_steps", "50",
                                   "--eval_steps", "35", "--langevin_steps", "10",
                                   "--langevin_alpha", "5"],
    "informative-k5": ["--chain_start", "class_gaussian", "--refine_steps", "50",
                       "--eval_steps", "50", "--langevin_steps", "5", "--langevin_alpha", "10"],
}
COMMON = ["--epochs", "1000", "--sample_every", "0", "--verbose", "2"]


# The OOD scores every recorded cell has; "best" AUROC is the best of these per set (the
# feature-space Mahalanobis detector, added later, is recorded beside them).
SINGLE_SCORES = ("log_px", "grad_norm", "max_prob", "max_logit")


def summarise(run_dir):
    """The figures of one finished cell."""
    with open(os.path.join(run_dir, "test_metrics.json")) as f:
        test = json.load(f)
    with open(os.path.join(run_dir, "evaluation", "evaluation.json")) as f:
        ev = json.load(f)
    fid = ev["unconditional"]["classifier_fid"]
    best_auroc = {name: max(by_score[score]["auroc"] for score in SINGLE_SCORES if score in by_score)
                  for name, by_score in ev["ood"].items()}
    mahalanobis = {name: by_score["feature_mahalanobis"]["auroc"]
                   for name, by_score in ev["ood"].items() if "feature_mahalanobis" in by_score}
    combined = {name: by_score["combined"]["auroc"]
                for name, by_score in ev["ood"].items() if "combined" in by_score}
    calibration = ({"temperature": ev["temperature"], "ece_uncalibrated": ev["ece_uncalibrated"]}
                   if "temperature" in ev else {})
    return {
        **calibration, "accuracy": ev["accuracy"], "ece": ev["ece"],
        "fid": fid["mean"], "fid_floor": fid["floor"], "fid_ratio": fid["ratio_to_floor"],
        "conditional_accuracy": ev["conditional_sample_accuracy"],
        "worst_class_accuracy": min(ev["conditional_sample_accuracy_per_class"]),
        "coverage": ev["unconditional"]["label_coverage"],
        "long_chain_fid_ratio": ev["long_chain"]["fid_ratio_to_stated_steps"],
        "long_chain_coverage": ev["long_chain"]["label_coverage"],
        "nearest_train_samples": ev["nearest_train_distance"]["samples"],
        "nearest_train_test": ev["nearest_train_distance"]["test_images"],
        "ood_best_auroc": best_auroc,
        "ood_log_px_auroc": {name: s["log_px"]["auroc"] for name, s in ev["ood"].items()},
        **({"ood_mahalanobis_auroc": mahalanobis} if mahalanobis else {}),
        **({"ood_combined_auroc": combined} if combined else {}),
        "ood_auroc": {name: {score: v["auroc"] for score, v in by_score.items()}
                      for name, by_score in ev["ood"].items()},
        "budget_minutes_spent": test.get("budget_minutes_spent"),
        "train_wall_minutes": test["train_seconds"] / 60,
        "epochs_run": test["epochs_run"], "diverged": test["diverged"],
        "steps": ev["langevin_steps"], "refine_steps": ev.get("refine_steps", 0),
        "chain_start": ev.get("chain_start", "uniform"),
    }


def run_cell(budget, seed, recipe, cells=CELLS):
    name = f"{recipe}-b{budget:g}-s{seed}"
    run_dir = os.path.join(HERE, "runs", "frontier", name)
    flags = ["--budget_minutes", f"{budget:g}", "--seed", str(seed), *COMMON, *RECIPES[recipe]]
    command = [sys.executable, "train.py", "--out", run_dir, *flags]
    print(f"[{time.strftime('%H:%M:%S')}] cell {name}: {' '.join(command[1:])}", flush=True)
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.time() - start
    row = dict(summarise(run_dir), recipe=recipe, budget=budget, seed=seed,
               command_wall_minutes=wall / 60, machine=machine(), date=time.strftime("%Y-%m-%d"),
               command=f"python benchmarks/bench_frontier.py run --budget {budget:g} "
                       f"--seed {seed} --recipe {recipe}",
               train_flags=" ".join(flags))
    os.makedirs(cells, exist_ok=True)
    with open(os.path.join(cells, name + ".json"), "w") as f:
        json.dump(row, f, indent=2, sort_keys=True)
    print(json.dumps(row, indent=2, sort_keys=True))
    return row


def validation_images(config):
    """A run's own validation split (images as the model takes them, labels) from its
    ``config.json`` settings."""
    from keras_ebm import data

    splits = data.load_dataset(config["dataset"], config["data_file"], config["validation_size"],
                               config["subset"], config["seed"])
    return data.preprocess(splits.x_val, config.get("pad", 0)).numpy(), splits.y_val


def calibrate_run(run_dir):
    """Temperature-scale the final weights of a run trained before ``train.py`` did (their
    temperature is 1) on the run's own validation split, as ``train.py`` does now, and save
    them; returns the temperature. ``best.keras`` is left as it was."""
    import keras

    from keras_ebm import files
    from keras_ebm.models.ebm import JEM

    last = os.path.join(run_dir, "checkpoints", "last.keras")
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    if not os.path.isfile(last):
        raise ValueError(f"{run_dir} holds no checkpoints/last.keras to calibrate")
    model = keras.saving.load_model(last)
    if not isinstance(model, JEM) or not config["validation_size"]:
        raise ValueError(f"{run_dir}: only a JEM trained with a validation split can be "
                         "calibrated")
    if model.temperature != 1.0:
        return model.temperature
    temperature = model.calibrate(*validation_images(config))
    with files.atomic_path(last, suffix=".keras") as tmp:
        model.save(tmp)
    return temperature


def rescore_cell(budget, seed, recipe, cells=CELLS, run_dir=None):
    """Evaluate a recorded cell's final weights again with the recipe's current evaluation
    flags (e.g. after the sample steps were chosen anew; weights trained before ``train.py``
    calibrated ``p(y|x)`` are calibrated first) and rewrite its figures."""
    name = f"{recipe}-b{budget:g}-s{seed}"
    run_dir = run_dir or os.path.join(HERE, "runs", "frontier", name)
    path = os.path.join(cells, name + ".json")
    with open(path) as f:
        row = json.load(f)
    calibrate_run(run_dir)
    flags = RECIPES[recipe]
    steps = flags[flags.index("--eval_steps") + 1] if "--eval_steps" in flags else "500"
    subprocess.run([sys.executable, "-m", "keras_ebm", "evaluate", run_dir, "--steps", steps],
                   cwd=ROOT, check=True)
    row.update(summarise(run_dir), rescored=time.strftime("%Y-%m-%d"),
               rescore_command=f"python benchmarks/bench_frontier.py rescore --budget {budget:g} "
                               f"--seed {seed} --recipe {recipe}"
                               + (f" --cells {os.path.relpath(cells, ROOT)}" if cells != CELLS
                                  else ""))
    with open(path, "w") as f:
        json.dump(row, f, indent=2, sort_keys=True)
    return row


def mean_std(values, scale=1.0, digits=2):
    import numpy as np

    values = np.asarray(values, dtype=float) * scale
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def processor(machine_text):
    """The CPU of a recorded ``machine()`` line, e.g. "Intel Xeon" or "AMD EPYC"."""
    parts = machine_text.split(", ")
    name = parts[1] if len(parts) > 1 else machine_text
    return " ".join(name.replace("(R)", "").replace("(TM)", "").replace(" Processor", "").split())


def read_cells(cells=CELLS):
    """The recorded cells of a directory."""
    rows = []
    for path in sorted(glob.glob(os.path.join(cells, "*.json"))):
        with open(path) as f:
            rows.append(json.load(f))
    return rows


def load_cells(cells=CELLS):
    """Recorded cells grouped by (recipe, budget, CPU): a CPU minute buys different amounts of
    training on different machines, so cells from different CPUs are never averaged."""
    rows = read_cells(cells)
    groups = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["budget"], processor(row["machine"])), []).append(row)
    return groups


def ece_at_1(row):
    """A cell's ECE of p(y|x) at temperature 1 (cells from before calibration hold only that)."""
    return row.get("ece_uncalibrated", row["ece"])


def ece_cell(rows):
    """ECE over seeds: calibrated with the figure at temperature 1 beside when every seed's
    weights were calibrated, else the figures at temperature 1, so that seeds never mix."""
    at_1 = mean_std([ece_at_1(r) for r in rows], 100)
    if all("temperature" in r for r in rows):
        return f"{mean_std([r['ece'] for r in rows], 100)} (T = 1: {at_1})"
    return f"{at_1} (T = 1)"


def table(groups):
    sets = sorted({name for rows in groups.values() for name in rows[0]["ood_best_auroc"]})
    header = ["recipe", "budget (CPU min)", "CPU", "seeds", "epochs",
              "samples: start, steps + noise-free", "wall min (train)", "test accuracy %",
              "ECE %", "FID / floor", "cond. acc. %", "worst class %", "coverage",
              "FID at 3x steps / FID", "nearest-train L2 (test images)"]
    header += [f"AUROC {name}" for name in sets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (recipe, budget, cpu), rows in sorted(groups.items(),
                                              key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        get = lambda key: [r[key] for r in rows]  # noqa: E731
        sampling = (f"{rows[0].get('chain_start', 'uniform').replace('_', ' ')}, "
                    f"{rows[0]['steps']} + {rows[0].get('refine_steps', 0)}")
        cells = [recipe, f"{budget:g}", cpu, ",".join(str(r["seed"]) for r in rows),
                 "/".join(str(e) for e in get("epochs_run")), sampling,
                 mean_std(get("train_wall_minutes"), digits=1),
                 mean_std(get("accuracy"), 100), ece_cell(rows),
                 mean_std(get("fid_ratio"), digits=1),
                 mean_std(get("conditional_accuracy"), 100, 1),
                 mean_std(get("worst_class_accuracy"), 100, 1),
                 "/".join(str(c) for c in get("coverage")),
                 mean_std(get("long_chain_fid_ratio")),
                 f"{mean_std(get('nearest_train_samples'))} ({rows[0]['nearest_train_test']:.2f})"]
        cells += [mean_std([r["ood_best_auroc"][name] for r in rows], digits=3) for name in sets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scores_table(rows, sets=None):
    """Markdown: per OOD score, its AUROC on each set as mean ± std over the cells (the cells
    of one recipe and budget), for the scores every cell recorded."""
    from keras_ebm.evaluation import ood

    sets = sets or [name for name in ood.FAR + ood.NEAR if name in rows[0]["ood_auroc"]]
    scores = [score for score in rows[0]["ood_auroc"][sets[0]]
              if all(score in r["ood_auroc"][name] for r in rows for name in sets)]
    lines = ["| score | " + " | ".join(sets) + " |", "|" + "---|" * (len(sets) + 1)]
    for score in scores:
        cells = [mean_std([r["ood_auroc"][name][score] for r in rows], digits=3) for name in sets]
        lines.append(f"| {score} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# (label, key, scale, digits, higher is better) of the paired comparison
COMPARED = [("test accuracy %", "accuracy", 100, 2, True),
            ("ECE % at temperature 1", "ece_at_1", 100, 2, False),
            ("FID / floor", "fid_ratio", 1, 2, False),
            ("cond. acc. %", "conditional_accuracy", 100, 1, True),
            ("worst class %", "worst_class_accuracy", 100, 1, True),
            ("coverage", "coverage", 1, 0, True),
            ("FID at 3x steps / FID", "long_chain_fid_ratio", 1, 2, False)]


def compare(rows, baseline, recipe):
    """Markdown: per seed, the figures of ``recipe`` and ``baseline``, then ``recipe`` minus
    ``baseline`` paired by seed (mean ± std over seeds); a mean difference within one std of
    the differences is marked as inside the spread."""
    import numpy as np

    rows = [r for r in rows if r["recipe"] in (baseline, recipe)]
    budgets = sorted({r.get("budget") for r in rows}, key=str)
    if len(budgets) > 1:
        raise ValueError(f"the cells hold budgets {budgets}: a comparison pairs cells of one "
                         "budget; keep one budget's cells in the --cells directory")
    by = {(r["recipe"], r["seed"]): r for r in rows}
    seeds = sorted(seed for name, seed in by if name == recipe and (baseline, seed) in by)
    if not seeds:
        raise ValueError(f"no seed has cells of both {baseline} and {recipe}")
    ood_sets = sorted(by[recipe, seeds[0]]["ood_best_auroc"])
    calibrated = all("temperature" in by[name, seed] for seed in seeds
                     for name in (baseline, recipe))
    figures = (COMPARED[:2] + [("ECE % calibrated", "ece", 100, 2, False)] * calibrated
               + COMPARED[2:] + [(f"AUROC {name}", ("ood_best_auroc", name), 1, 3, True)
                                 for name in ood_sets])

    def value(row, key):
        if key == "ece_at_1":
            return ece_at_1(row)
        return row[key[0]][key[1]] if isinstance(key, tuple) else row[key]

    header = ["figure", *[f"{name} s{seed}" for seed in seeds for name in (baseline, recipe)],
              f"{recipe} - {baseline} (paired)", "reading"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             "| run on | " + " | ".join(by[name, seed].get("date", "?") for seed in seeds
                                       for name in (baseline, recipe)) + " | | |",
             "| epochs | " + " | ".join(str(by[name, seed]["epochs_run"]) for seed in seeds
                                       for name in (baseline, recipe)) + " | | |"]
    for label, key, scale, digits, higher_better in figures:
        pairs = [(value(by[baseline, seed], key) * scale, value(by[recipe, seed], key) * scale)
                 for seed in seeds]
        diffs = np.array([b - a for a, b in pairs])
        spread = diffs.std(ddof=1) if len(diffs) > 1 else float("nan")
        mean = diffs.mean()
        if len(diffs) < 2:
            reading = "one seed: no spread"
        elif not abs(mean) > spread:
            reading = "inside the spread"
        else:
            reading = "better" if (mean > 0) == higher_better else "worse"
        lines.append("| " + " | ".join(
            [label, *[f"{v:.{digits}f}" for pair in pairs for v in pair],
             f"{mean:+.{digits}f} ± {spread:.{digits}f}", reading]) + " |")
    return "\n".join(lines)


def figure(groups, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("fid_ratio", "classifier FID / real floor", 1), ("accuracy", "test accuracy %", 100),
              ("conditional_accuracy", "conditional-sample accuracy %", 100)]
    for recipe, cpu in sorted({(r, c) for r, _, c in groups}):
        budgets = sorted(b for r, b, c in groups if (r, c) == (recipe, cpu))
        for ax, (key, label, scale) in zip(axes, panels):
            values = [np.array([row[key] for row in groups[recipe, b, cpu]]) * scale
                      for b in budgets]
            ax.errorbar(budgets, [v.mean() for v in values],
                        yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in values],
                        marker="o", capsize=3, label=f"{recipe} ({cpu})")
            ax.set_xlabel("training budget, CPU minutes of that CPU (2 cores)")
            ax.set_ylabel(label)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    cell = sub.add_parser("run", help="train, evaluate and record one cell")
    cell.add_argument("--budget", type=float, required=True, help="CPU minutes of training")
    cell.add_argument("--seed", type=int, required=True, help="training seed")
    cell.add_argument("--recipe", default="informative", choices=sorted(RECIPES),
                      help="train.py flags on top of the defaults (see RECIPES)")
    cell.add_argument("--cells", default=CELLS,
                      help="directory of the recorded cells (default: benchmarks/frontier)")
    again = sub.add_parser("rescore", help="evaluate a recorded cell again with the recipe's "
                                           "current evaluation flags")
    again.add_argument("--budget", type=float, required=True, help="the cell's budget")
    again.add_argument("--seed", type=int, required=True, help="the cell's seed")
    again.add_argument("--recipe", default="informative", choices=sorted(RECIPES))
    again.add_argument("--cells", default=CELLS,
                       help="directory of the recorded cell (default: benchmarks/frontier)")
    again.add_argument("--run_dir", default=None,
                       help="the cell's run directory (default: benchmarks/runs/frontier/<cell>)")
    sub.add_parser("table", help="aggregate the recorded cells into RESULTS.md and a figure")
    scored = sub.add_parser("ood", help="every OOD score's AUROC per set, over the seeds of "
                                        "one recipe and budget")
    scored.add_argument("--budget", type=float, required=True, help="the cells' budget")
    scored.add_argument("--recipe", required=True, choices=sorted(RECIPES),
                        help="the cells' recipe")
    scored.add_argument("--cells", default=CELLS,
                        help="directory of the recorded cells (default: benchmarks/frontier)")
    paired = sub.add_parser("compare", help="two recipes' cells of the same seeds, paired by seed")
    paired.add_argument("--cells", required=True,
                        help="a directory holding both recipes' cells, run in one session")
    paired.add_argument("--baseline", required=True, choices=sorted(RECIPES))
    paired.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    args = parser.parse_args(argv)
    if args.action == "run":
        if not args.budget > 0:
            parser.error(f"--budget must be > 0 CPU minutes, got {args.budget}")
        run_cell(args.budget, args.seed, args.recipe, args.cells)
        return 0
    if args.action == "compare":
        rows = read_cells(args.cells)
        try:
            text = compare(rows, args.baseline, args.recipe)
        except ValueError as err:
            parser.error(f"{err} in {args.cells}")
        budgets = sorted({r["budget"] for r in rows if r["recipe"] in (args.baseline, args.recipe)})
        machines = sorted({processor(r["machine"]) for r in rows})
        publish(f"\n## JEM: {args.recipe} against {args.baseline}, paired by seed "
                f"({time.strftime('%Y-%m-%d')})\n\n"
                f"Command: `python benchmarks/bench_frontier.py compare --cells {args.cells} "
                f"--baseline {args.baseline} --recipe {args.recipe}`; each seed's two cells "
                f"run one after the other, alone, in one session ({', '.join(machines)}, "
                "2 cores), "
                f"{'/'.join(f'{b:g}' for b in budgets)} CPU minutes each, final weights. "
                "Reading: the paired mean difference is inside the spread when it is no larger "
                "than the standard deviation (ddof 1) of the per-seed differences.\n\n"
                + text + "\n")
        return 0
    if args.action == "ood":
        rows = sorted((r for r in read_cells(args.cells) if r["recipe"] == args.recipe
                       and r["budget"] == args.budget and "ood_auroc" in r),
                      key=lambda r: r["seed"])
        if not rows:
            parser.error(f"no cell of {args.recipe} at {args.budget:g} CPU minutes in "
                         f"{args.cells} records every OOD score; run or rescore one")
        cpus = sorted({processor(r["machine"]) for r in rows})
        if len(cpus) > 1:
            parser.error(f"these cells ran on {', '.join(cpus)}; keep one CPU's cells in --cells")
        publish(f"\n## JEM: every OOD score of {args.recipe}, {args.budget:g} CPU minutes "
                f"({time.strftime('%Y-%m-%d')})\n\n"
                f"Command: `python benchmarks/bench_frontier.py ood --budget {args.budget:g} "
                f"--recipe {args.recipe}`. Cells: seeds "
                f"{', '.join(str(r['seed']) for r in rows)} ({cpus[0]}, 2 cores), final "
                "weights; AUROC of each score on the evaluation's OOD sets (made from the 10000 "
                "test images), mean ± std (ddof 1) over seeds.\n\n" + scores_table(rows) + "\n")
        return 0
    if args.action == "rescore":
        cell_path = os.path.join(args.cells, f"{args.recipe}-b{args.budget:g}-s{args.seed}.json")
        if not os.path.isfile(cell_path):
            parser.error(f"no recorded cell {cell_path}; run it first")
        run_dir = args.run_dir or os.path.join(HERE, "runs", "frontier",
                                               os.path.basename(cell_path)[:-len(".json")])
        if not os.path.isfile(os.path.join(run_dir, "checkpoints", "last.keras")):
            parser.error(f"{run_dir} holds no checkpoints/last.keras; pass the cell's run "
                         "directory with --run_dir")
        try:
            rescore_cell(args.budget, args.seed, args.recipe, args.cells, run_dir)
        except ValueError as err:
            parser.error(str(err))
        return 0
    groups = load_cells()
    if not groups:
        parser.error(f"no recorded cells in {CELLS}; run some with `run` first")
    text = table(groups)
    os.makedirs(os.path.join(HERE, "figures"), exist_ok=True)
    figure(groups, os.path.join(HERE, "figures", "frontier.png"))
    section = (f"\n## JEM quality per CPU-minute: the frontier ({time.strftime('%Y-%m-%d')})\n\n"
               "Command: `python benchmarks/bench_frontier.py table` over cells run with "
               "`python benchmarks/bench_frontier.py run --budget B --seed S --recipe R` "
               "(each cell's command, machine and train.py flags are in "
               "`benchmarks/frontier/<recipe>-b<B>-s<S>.json`).\n\n"
               "Machines: 2 cores each; the CPU column names the one a row's cells trained "
               "on, and rows never mix CPUs. A CPU minute buys different amounts of training on "
               "different machines, even two with the same CPU name (the epochs column shows how "
               "many each seed ran), so compare recipes by the epochs they bought as well. Each column is one set of weights per seed: the final "
               "weights of the run. Mean ± std (ddof 1) over seeds. ECE: of p(y|x) with the "
               "temperature fitted on the run's validation split (`JEM.calibrate`; weights "
               "trained before train.py did this were calibrated the same way by `rescore`) "
               "and at temperature 1 beside; rows with a seed never calibrated show only the "
               "figure at temperature 1. Samples from fresh chains (the "
               "sampling column: where chains start, Langevin steps + noise-free steps); "
               "FID / floor: classifier FID of 500 "
               "samples against the test set, over the same for 500 held-out (validation) "
               "images; AUROC: the best of log p(x), max p(y|x), the largest logit and the "
               "input-gradient norm per OOD set, chosen on that test set itself (optimistic; "
               "`ood_log_px_auroc` in the cells holds log p(x) alone).\n\n" + text + "\n\nFigure: `benchmarks/figures/frontier.png`.\n")
    append_results(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
