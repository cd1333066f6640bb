"""Train on full MNIST with ``python train.py`` and record the results.

    python benchmarks/bench_mnist.py                        # the default JEM
    python benchmarks/bench_mnist.py --model ebm --epochs 8  # any train.py flags (e.g. the EBM baseline)
    python benchmarks/bench_mnist.py --record RUN_DIR       # record a finished run

Runs ``train.py`` exactly as a user would (defaults plus any extra flags) into
``benchmarks/runs/<name>`` (training ends with ``keras_ebm.evaluation.report``), then
appends test accuracy, ECE, OOD AUROC, sample-quality figures, times and the
command to ``benchmarks/RESULTS.md`` and copies the sample figures to
``benchmarks/figures/``. ``--record`` runs the evaluation first if the run
has none.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def exit_on_help_or_bad_record(argv, doc):
    """``-h`` / ``--help`` prints ``doc`` and the ``train.py`` flags the script passes on,
    then exits; ``--record`` without a run directory exits with its usage."""
    if "-h" in argv or "--help" in argv:
        print(doc)
        subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, check=True)
        sys.exit(0)
    if argv[:1] == ["--record"] and (len(argv) != 2 or not os.path.isdir(argv[1])):
        sys.exit("--record takes one finished run directory, e.g. --record benchmarks/runs/NAME")


def machine():
    """This machine as the results tables describe it: cores, CPU model, TensorFlow."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    onednn = "off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") == "0" else "on"  # keras_ebm's default
    return (f"{os.cpu_count()} cores, {cpu}, TensorFlow {metadata.version('tensorflow')} "
            f"(oneDNN kernels {onednn})")


def append_results(section):
    """Append a section (markdown) to ``benchmarks/RESULTS.md``."""
    with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
        f.write(section)


def publish(section, record=True):
    """Print a results section (markdown) and, with ``record``, append it to RESULTS.md."""
    print(section)
    if record:
        append_results(section)


def record(run_dir, command, wall=None):
    evaluation_dir = os.path.join(run_dir, "evaluation")
    if not os.path.isfile(os.path.join(evaluation_dir, "evaluation.json")):
        start = time.time()
        subprocess.run([sys.executable, "-m", "keras_ebm", "evaluate", run_dir, "--out",
                        evaluation_dir], cwd=ROOT, check=True)
        command += f"; then `keras-ebm evaluate {os.path.relpath(run_dir, ROOT)} " \
                   f"--out {os.path.relpath(evaluation_dir, ROOT)}` ({(time.time() - start) / 60:.1f} min)"
    with open(os.path.join(run_dir, "test_metrics.json")) as f:
        test = json.load(f)
    with open(os.path.join(evaluation_dir, "evaluation.json")) as f:
        ev = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    model = config["model"]
    figures = os.path.join(HERE, "figures")
    os.makedirs(figures, exist_ok=True)
    copies = [("samples.png", "samples"), ("chain.png", "chain"), ("reliability.png", "reliability")]
    for src, kind in copies:
        if os.path.isfile(os.path.join(evaluation_dir, src)):
            shutil.copy(os.path.join(evaluation_dir, src),
                        os.path.join(figures, f"{model}_mnist_{kind}.png"))
    shutil.copy(os.path.join(run_dir, "samples", "final.png"),
                os.path.join(figures, f"{model}_mnist_final_grid.png"))
    ood = ev["ood"]
    fid = ev["unconditional"]["classifier_fid"]
    wall_line = f"| wall time of the command | {wall / 60:.1f} min |\n" if wall else ""
    classifier_rows = ""
    if "accuracy" in test:
        classifier_rows = (
            f"| test accuracy | {100 * test['accuracy']:.2f}% |\n"
            f"| expected calibration error (15 bins) | {100 * test['ece']:.2f}% |\n"
            f"| conditional-sample accuracy (reference classifier, {ev['langevin_steps']} steps "
            f"from noise on E(x, y)) | {100 * ev['conditional_sample_accuracy']:.1f}% |\n"
            + (f"| the same, first {ev['conditional_unconditional_steps']} steps on E(x) | "
               f"{100 * ev['conditional_sample_accuracy_warm']:.1f}% |\n"
               if "conditional_sample_accuracy_warm" in ev else "")
        )
    section = (
        f"\n## {model.upper()} on MNIST ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: {command}\n\n"
        f"Machine: {machine()}, CPU only. Settings: `{os.path.relpath(run_dir, ROOT)}/config.json` "
        f"(network {config['network']}, {config['epochs']} epochs, batch {config['batch_size']}, "
        f"{config['langevin_steps']} Langevin steps per iteration"
        + (f", px_weight {config['px_weight']}" if model == "jem" else "") + ").\n\n"
        "| metric | value |\n|---|---|\n"
        + classifier_rows +
        f"| OOD AUROC, log p(x): uniform noise / Gaussian noise / inverted / flipped | "
        f"{ood['uniform_noise']['log_px']['auroc']:.3f} / {ood['gaussian_noise']['log_px']['auroc']:.3f}"
        f" / {ood['inverted']['log_px']['auroc']:.3f} / {ood['flipped_vertical']['log_px']['auroc']:.3f} |\n"
        f"| label coverage of unconditional samples | {ev['unconditional']['label_coverage']}/10 |\n"
        f"| classifier FID (mean +- std over {len(fid['per_seed'])} seeds) | {fid['mean']:.2f} +- "
        f"{fid['std']:.2f} = {fid['ratio_to_floor']:.1f}x its real floor {fid['floor']:.2f} +- "
        f"{fid['floor_std']:.2f} (noise: "
        f"{fid['ceiling_noise']:.1f}) |\n"
        f"| median nearest-training-image L2: samples / held-out test images | "
        f"{ev['nearest_train_distance']['samples']:.2f} / {ev['nearest_train_distance']['test_images']:.2f} |\n"
        f"| epochs | {test['epochs_run']} |\n"
        f"| training time (fit) | {test['train_seconds'] / 60:.1f} min |\n{wall_line}\n"
        f"Figures: `benchmarks/figures/{model}_mnist_samples.png` (rows: real, unconditional "
        f"samples from noise, for JEM one row per class from E(x, y)), `{model}_mnist_chain.png` "
        f"(Langevin chains from noise), `{model}_mnist_final_grid.png` (the run's final grid, "
        "including replay-buffer states)" + (f", `{model}_mnist_reliability.png`" if classifier_rows else "")
        + ".\n"
    )
    append_results(section)
    print(section)


def main(argv):
    exit_on_help_or_bad_record(argv, __doc__)
    if argv[:1] == ["--record"]:
        run_dir = os.path.abspath(argv[1])
        return record(run_dir, "`python benchmarks/bench_mnist.py` (training: `python train.py`)")
    name = "mnist-" + time.strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(HERE, "runs", name)
    command = [sys.executable, "train.py", "--out", run_dir, "--verbose", "2", *argv]
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    shown = " ".join(["python train.py", *argv])
    record(run_dir, f"`python benchmarks/bench_mnist.py {' '.join(argv)}` (runs `{shown}`)",
           wall=time.time() - start)


if __name__ == "__main__":
    main(sys.argv[1:])
