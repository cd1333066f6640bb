"""How good is a trained EBM? Calibration, OOD detection and sample quality in one call.

    python -m keras_ebm.evaluate RUN_DIR_OR_MODEL.keras [--out DIR] [--samples 500] [--steps 500]

Writes ``evaluation.json`` and figures (reliability diagram, energy histograms
in- vs out-of-distribution, sample grids, a Langevin chain strip) into the run
directory (or ``--out``) and prints a short table. From Python:
``evaluate_model(model, splits, out_dir)``.

Sample quality is judged by a fixed reference classifier
(:mod:`keras_ebm.reference`), never by the model itself:

* ``conditional_sample_accuracy``: share of class-conditional samples (every step on
  ``E(x, y)`` from noise) read as their label; ``conditional_sample_accuracy_warm`` is the
  same for chains that run their first ``warm_start`` share of the steps on ``E(x)``;
* ``label_coverage``: classes the reference finds among unconditional samples
  (a class counts when it holds at least 2% of them);
* ``classifier_fid``: Fréchet distance between reference-classifier features of
  samples and of test images, per seed (mean and spread), with its floor (held-out
  real images) and ceiling (uniform noise);
* ``nearest_train_distance``: L2 distance of samples to their nearest training
  image, against the same for held-out test images (memorisation check).
"""

import argparse
import json
import logging
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import data, metrics, plotting, reference
from keras_ebm.model import JEM
from keras_ebm.sampler import energy_gradient

log = logging.getLogger("keras_ebm")


def ood_sets(images, seed=0):
    """Deterministic out-of-distribution sets built from test images in [-1, 1]."""
    rng = np.random.default_rng(seed)
    shape = images.shape
    return {
        "uniform_noise": rng.uniform(-1, 1, shape).astype("float32"),
        "gaussian_noise": np.clip(rng.normal(0, 0.5, shape), -1, 1).astype("float32"),
        "inverted": -images,
        "flipped_vertical": images[:, ::-1],
        "constant": np.broadcast_to(rng.uniform(-1, 1, (shape[0], 1, 1, 1)), shape).astype("float32"),
    }


def ood_scores(model, images, batch_size=500):
    """Per-image scores, higher = more in-distribution: ``log p(x)`` (= -E(x)),
    ``max p(y|x)`` for classifiers, and ``-|grad_x log p(x)|``."""
    scores = {"log_px": [], "grad_norm": []}
    if model.num_outputs > 1:
        scores["max_prob"] = []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start:start + batch_size])
        energy, grad = energy_gradient(model.energy, x)
        scores["log_px"].append(-energy.numpy())
        scores["grad_norm"].append(-tf.norm(tf.reshape(grad, [len(x), -1]), axis=1).numpy())
        if "max_prob" in scores:
            scores["max_prob"].append(tf.reduce_max(tf.nn.softmax(model(x)), -1).numpy())
    return {k: np.concatenate(v) for k, v in scores.items()}


def reference_features(classifier, images):
    """Penultimate-layer features of the reference classifier."""
    extractor = keras.Model(classifier.inputs, classifier.layers[-2].output)
    return extractor.predict(np.asarray(images), batch_size=500, verbose=0)


def _crop(images, pad):
    """Remove ``pad`` pixels per side from images ``[..., H, W, C]``."""
    return images[..., pad:-pad, pad:-pad, :] if pad else images


