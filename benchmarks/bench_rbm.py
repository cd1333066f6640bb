"""Train an RBM on full binarised MNIST with ``python train.py --model rbm`` and record
its AIS test log-likelihood.

    python benchmarks/bench_rbm.py                   # the benchmark settings (SETTINGS below)
    python benchmarks/bench_rbm.py --epochs 2        # any train.py flag overrides them
    python benchmarks/bench_rbm.py --budget_minutes 60 --epochs 1000 --rbm_temperatures 8
                                                     # 60 CPU minutes with parallel tempering
    python benchmarks/bench_rbm.py --record RUN_DIR  # record a finished run

Runs ``train.py`` into ``benchmarks/runs/rbm-mnist-<time>`` (training ends with the
AIS estimate of log Z and the test log-likelihood, ``log_likelihood.json``), draws
samples from uniform random binary states with the trained RBM into
``benchmarks/figures/rbm_mnist_samples.png`` and appends the figures, times and
the command to ``benchmarks/RESULTS.md``.
"""

import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from bench_mnist import append_results, exit_on_help_or_bad_record, machine  # noqa: E402

# 500 hidden units as in Salakhutdinov & Murray (2008); PCD-1 with 100 chains (Tieleman 2008).
# Adam lr 3e-3, beta_1 0.5, from pilots on 10000 images (see RESULTS.md): beta_1 0.5 beat 0.9,
# lr 3e-2 and 1e-1 trained faster but grew spurious modes sooner.
SETTINGS = ["--model", "rbm", "--rbm_hidden", "500", "--persistent", "--cd_steps", "1",
            "--epochs", "20", "--batch_size", "100", "--lr", "3e-3", "--beta_1", "0.5",
            "--final_sample_steps", "1000", "--ais_runs", "100", "--ais_betas", "14500"]
SAMPLE_STEPS = 1000  # Gibbs steps from noise for the figure


def load(run_dir):
    import keras

    import keras_ebm  # noqa: F401  (registers RBM for load_model)

    return keras.saving.load_model(os.path.join(run_dir, "checkpoints", "last.keras"))


def second_ais_estimate(model, num_runs, num_betas):
    """log Z again with twice the inverse temperatures and another seed: a convergence check."""
    from keras_ebm import data
    from keras_ebm.evaluation.likelihood import ais_log_partition

    train = data.load_dataset("mnist").x_train  # the run's training split (seed 0)
    data_mean = model.to_visible(data.preprocess(train.mean(axis=0, keepdims=True))).numpy()
    return ais_log_partition(model, data_mean, num_runs=num_runs, num_betas=2 * num_betas, seed=1)


def sample_figure(model, path):
    """Real test digits, five rows of samples after ``SAMPLE_STEPS`` Gibbs steps from
    uniform random binary states and, for PCD, persistent chain states."""
    from keras_ebm import data, plotting

    test = data.load_dataset("mnist", validation_size=0).x_test
    rows = {"real": data.preprocess(test[:10]).numpy()}
    samples = model.generate(50, steps=SAMPLE_STEPS, seed=0).numpy()
    for i in range(5):
        rows[f"noise -> {SAMPLE_STEPS} Gibbs {i + 1}"] = samples[10 * i:10 * i + 10]
    if model.buffer is not None:
        rows["PCD chains"] = model.buffer.samples.numpy()[:10]
    plotting.save_grid(rows, path, title=f"RBM samples: p(v | h) after {SAMPLE_STEPS} Gibbs "
                                         "steps from random binary images")


