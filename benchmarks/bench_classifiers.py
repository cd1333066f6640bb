"""Plain-classifier baselines (``--px_weight 0``: no Langevin sampling) on full MNIST.

    python benchmarks/bench_classifiers.py [--epochs 18] [--resnet_epochs 8]

Trains ``cnn_wide`` (the JEM default network, for the accuracy / ECE / OOD
comparison with JEM) and ``resnet`` (the small residual CNN) with ``train.py``
and appends their test accuracy, ECE, OOD AUROC and training time to
``benchmarks/RESULTS.md``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from bench_mnist import HERE, ROOT, append_results, machine


def main(epochs, resnet_epochs):
    rows = []
    for network, network_epochs in (("cnn_wide", epochs), ("resnet", resnet_epochs)):
        run_dir = os.path.join(HERE, "runs", f"classifier-{network}-" + time.strftime("%Y%m%d-%H%M%S"))
        flags = ["--px_weight", "0", "--network", network, "--epochs", str(network_epochs),
                 "--eval_samples", "100", "--verbose", "2"]
        subprocess.run([sys.executable, "train.py", "--out", run_dir, *flags], cwd=ROOT, check=True)
        with open(os.path.join(run_dir, "test_metrics.json")) as f:
            test = json.load(f)
        with open(os.path.join(run_dir, "evaluation", "evaluation.json")) as f:
            ood = json.load(f)["ood"]
        auroc = " / ".join(f"{ood[k]['log_px']['auroc']:.3f}" for k in
                           ("uniform_noise", "gaussian_noise", "inverted", "flipped_vertical"))
        max_prob = " / ".join(f"{ood[k]['max_prob']['auroc']:.3f}" for k in
                              ("uniform_noise", "gaussian_noise", "inverted", "flipped_vertical"))
        rows.append(f"| `python train.py {' '.join(flags[:-2])}` | {100 * test['accuracy']:.2f}% | "
                    f"{100 * test['ece']:.2f}% | {auroc} | {max_prob} | {test['train_seconds'] / 60:.1f} min |")
    section = (
        f"\n## Plain classifiers, no sampling ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_classifiers.py --epochs {epochs} --resnet_epochs "
        f"{resnet_epochs}`. Machine: {machine()}.\n\n"
        "| run | test accuracy | ECE | OOD AUROC log p(x): uniform / Gaussian / inverted / flipped "
        "| OOD AUROC max p(y\\|x), same sets | training time |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n"
    )
    append_results(section)
    print(section)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=18, help="for cnn_wide (as the JEM default)")
    parser.add_argument("--resnet_epochs", type=int, default=8)
    main(**vars(parser.parse_args()))
