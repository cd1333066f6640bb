"""Train the default JEM on full MNIST with ``python train.py`` and record the results.

    python benchmarks/bench_jem_mnist.py [extra train.py flags]

Runs ``train.py`` exactly as a user would (defaults plus any extra flags) into
``benchmarks/runs/<name>``, then appends test accuracy, ECE, wall time and the
command to ``benchmarks/RESULTS.md`` and copies the final sample grids to
``benchmarks/figures/``.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def main(extra_flags):
    name = "jem-mnist-" + time.strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(HERE, "runs", name)
    command = [sys.executable, "train.py", "--out", run_dir, "--verbose", "2", *extra_flags]
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.time() - start
    with open(os.path.join(run_dir, "test_metrics.json")) as f:
        results = json.load(f)
    figures = os.path.join(HERE, "figures")
    os.makedirs(figures, exist_ok=True)
    for src, dst in (("final.png", "jem_mnist_samples.png"), ("chain_final.png", "jem_mnist_chain.png")):
        shutil.copy(os.path.join(run_dir, "samples", src), os.path.join(figures, dst))
    shown = "python train.py " + " ".join(extra_flags) if extra_flags else "python train.py"
    section = (
        f"\n## JEM on MNIST, default settings ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_jem_mnist.py {' '.join(extra_flags)}`"
        f" (runs `{shown}`)\n\n"
        f"Machine: {machine()}, CPU only.\n\n"
        "| metric | value |\n|---|---|\n"
        f"| test accuracy | {100 * results['accuracy']:.2f}% |\n"
        f"| expected calibration error (15 bins) | {100 * results['ece']:.2f}% |\n"
        f"| test contrastive divergence vs uniform noise | {results['cdiv']:.3f} |\n"
        f"| epochs | {results['epochs_run']} |\n"
        f"| training time (fit only) | {results['train_seconds'] / 60:.1f} min |\n"
        f"| wall time (whole command) | {wall / 60:.1f} min |\n\n"
        "Samples: `benchmarks/figures/jem_mnist_samples.png` (rows: real, from noise "
        "E(x), replay buffer, class-conditional E(x, y) for y = 0..9) and "
        "`benchmarks/figures/jem_mnist_chain.png` (Langevin chains from noise).\n"
    )
    with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
        f.write(section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