def record(run_dir, command, wall=None):
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(run_dir, "test_metrics.json")) as f:
        test = json.load(f)
    with open(os.path.join(run_dir, "log_likelihood.json")) as f:
        ll = json.load(f)
    figures = os.path.join(HERE, "figures")
    model = load(run_dir)
    sample_figure(model, os.path.join(figures, "rbm_mnist_samples.png"))
    start = time.time()
    check = second_ais_estimate(model, ll["ais_runs"], ll["ais_betas"])
    check_minutes = (time.time() - start) / 60
    shutil.copy(os.path.join(run_dir, "samples", "chain_final.png"),
                os.path.join(figures, "rbm_mnist_chain.png"))
    method = f"{'PCD' if config['persistent'] else 'CD'}-{config['cd_steps']}"
    if config["persistent"] and config["rbm_temperatures"] > 1:
        method += (f", parallel tempering over {config['rbm_temperatures']} inverse temperatures "
                   f"from 1 to {config['rbm_min_beta']}")
    schedule = (f"over a budget of {config['budget_minutes']:g} CPU minutes (process CPU time / "
                "cores)" if config["budget_minutes"] else f"over {config['epochs']} epochs")
    wall_line = f"| wall time of the command | {wall / 60:.1f} min |\n" if wall else ""
    if "budget_minutes_spent" in test:
        wall_line += f"| compute budget spent | {test['budget_minutes_spent']:.1f} CPU min |\n"
    reverse = ll.get("reverse")
    reverse_line = "" if reverse is None else (
        f"| the first {reverse['num_images']} test images: forward AIS / reverse AIS (RAISE, "
        f"conservative) / gap | {reverse['log_likelihood_forward']:.2f} / "
        f"{reverse['log_likelihood_reverse']:.2f} / {reverse['gap']:.2f} |\n")
    section = (
        f"\n## RBM on binarised MNIST ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: {command}\n\n"
        f"Machine: {machine()}, CPU only. Settings: `{os.path.relpath(run_dir, ROOT)}/config.json` "
        f"(784 visible x {config['rbm_hidden']} hidden units, {method}"
        + (f" with {config['batch_size']} persistent chains" if config["persistent"] else "")
        + f", batch {config['batch_size']}, Adam lr {config['lr']} beta_1 {config['beta_1']} "
        f"cosine-decayed to 1% {schedule}).\n\n"
        "Data: the 55000 MNIST training images (5000 held out for validation); every pixel is "
        "binarised stochastically with its intensity as probability, afresh at every step. "
        f"Test log-likelihood: the {ll['num_images']} test images binarised the same way once "
        f"({ll['binarisation']}), `log p(v) = -F(v) - log Z`, with log Z from AIS "
        f"({ll['ais_runs']} runs, {ll['ais_betas']} inverse temperatures, base-rate model "
        "from the training pixel means; Salakhutdinov & Murray 2008).\n\n"
        "| metric | value |\n|---|---|\n"
        f"| AIS test log-likelihood (nats per image) | **{ll['log_likelihood']:.2f}** "
        f"(+- {3 * ll['log_z_std']:.2f}, 3 standard errors of log Z) |\n"
        f"| log Z | {ll['log_z']:.2f} +- {ll['log_z_std']:.2f} |\n"
        f"| log Z again: {2 * ll['ais_betas']} inverse temperatures, seed 1 (convergence "
        f"check, {check_minutes:.1f} min) | {check.log_z:.2f} +- {check.std:.2f} |\n"
        f"{reverse_line}"
        f"| test pseudo-log-likelihood (one-bit-flip estimate) | "
        f"{test['pseudo_log_likelihood']:.2f} |\n"
        f"| test reconstruction error (MSE per pixel) | {test['recon_error']:.4f} |\n"
        f"| epochs | {test['epochs_run']} |\n"
        f"| training time (fit) | {test['train_seconds'] / 60:.1f} min |\n{wall_line}\n"
        "Published AIS figures for 500 hidden units on binarised MNIST (Salakhutdinov & "
        "Murray 2008) run from about -125 nats (CD-1) to -86 nats (CD-25, longer training).\n\n"
        "Figures: `benchmarks/figures/rbm_mnist_samples.png` (rows: real test digits, samples "
        f"after {SAMPLE_STEPS} Gibbs steps from uniform random binary images, persistent "
        "chains), `rbm_mnist_chain.png` (Gibbs chains from noise).\n"
    )
    append_results(section)
    print(section)


def main(argv):
    exit_on_help_or_bad_record(argv, __doc__)
    if argv[:1] == ["--record"]:
        return record(os.path.abspath(argv[1]), "`python benchmarks/bench_rbm.py`")
    run_dir = os.path.join(HERE, "runs", "rbm-mnist-" + time.strftime("%Y%m%d-%H%M%S"))
    flags = SETTINGS + list(argv)  # later flags win
    start = time.time()
    subprocess.run([sys.executable, "train.py", "--out", run_dir, "--verbose", "2", *flags],
                   cwd=ROOT, check=True)
    shown = " ".join(["python train.py", *flags])
    command = " ".join(["python benchmarks/bench_rbm.py", *argv])
    record(run_dir, f"`{command}` (runs `{shown}`)", wall=time.time() - start)


if __name__ == "__main__":
    main(sys.argv[1:])
