"""Train the EBM on each toy density with ``train.py`` and measure the distance to the truth.

    python benchmarks/bench_toy.py                          # all six densities
    python benchmarks/bench_toy.py --sets two_moons rings   # some of them
    python benchmarks/bench_toy.py --epochs 20               # any train.py flag overrides FLAGS
    python benchmarks/bench_toy.py --compare cd dsm ssm --budget_minutes 2 --sets rings
        # trainers side by side at an equal compute budget (CPU minutes / cores), seeds 1-3
    python benchmarks/bench_toy.py --decompose benchmarks/runs/toy-eight_gaussians-...
        # where a run's grid TV comes from: the modes' masses or their shapes

For each density runs ``python train.py --dataset toy:NAME`` with ``FLAGS`` into
``benchmarks/runs/toy-NAME-<time>``, then reads its ``evaluation/evaluation.json``:
the total variation between the grid-normalised ``p_theta = exp(-E) / Z`` and
the true density, KL(p || p_theta), and the distance of 5000 Langevin samples
from uniform noise to the truth (histogram TV and MMD, each next to its floor:
the same distance for exact draws of equal size). Copies the run's density plots
to ``benchmarks/figures/toy_NAME_{landscape,flow,histogram}.png`` and appends the
table with the command to ``benchmarks/RESULTS.md``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from bench_mnist import append_results, machine  # noqa: E402
from keras_ebm.data.toy import DENSITIES  # noqa: E402

# One recipe for every density: unadjusted Langevin (noise sqrt(2 * step)) with
# persistent chains, a weak energy regulariser, 10 epochs of 20000 points.
FLAGS = ["--model", "ebm", "--network", "mlp", "--parameterization", "langevin",
         "--langevin_alpha", "0.01", "--langevin_steps", "20", "--grad_clip", "0",
         "--reg_weight", "0.01", "--real_noise", "0", "--lr", "3e-3", "--epochs", "10",
         "--sample_every", "0", "--eval_samples", "5000", "--eval_steps", "500"]


TRAINERS = {"cd": [], "dsm": ["--model", "dsm"], "ssm": ["--model", "ssm"]}


def run(name, extra, tag=""):
    run_dir = os.path.join(HERE, "runs", f"toy-{name}{tag}-{time.strftime('%Y%m%d-%H%M%S')}")
    command = ["train.py", "--dataset", f"toy:{name}", *FLAGS, *extra, "--verbose", "2",
               "--out", run_dir]
    print("$ python", " ".join(command), flush=True)
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)
    with open(os.path.join(run_dir, "evaluation", "evaluation.json")) as f:
        report = json.load(f)
    with open(os.path.join(run_dir, "test_metrics.json")) as f:
        report["train_seconds"] = json.load(f)["train_seconds"]
    for plot in ("landscape", "flow", "histogram"):
        shutil.copyfile(os.path.join(run_dir, "samples", f"final_{plot}.png"),
                        os.path.join(HERE, "figures", f"toy_{name}{tag}_{plot}.png"))
    return report


def compare(names, trainers, budget, seeds, extra):
    """Each trainer on each density for ``budget`` CPU minutes and each seed; one table of
    means and spreads over the seeds."""
    rows = []
    for name in names:
        for trainer in trainers:
            reports = []
            for seed in seeds:
                flags = [*TRAINERS[trainer], "--budget_minutes", f"{budget:g}", "--epochs",
                         "100000", "--seed", str(seed), *extra]
                reports.append(run(name, flags, tag=f"-{trainer}-s{seed}"))

            def spread(key, digits=3):
                values = np.array([r[key] for r in reports])
                if len(values) == 1:
                    return f"{values[0]:.{digits}f}"
                return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"
            floor = np.mean([r["tv_samples_floor"] for r in reports])
            rows.append(f"| {name} | {trainer} | {spread('tv_density')} | {spread('kl_density')} | "
                        f"{spread('tv_samples')} ({floor:.3f}) | "
                        f"{spread('train_seconds', 0)} s |")
    levels = extra[extra.index("--noise_levels") + 1] if "--noise_levels" in extra else "0.05,0.1,0.2"
    levels = levels.replace(",", ", ")
    if "--noise_weight_power" in extra:
        levels += f"; level sigma weighted sigma^{extra[extra.index('--noise_weight_power') + 1]}"
    if "--noise_conditional" in extra:
        levels += ("; noise-conditional energy E(x, sigma), sigma "
                   + ("log-uniform between the smallest and largest level"
                      if "--continuous_noise" in extra else "drawn from the levels")
                   + "; density by the probability-flow ODE")
    section = (
        f"\n## Toy densities: trainers at an equal compute budget ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_toy.py {' '.join(sys.argv[1:])}` (each: `python "
        f"train.py --dataset toy:NAME {' '.join(FLAGS)} TRAINER_FLAGS --budget_minutes "
        f"{budget:g} --epochs 100000 --seed SEED`; cd: contrastive divergence, the EBM recipe "
        "above; dsm / ssm: `--model dsm` / `--model ssm`, denoising (noise levels "
        f"{levels}) and sliced score matching). Machine: "
        f"{machine()}, CPU only. Seeds {', '.join(map(str, seeds))}"
        f"{': mean ± standard deviation (ddof 1)' if len(seeds) > 1 else ''}. "
        "The budget counts the training process's CPU time divided by its cores; the wall time "
        "of training is beside it.\n\n"
        "| density | trainer | TV(p_theta, p) on the grid | KL(p \\|\\| p_theta) | "
        "TV(samples, p) (floor) | training wall time |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n")
    print(section)
    append_results(section)


def main(names, extra):
    reports = {name: run(name, extra) for name in names}
    table = ("| density | TV(p_theta, p) on the grid | KL(p \\|\\| p_theta) | "
             "TV(samples, p) (floor) | MMD^2(samples, p) (floor) | training time |\n"
             "|---|---|---|---|---|---|\n")
    for name, r in reports.items():
        table += (f"| {name} | {r['tv_density']:.3f} | {r['kl_density']:.3f} | "
                  f"{r['tv_samples']:.3f} ({r['tv_samples_floor']:.3f}) | "
                  f"{r['mmd_samples']:.4f} ({r['mmd_samples_floor']:.4f}) | "
                  f"{r['train_seconds']:.0f} s |\n")
    argv = " ".join(sys.argv[1:])
    section = (
        f"\n## EBM on toy densities ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_toy.py{' ' + argv if argv else ''}` (each density: "
        f"`python train.py --dataset toy:NAME {' '.join(FLAGS + extra)}`). "
        f"Machine: {machine()}, CPU only.\n\n"
        "p_theta = exp(-E) normalised numerically on a grid over the density's box (400 cells "
        "in 1-D, 200x200 in 2-D); samples: 5000 chains of 500 Langevin steps from uniform "
        "noise, histogram on 50 (1-D) or 25x25 (2-D) cells; floor: the same distance for 5000 "
        "exact draws. TV in [0, 1]; 0 is a perfect match.\n\n"
        f"{table}\nFigures: `benchmarks/figures/toy_NAME_landscape.png` (true density, "
        "p_theta, energy), `toy_NAME_flow.png` (particles from uniform noise over the Langevin "
        "steps), `toy_NAME_histogram.png` (final particles against the true density).\n"
    )
    print(section)
    append_results(section)


def decompose(run_dirs):
    """For runs on a Gaussian mixture: how much of the grid TV is in the modes' masses (and
    the mass far from every mode) and how much in their shapes."""
    import keras

    import keras_ebm  # noqa: F401  (registers the models for load_model)
    from keras_ebm.data.toy import get_density
    from keras_ebm.evaluation import distances

    densities = []
    for run_dir in run_dirs:  # all refused before any work if one is not a mixture's run
        with open(os.path.join(run_dir, "config.json")) as f:
            dataset = json.load(f)["dataset"]
        if not dataset.startswith("toy:"):
            sys.exit(f"error: {run_dir} trained on {dataset}; --decompose takes toy runs")
        densities.append(get_density(dataset.removeprefix("toy:")))
        try:
            distances.num_components(densities[-1])
        except ValueError as error:
            sys.exit(f"error: {run_dir}: {error}")
    print("| run | TV on the grid | TV of the modes' masses (far mass) | TV of the shapes |\n"
          "|---|---|---|---|")
    for run_dir, density in zip(run_dirs, densities):
        model = keras.saving.load_model(os.path.join(run_dir, "checkpoints", "last.keras"))
        resolution = distances.default_resolution(density.dim)
        points, _ = distances.grid_points(density.box, density.dim, resolution)
        regions = distances.mixture_regions(density, points)
        masses = [np.exp(distances.grid_log_masses(fn, density.box, density.dim,
                                                   resolution)).ravel()
                  for fn in (density.log_prob, lambda x: -model.density_energy(x))]
        split = distances.region_decomposition(*masses, regions)
        far = masses[1][regions == distances.num_components(density)].sum()
        print(f"| {os.path.basename(os.path.normpath(run_dir))} | "
              f"{distances.total_variation(*masses):.3f} | {split['region_tv']:.3f} "
              f"({far:.3f}) | {split['shape_tv']:.3f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(DENSITIES), choices=list(DENSITIES))
    parser.add_argument("--compare", nargs="+", choices=list(TRAINERS),
                        help="trainers to compare at an equal --budget_minutes")
    parser.add_argument("--budget_minutes", type=float, default=2.0,
                        help="with --compare: CPU minutes of training per run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3],
                        help="with --compare: training seeds of each trainer and density")
    parser.add_argument("--decompose", nargs="+", metavar="RUN_DIR",
                        help="split the grid TV of these toy runs (on a Gaussian mixture) into "
                             "the modes' masses and their shapes; trains nothing")
    args, extra = parser.parse_known_args()
    if args.decompose:
        for run_dir in args.decompose:
            needed = [os.path.join(run_dir, "config.json"),
                      os.path.join(run_dir, "checkpoints", "last.keras")]
            missing = [path for path in needed if not os.path.exists(path)]
            if missing:
                parser.error(f"--decompose needs toy run directories of train.py; {run_dir} "
                             f"lacks {', '.join(missing)}")
        decompose(args.decompose)
    elif args.compare:
        compare(args.sets, args.compare, args.budget_minutes, args.seeds, extra)
    else:
        main(args.sets, extra)