def evaluate_model(model, splits, out_dir, pad=0, num_samples=500, steps=500, seeds=(0, 1, 2),
                   num_test=10000, warm_start=0.8):
    """Evaluate ``model`` on ``splits`` and write ``evaluation.json`` and figures to ``out_dir``."""
    if not 0 <= warm_start <= 1:
        raise ValueError(f"warm_start must be a share of the steps in [0, 1], got {warm_start}.")
    os.makedirs(out_dir, exist_ok=True)
    test_x = data.preprocess(splits.x_test[:num_test], pad).numpy()
    test_y = splits.y_test[:num_test]
    results = {"num_test": len(test_x), "langevin_steps": steps,
               "conditional_unconditional_steps": int(warm_start * steps)}

    if isinstance(model, JEM):
        logits = model.predict(test_x, batch_size=500, verbose=0)
        probs = metrics.softmax(logits)
        results["accuracy"] = float(np.mean(probs.argmax(-1) == test_y))
        results["ece"] = metrics.expected_calibration_error(probs, test_y)
        results["nll"] = float(-np.mean(np.log(probs[np.arange(len(test_y)), test_y] + 1e-12)))
        conf, acc, count = metrics.reliability_bins(probs, test_y)
        plotting.save_reliability(conf, acc, count, os.path.join(out_dir, "reliability.png"),
                                  title=f"ECE {100 * results['ece']:.2f}%")

    # Out-of-distribution detection.
    in_scores = ood_scores(model, test_x)
    results["ood"] = {}
    energies = {"test": -in_scores["log_px"]}
    for name, ood in ood_sets(test_x).items():
        out_scores = ood_scores(model, ood)
        energies[name] = -out_scores["log_px"]
        results["ood"][name] = {
            score: {"auroc": metrics.auroc(in_scores[score], out_scores[score]),
                    "fpr95": metrics.fpr_at_tpr(in_scores[score], out_scores[score])}
            for score in in_scores
        }
    plotting.save_histograms(energies, os.path.join(out_dir, "energy_histograms.png"),
                             xlabel="energy E(x)")

    # Samples from noise, judged by the reference classifier.
    classifier = reference.load_reference_classifier()
    real_features = reference_features(classifier, _crop(test_x, pad))
    half = len(real_features) // 2
    fids, coverage, label_counts = [], [], None
    samples = None
    for seed in seeds:
        samples = _crop(model.generate(num_samples, steps=steps, seed=seed).numpy(), pad)
        labels = classifier.predict(samples, batch_size=500, verbose=0).argmax(-1)
        counts = np.bincount(labels, minlength=10)
        coverage.append(int(np.sum(counts >= 0.02 * num_samples)))
        label_counts = counts if label_counts is None else label_counts + counts
        fids.append(metrics.frechet_distance(reference_features(classifier, samples), real_features))
    noise = np.random.default_rng(0).uniform(-1, 1, (num_samples,) + samples.shape[1:])
    results["unconditional"] = {
        "classifier_fid": {"mean": float(np.mean(fids)), "std": float(np.std(fids)),
                           "per_seed": fids,
                           "floor_real_vs_real": metrics.frechet_distance(
                               real_features[:half], real_features[half:]),
                           "ceiling_noise": metrics.frechet_distance(
                               reference_features(classifier, noise), real_features)},
        "label_coverage": min(coverage),
        "label_histogram": label_counts.tolist(),
    }
    train_x = data.preprocess(splits.x_train, 0).numpy()
    results["nearest_train_distance"] = {
        "samples": float(np.median(metrics.nearest_distances(samples, train_x))),
        "test_images": float(np.median(metrics.nearest_distances(_crop(test_x, pad)[:500], train_x))),
    }
    rows = {"real": _crop(test_x[:10], pad)}
    for i in range(5):
        rows[f"noise -> E(x) {i + 1}"] = samples[10 * i:10 * i + 10]
    if isinstance(model, JEM):
        per_class = max(1, num_samples // 10)
        labels = np.repeat(np.arange(10, dtype=np.int32), per_class)
        cond = _crop(model.generate(len(labels), steps=steps, labels=labels, seed=seeds[0]).numpy(), pad)
        results["conditional_sample_accuracy"] = reference.label_accuracy(classifier, cond, labels)
        warm = _crop(model.generate(len(labels), steps=steps, labels=labels, seed=seeds[0],
                                    unconditional_steps=int(warm_start * steps)).numpy(), pad)
        results["conditional_sample_accuracy_warm"] = reference.label_accuracy(classifier, warm, labels)
        for c in range(10):
            rows[f"E(x, y={c})"] = cond[c * per_class:c * per_class + 10]
    plotting.save_grid(rows, os.path.join(out_dir, "samples.png"),
                       title=f"{steps} Langevin steps from uniform noise")
    snapshot_every = max(1, steps // 10)
    _, chain = model.generate(8, steps=steps, seed=seeds[0], snapshot_every=snapshot_every)
    plotting.save_chain(_crop(chain.numpy(), pad), snapshot_every,
                        os.path.join(out_dir, "chain.png"))

    with open(os.path.join(out_dir, "evaluation.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    return results


def format_table(results):
    lines = []
    if "accuracy" in results:
        lines.append(f"test accuracy           {100 * results['accuracy']:.2f}%")
        lines.append(f"ECE (15 bins)           {100 * results['ece']:.2f}%")
    for name, by_score in results["ood"].items():
        auroc = "  ".join(f"{score} {v['auroc']:.3f}" for score, v in by_score.items())
        lines.append(f"OOD AUROC {name:<18} {auroc}")
    fid = results["unconditional"]["classifier_fid"]
    lines.append(f"classifier FID          {fid['mean']:.2f} +- {fid['std']:.2f} "
                 f"(floor {fid['floor_real_vs_real']:.2f}, noise {fid['ceiling_noise']:.1f})")
    lines.append(f"label coverage          {results['unconditional']['label_coverage']}/10")
    if "conditional_sample_accuracy" in results:
        lines.append(f"conditional sample acc  {100 * results['conditional_sample_accuracy']:.1f}% "
                     f"(first {results['conditional_unconditional_steps']} of "
                     f"{results['langevin_steps']} steps on E(x): "
                     f"{100 * results['conditional_sample_accuracy_warm']:.1f}%)")
    near = results["nearest_train_distance"]
    lines.append(f"nearest-train L2        samples {near['samples']:.2f}, "
                 f"test images {near['test_images']:.2f}")
    return "\n".join(lines)


def main(argv=None):
    from keras_ebm.export import ExportError, load_for_export

    parser = argparse.ArgumentParser(prog="python -m keras_ebm.evaluate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run directory (uses checkpoints/best.keras) or a .keras file")
    parser.add_argument("--out", help="where to write (default: the run directory, else beside the file)")
    parser.add_argument("--samples", type=int, default=500, help="unconditional samples per seed")
    parser.add_argument("--steps", type=int, default=500, help="Langevin steps from noise")
    parser.add_argument("--num_test", type=int, default=10000, help="test images used")
    parser.add_argument("--warm_start", type=float, default=0.8,
                        help="also score conditional chains that run this share of their steps on E(x) first")
    args = parser.parse_args(argv)
    try:
        if args.samples < 10 or args.steps < 0 or args.num_test < 10:
            raise ExportError("--samples and --num_test must be >= 10 and --steps >= 0")
        if not 0 <= args.warm_start <= 1:
            raise ExportError(f"--warm_start must be a share in [0, 1], got {args.warm_start}")
        model, pad = load_for_export(args.model)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or (args.model if os.path.isdir(args.model) else os.path.dirname(args.model))
    out = os.path.join(out, "evaluation") if not args.out else out
    splits = data.load_dataset("mnist", validation_size=0)
    results = evaluate_model(model, splits, out, pad=pad, num_samples=args.samples,
                             steps=args.steps, num_test=args.num_test, warm_start=args.warm_start)
    print(format_table(results))
    print(f"\nWrote {out}/evaluation.json and figures.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
