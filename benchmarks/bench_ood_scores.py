"""Which OOD score, or combination of standardised scores, should a JEM report? Chosen on OOD
sets made from validation images, read on the test set.

    python benchmarks/bench_ood_scores.py --run_dir RUN_DIR

The run's final weights are scored with every single score of the evaluation (log p(x), the
input-gradient norm, max p(y|x), the largest logit, the penultimate-layer Mahalanobis detector,
each hidden layer's, the orientation score, and the nearest-neighbour similarity of each
hidden layer) and with candidate sums and minima of standardised scores. The Mahalanobis
detectors and the nearest-neighbour banks are fitted on 20000 training images, as in the
evaluation. The validation split (5000 images) is cut in two: the first half standardises the
scores, and the second half is the in-distribution side of the validation OOD sets, which are
built from it the way the evaluation builds its sets from test images. The choice is made on
these validation sets; the test rows (the 10000 test images and their sets) only read the
chosen score. Both tables are appended to RESULTS.md.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from bench_mnist import machine, publish

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from keras_ebm import data  # noqa: E402
from keras_ebm.evaluation import metrics, ood  # noqa: E402

SETS = ("constant", *ood.NEAR)


def candidate_scores(model, images, detectors, combine):
    """Every single score and every candidate combination for ``images``."""
    from keras_ebm.evaluation import report

    scores = report.ood_scores(model, images, mahalanobis=detectors["mahalanobis"])
    layer_scores, per_layer = report.hidden_layer_scores(
        model, images, detectors["layer_mahalanobis"], detectors["layer_knn"])
    scores.update(layer_scores, **per_layer)
    scores.update({name: candidate(scores) for name, candidate in combine.items()})
    return scores


def candidates(reference):
    """Sums and minima of scores, each standardised on the held-out ``reference`` scores."""
    layers = sorted(name for name in reference if name.startswith("mahalanobis_layer_"))
    knn = sorted(name for name in reference if name.startswith("knn_layer_"))

    def pick(names):
        return {name: reference[name] for name in names}

    return {
        "sum: log_px + grad_norm + every layer": ood.StandardizedSum(
            pick(["log_px", "grad_norm", *layers])),
        "sum: log_px + grad_norm + every layer + orientation": ood.StandardizedSum(
            pick(["log_px", "grad_norm", *layers, "orientation"])),
        "sum: knn of the last 3 layers + orientation": ood.StandardizedSum(
            pick([*knn[-3:], "orientation"])),
        "min: knn of every layer + orientation": ood.StandardizedMin(
            pick([*knn, "orientation"])),
        "min: knn of the last 3 layers + orientation": ood.StandardizedMin(
            pick([*knn[-3:], "orientation"])),
        "min: knn of the last 2 layers + orientation": ood.StandardizedMin(
            pick([*knn[-2:], "orientation"])),
        "min: log_px + knn of the last 3 layers + orientation": ood.StandardizedMin(
            pick(["log_px", *knn[-3:], "orientation"])),
    }


def aurocs(model, in_images, in_labels, detectors, combine):
    inside = candidate_scores(model, in_images, detectors, combine)
    table = {}
    for name, images in ood.ood_sets(in_images, in_labels).items():
        if name in SETS:
            outside = candidate_scores(model, images, detectors, combine)
            table[name] = {score: metrics.auroc(inside[score], outside[score]) for score in inside}
    return table


def markdown(table):
    sets = [name for name in SETS if name in table]
    lines = ["| score | " + " | ".join(sets) + " |", "|" + "---|" * (len(sets) + 1)]
    for score in table[sets[0]]:
        lines.append(f"| {score} | " + " | ".join(f"{table[s][score]:.3f}" for s in sets) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True, help="a JEM run directory (final weights)")
    parser.add_argument("--no_record", dest="record", action="store_false",
                        help="print the tables without appending them to RESULTS.md")
    args = parser.parse_args(argv)
    from keras_ebm.evaluation import report
    from keras_ebm.export import ExportError, load_for_export
    from keras_ebm.models.ebm import JEM

    if not os.path.isfile(os.path.join(args.run_dir, "config.json")):
        parser.error(f"--run_dir {args.run_dir} is not a run directory (no config.json)")
    try:
        model, pad = load_for_export(args.run_dir)
    except ExportError as err:
        parser.error(str(err))
    if not isinstance(model, JEM):
        parser.error(f"{args.run_dir} holds a {type(model).__name__}; the feature detectors "
                     "need a JEM (a classifier)")
    with open(os.path.join(args.run_dir, "config.json")) as f:
        config = json.load(f)
    if config.get("dataset") != "mnist" or config.get("validation_size", 0) < 5000:
        parser.error(f"{args.run_dir} was not trained on MNIST with a validation split of 5000 "
                     "images, which the choice is made on")
    # The run's own split: its validation images were never trained on.
    splits = data.load_dataset("mnist", None, config["validation_size"], config["subset"],
                               config["seed"])
    order = np.random.default_rng(0).permutation(len(splits.x_train))[:20000]
    fit_x = data.preprocess(splits.x_train[order], pad).numpy()
    val_x = data.preprocess(splits.x_val, pad).numpy()
    held_out, val_in, val_labels = val_x[:2500], val_x[2500:], splits.y_val[2500:]
    fit_features = report.hidden_features(model, fit_x)
    held_out_features = report.hidden_features(model, held_out)
    detectors = {
        "mahalanobis": report.fit_feature_mahalanobis(model, fit_x, splits.y_train[order]),
        "layer_mahalanobis": ood.LayerMahalanobis(fit_features, splits.y_train[order],
                                                  model.num_outputs, held_out_features),
        "layer_knn": ood.LayerKNN(fit_features, held_out_features)}
    combine = candidates(candidate_scores(model, held_out, detectors, {}))
    print(f"[{time.strftime('%H:%M:%S')}] validation sets", flush=True)
    validation = markdown(aurocs(model, val_in, val_labels, detectors, combine))
    print(validation, flush=True)
    test_x = data.preprocess(splits.x_test, pad).numpy()
    print(f"[{time.strftime('%H:%M:%S')}] test sets", flush=True)
    test = markdown(aurocs(model, test_x, splits.y_test, detectors, combine))
    print(test, flush=True)
    publish(f"\n## A combined OOD score, chosen on validation images ({time.strftime('%Y-%m-%d')})"
            f"\n\nCommand: `python benchmarks/bench_ood_scores.py --run_dir {args.run_dir}` "
            f"(final weights). Machine: {machine()}. Mahalanobis detectors fitted on 20000 "
            "training images (the penultimate layer: `feature_mahalanobis`; each hidden layer's "
            "pooled features: `mahalanobis_layer_i`; their standardised sum: "
            "`layer_mahalanobis`; `orientation`, the log posterior of the given pose among the "
            "8 symmetries of the square by `layer_mahalanobis`; `knn_layer_i`, the cosine "
            "similarity of layer i's pooled features to the nearest of the 20000 training "
            "images', `feature_knn`, that of the last hidden layer, and `layer_knn`, their "
            "standardised sum); sums and minima standardise each score on the first 2500 validation "
            "images.\n\nValidation: the other 2500 validation images against OOD sets made from "
            "them (where the choice is made):\n\n" + validation + "\n\nTest: the 10000 test "
            "images against the evaluation's OOD sets:\n\n" + test + "\n", record=args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
