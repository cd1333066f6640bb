"""How good is a trained EBM? Calibration, OOD detection and sample quality in one call.

    keras-ebm evaluate RUN_DIR_OR_MODEL.keras [--out DIR] [--samples 500] [--steps 500]

Writes ``evaluation.json`` and figures (reliability diagram, energy histograms
in- vs out-of-distribution, sample grids, a Langevin chain strip) into the run
directory (or ``--out``) and prints a short table. From Python:
``evaluate_model(model, splits, out_dir)``.

Sample quality is judged by a fixed reference classifier
(:mod:`keras_ebm.evaluation.reference`), never by the model itself:

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

OOD detection (``ood``: AUROC and FPR at 95% TPR per set of
:mod:`keras_ebm.evaluation.ood`) reads each score of :func:`ood_scores`. For classifiers
these include two Mahalanobis detectors (the penultimate layer; every hidden layer),
``orientation`` (is the image the right way round, among the symmetries of its frame, by the
hidden layers' detector), ``feature_knn`` (the similarity of the penultimate features to the
nearest training image's), ``layer_knn`` (the same on every hidden layer, standardised and
summed) and ``combined``, the smallest of ``orientation`` and the
nearest-neighbour similarities of the last three hidden layers, each standardised on held-out
in-distribution images: all are fitted without OOD examples (:func:`fit_detectors`).
"""

import json
import logging
import os
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_ebm import data, plotting
from keras_ebm.evaluation import metrics, ood, reference
from keras_ebm.models.ebm import JEM
from keras_ebm.samplers.langevin import energy_gradient

log = logging.getLogger("keras_ebm")


def ood_scores(model, images, batch_size=500, mahalanobis=None, layer_mahalanobis=None,
               layer_knn=None, combined=None):
    """Per-image scores, higher = more in-distribution: ``log p(x)`` (= -E(x)),
    ``-|grad_x log p(x)|`` and, for classifiers, ``max p(y|x)`` and the largest logit
    ``max_y f(x)[y] = log p(x) + log max p(y|x)`` up to ``log Z`` (the joint of the two; so
    ``p(y|x)`` here is ``softmax(f(x))``, at temperature 1 whatever the model's calibration).
    With ``mahalanobis`` (a :class:`~keras_ebm.evaluation.ood.FeatureMahalanobis` fitted on
    :func:`penultimate_features`) also ``feature_mahalanobis``; with ``layer_mahalanobis``
    (from :func:`fit_layer_mahalanobis`) also ``layer_mahalanobis`` and ``orientation``
    (:func:`layer_detectors`); with ``layer_knn`` (a
    :class:`~keras_ebm.evaluation.ood.LayerKNN`) also ``feature_knn``, the nearest-neighbour
    similarity of the last hidden layer, and ``layer_knn``, that of every hidden layer,
    standardised and summed; with ``combined`` (as :func:`fit_detectors` makes it: a
    :class:`~keras_ebm.evaluation.ood.StandardizedMin` of ``orientation`` and the last three
    hidden layers' similarities) also ``combined``."""
    scores = {"log_px": [], "grad_norm": []}
    if model.num_outputs > 1:
        scores["max_prob"], scores["max_logit"] = [], []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start:start + batch_size])
        energy, grad = energy_gradient(model.energy, x)
        scores["log_px"].append(-energy.numpy())
        scores["grad_norm"].append(-tf.norm(tf.reshape(grad, [len(x), -1]), axis=1).numpy())
        if "max_prob" in scores:
            logits = model(x)
            scores["max_prob"].append(tf.reduce_max(tf.nn.softmax(logits), -1).numpy())
            scores["max_logit"].append(tf.reduce_max(logits, -1).numpy())
    scores = {k: np.concatenate(v) for k, v in scores.items()}
    if mahalanobis is not None:
        scores["feature_mahalanobis"] = mahalanobis.score(penultimate_features(model, images))
    parts = dict(scores)
    if layer_mahalanobis is not None or layer_knn is not None:
        layer_scores, per_layer = hidden_layer_scores(model, images, layer_mahalanobis, layer_knn)
        scores.update(layer_scores)
        parts.update(layer_scores, **per_layer)
    if combined is not None:
        scores["combined"] = combined(parts)
    return scores


def hidden_layer_scores(model, images, layer_mahalanobis=None, layer_knn=None):
    """The scores :func:`ood_scores` reads from the hidden layers (``layer_mahalanobis`` and
    ``orientation``; ``feature_knn`` and ``layer_knn``), and each layer's own scores
    (``mahalanobis_layer_i``, ``knn_layer_i``), the images' layers read once."""
    features = hidden_features(model, images)
    scores, per_layer = {}, {}
    if layer_mahalanobis is not None:
        by_layer, scores["layer_mahalanobis"], scores["orientation"] = layer_detectors(
            model, images, layer_mahalanobis, features)
        per_layer.update(_layer_parts(by_layer))
    if layer_knn is not None:
        by_layer = layer_knn.layer_scores(features)
        scores["feature_knn"] = by_layer[max(by_layer)]
        scores["layer_knn"] = layer_knn.combine(by_layer)
        per_layer.update(_knn_parts(by_layer))
    return scores, per_layer


def layer_detectors(model, images, layer_mahalanobis, features=None):
    """What a :class:`~keras_ebm.evaluation.ood.LayerMahalanobis` says of ``images``: each
    hidden layer's score ``{index: [N]}``, their ensemble ``[N]`` and ``orientation`` ``[N]``,
    the log posterior that an image is shown the right way round among the symmetries of its
    frame (:func:`~keras_ebm.evaluation.ood.symmetries`; 8 for square images), the ensemble
    read as a log-likelihood (:func:`~keras_ebm.evaluation.ood.pose_log_posterior`). A digit
    that is more typical upside down or mirrored than as given scores low; one that looks the
    same in several poses (a 0, an 8) scores near ``log`` of one over their number.
    ``features``: the images' :func:`hidden_features`, when already computed."""
    if features is None:
        features = hidden_features(model, images)
    by_layer = layer_mahalanobis.layer_scores(features)
    ensemble = layer_mahalanobis.combine(by_layer)
    poses = [ensemble] + [layer_mahalanobis.score(hidden_features(model, posed))
                          for posed in ood.symmetries(images)[1:]]
    return by_layer, ensemble, ood.pose_log_posterior(poses)


def _layer_parts(by_layer):
    return {f"mahalanobis_layer_{i}": values for i, values in by_layer.items()}


def _knn_parts(by_layer):
    return {f"knn_layer_{i}": values for i, values in by_layer.items()}


_EXTRACTORS = weakref.WeakKeyDictionary()  # network -> {layer name: feature model}: no retracing
_HIDDEN = weakref.WeakKeyDictionary()  # network -> every hidden layer's output, traced once


def layer_outputs(network, layer, images):
    """The activations of ``layer`` of a functional ``network`` for ``images``, in batches."""
    extractors = _EXTRACTORS.setdefault(network, {})
    if layer.name not in extractors:
        extractors[layer.name] = keras.Model(network.inputs, layer.output)
    return reference.predict(extractors[layer.name], images)


def penultimate_features(model, images):
    """The output of the layer before the last of the model's network (for ``cnn_wide``, its
    128 swish units), the representation a classifier's logits are a linear map of."""
    return layer_outputs(model.network, model.network.layers[-2], images)


def fit_feature_mahalanobis(model, images, labels):
    """A :class:`~keras_ebm.evaluation.ood.FeatureMahalanobis` on the penultimate features of
    in-distribution ``images`` and their ``labels``."""
    return ood.FeatureMahalanobis(penultimate_features(model, images), labels, model.num_outputs)


def hidden_layers(network):
    """The layers of ``network`` with weights, except its output layer."""
    return [layer for layer in network.layers[:-1] if layer.weights]


def hidden_features(model, images, chunk=2000):
    """Per hidden layer (:func:`hidden_layers`), its activations for ``images``, feature maps
    pooled (:func:`~keras_ebm.evaluation.ood.pooled_features`) a chunk of images at a time so
    that no layer's full maps for all images are held at once. One pass of the network per
    chunk gives every layer."""
    network = model.network
    if network not in _HIDDEN:
        extractor = keras.Model(network.inputs, [layer.output for layer in hidden_layers(network)])
        _HIDDEN[network] = tf.function(reference._Inference(extractor), reduce_retracing=True)
    run = _HIDDEN[network]
    images = np.asarray(images, dtype="float32")
    chunks = [[ood.pooled_features(output.numpy()) for output in tf.nest.flatten(
        run(images[i:i + chunk]))] for i in range(0, len(images), chunk)]
    return [np.concatenate([c[j] for c in chunks]) for j in range(len(chunks[0]))]


def fit_layer_mahalanobis(model, images, labels, held_out):
    """A :class:`~keras_ebm.evaluation.ood.LayerMahalanobis` on every hidden layer of the
    model's network, fitted on in-distribution ``images`` and ``labels`` and standardised on
    the ``held_out`` in-distribution images."""
    return ood.LayerMahalanobis(hidden_features(model, images), labels, model.num_outputs,
                                hidden_features(model, held_out))


def reference_features(classifier, images):
    """Feature-layer activations of the reference classifier (its penultimate layer)."""
    try:
        layer = classifier.get_layer(reference.FEATURES)
    except ValueError:
        layer = classifier.layers[-2]
    return layer_outputs(classifier, layer, images)


def floor_images(splits, num_samples):
    """``(name, images)``: the held-out images the FID floor of ``num_samples`` draws from,
    the validation split when it has that many, else the training split."""
    if len(splits.x_val) >= num_samples:
        return "validation", splits.x_val
    return "train", splits.x_train


def real_floor(classifier, held_out, reference_features_, num_samples, repeats=50, seed=0):
    """The classifier FID of ``num_samples`` real held-out images against the same reference
    features the samples are scored on, over ``repeats`` random subsets: the score a perfect
    sampler would get at this sample size. One subset's FID varies by about a third at 500
    images, so the mean needs tens of subsets."""
    rng = np.random.default_rng(seed)
    if len(held_out) < num_samples:
        raise ValueError(f"The FID floor needs {num_samples} held-out images, got {len(held_out)}; "
                         "lower num_samples.")
    features = reference_features(classifier, held_out)
    return [metrics.frechet_distance(
        features[rng.choice(len(held_out), num_samples, replace=False)], reference_features_)
        for _ in range(repeats)]


def _sample_std(values):
    """The sample standard deviation (ddof 1); 0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _crop(images, pad):
    """Remove ``pad`` pixels per side from images ``[..., H, W, C]``."""
    return images[..., pad:-pad, pad:-pad, :] if pad else images


def _classification(model, test_x, test_y, out_dir):
    """Accuracy, ECE and NLL of ``p(y|x)`` with the model's temperature (and without)."""
    logits = reference.predict(model, test_x)
    probs = metrics.softmax(logits / model.temperature)
    results = {"accuracy": float(np.mean(probs.argmax(-1) == test_y)),
               "ece": metrics.expected_calibration_error(probs, test_y),
               "nll": float(-np.mean(np.log(probs[np.arange(len(test_y)), test_y] + 1e-12))),
               "temperature": model.temperature,
               "ece_uncalibrated": metrics.expected_calibration_error(metrics.softmax(logits),
                                                                      test_y)}
    conf, acc, count = metrics.reliability_bins(probs, test_y)
    plotting.save_reliability(conf, acc, count, os.path.join(out_dir, "reliability.png"),
                              title=f"ECE {100 * results['ece']:.2f}%")
    return results


def _ood_detection(model, test_x, test_y, out_dir, detectors):
    in_scores = ood_scores(model, test_x, **detectors)
    results, energies = {}, {"test": -in_scores["log_px"]}
    for name, images in ood.ood_sets(test_x, test_y).items():
        out_scores = ood_scores(model, images, **detectors)
        energies[name] = -out_scores["log_px"]
        results[name] = {
            score: {"auroc": metrics.auroc(in_scores[score], out_scores[score]),
                    "fpr95": metrics.fpr_at_tpr(in_scores[score], out_scores[score])}
            for score in in_scores
        }
    plotting.save_histograms(energies, os.path.join(out_dir, "energy_histograms.png"),
                             xlabel="energy E(x)")
    return results


def fit_detectors(model, splits, pad=0, num_fit=20000, num_held_out=5000, knn_layers=3):
    """The feature detectors of a classifier and the combined score, fitted on in-distribution
    images only: the Mahalanobis detectors and the nearest-neighbour banks of every hidden
    layer on (at most) ``num_fit`` training images, the standardisations on held-out ones (the
    validation split, else training images the detectors did not see); ``combined`` reads the
    nearest-neighbour similarities of the last ``knn_layers`` hidden layers (all of them
    when the network has fewer). Keyword arguments of :func:`ood_scores`."""
    if knn_layers < 1:
        raise ValueError(f"knn_layers={knn_layers}: the combined score reads the last "
                         "knn_layers >= 1 hidden layers; pass 1 or more.")
    order = np.random.default_rng(0).permutation(len(splits.x_train))
    if len(splits.x_val) >= 2:
        drawn, held_out = order[:num_fit], splits.x_val[:num_held_out]
    else:
        drawn = order[:min(num_fit, len(order) * 4 // 5)]
        held_out = splits.x_train[order[len(drawn):len(drawn) + num_held_out]]
    fit_x = data.preprocess(splits.x_train[drawn], pad).numpy()
    held_out = data.preprocess(held_out, pad).numpy()
    fit_features, held_out_features = hidden_features(model, fit_x), hidden_features(model, held_out)
    layers = ood.LayerMahalanobis(fit_features, splits.y_train[drawn], model.num_outputs,
                                  held_out_features)
    knn = ood.LayerKNN(fit_features, held_out_features)
    # The smallest of the standardised orientation and nearest-neighbour scores: chosen on OOD
    # sets made from validation images (benchmarks/bench_ood_scores.py; RESULTS.md, "A
    # combined OOD score, chosen on validation images").
    _, _, orientation = layer_detectors(model, held_out, layers, held_out_features)
    last = _knn_parts(knn.layer_scores(held_out_features))
    last = {name: last[name] for name in list(last)[-knn_layers:]}
    combined = ood.StandardizedMin({**last, "orientation": orientation})
    return {"mahalanobis": fit_feature_mahalanobis(model, fit_x, splits.y_train[drawn]),
            "layer_mahalanobis": layers, "layer_knn": knn, "combined": combined}


def _judge(classifier, samples, real_features, num_classes):
    """Classifier FID, label histogram and classes covered (>= 2% of the samples)."""
    labels = reference.predict(classifier, samples).argmax(-1)
    counts = np.bincount(labels, minlength=num_classes)
    fid = metrics.frechet_distance(reference_features(classifier, samples), real_features)
    return fid, counts, int(np.sum(counts >= 0.02 * len(samples)))


def evaluate_model(model, splits, out_dir, pad=0, num_samples=500, steps=500, seeds=(0, 1, 2),
                   num_test=10000, warm_start=0.8, long_chain_factor=3, floor_repeats=50,
                   classifier=None):
    """Evaluate ``model`` on ``splits`` and write ``evaluation.json`` and figures to ``out_dir``.

    Samples are judged by ``classifier`` (default: the reference classifier of ``splits``, see
    :func:`keras_ebm.evaluation.reference.for_dataset`; one trained for this dataset is kept in
    ``out_dir``).

    Samples from noise are scored against the test set; their FID floor is the FID of as many
    real images held out from training (``splits.x_val`` when it is large enough) against the
    same test features, over ``floor_repeats`` random subsets. ``long_chain_factor`` > 0 also
    scores every seed's chains run for that many times ``steps`` (the ratio of the mean FIDs).
    """
    if not 0 <= warm_start <= 1:
        raise ValueError(f"warm_start must be a share of the steps in [0, 1], got {warm_start}.")
    if long_chain_factor < 0:
        raise ValueError(f"long_chain_factor must be >= 0, got {long_chain_factor}.")
    if len(splits.image_shape) != 3:
        raise ValueError(f"evaluate_model scores image models; these data are points of shape "
                         f"{tuple(splits.image_shape)} (a toy density's model is scored by "
                         "keras_ebm.evaluation.distances.evaluate_model).")
    os.makedirs(out_dir, exist_ok=True)
    num_classes = splits.num_classes
    if classifier is None:
        classifier = reference.for_dataset(splits, os.path.join(out_dir, "reference_classifier.keras"))
    if not reference.judges(classifier, splits):
        raise ValueError(f"The classifier judges {classifier.input_shape[1:]} images of "
                         f"{classifier.output_shape[-1]} classes; these data are "
                         f"{tuple(splits.image_shape)} images of {num_classes} classes. Pass "
                         "classifier=None to use (or train) the reference for these data.")
    test_x = data.preprocess(splits.x_test[:num_test], pad).numpy()
    test_y = splits.y_test[:num_test]
    refine_steps = getattr(model, "refine_steps", 0)
    results = {"num_test": len(test_x), "langevin_steps": steps, "refine_steps": refine_steps,
               "chain_start": getattr(model, "chain_start", "uniform"),
               "conditional_unconditional_steps": int(warm_start * steps)}
    detectors = {}
    if isinstance(model, JEM):
        results.update(_classification(model, test_x, test_y, out_dir))
        detectors = fit_detectors(model, splits, pad)
    results["ood"] = _ood_detection(model, test_x, test_y, out_dir, detectors)

    # Samples from noise, judged by the reference classifier.
    real_features = reference_features(classifier, _crop(test_x, pad))

    def judged_seeds(**chains):
        """Per seed: FID, coverage; summed label counts; the last seed's samples."""
        fids, coverage, label_counts = [], [], 0
        for seed in seeds:
            samples = _crop(model.generate(num_samples, seed=seed, **chains).numpy(), pad)
            fid, counts, covered = _judge(classifier, samples, real_features, num_classes)
            fids.append(fid)
            coverage.append(covered)
            label_counts = label_counts + counts
        return fids, coverage, label_counts, samples

    fids, coverage, label_counts, samples = judged_seeds(steps=steps)
    train_x = data.preprocess(splits.x_train, 0).numpy()
    held_out_source, held_out = floor_images(splits, num_samples)
    held_out = train_x if held_out_source == "train" else data.preprocess(held_out, 0).numpy()
    floors = real_floor(classifier, held_out, real_features, num_samples, repeats=floor_repeats)
    noise = np.random.default_rng(0).uniform(-1, 1, (num_samples,) + samples.shape[1:])
    fid_report = {"mean": float(np.mean(fids)), "std": _sample_std(fids),
                  "per_seed": fids, "floor": float(np.mean(floors)),
                  "floor_std": _sample_std(floors),
                  "floor_per_subset": floors, "floor_images": held_out_source,
                  "ratio_to_floor": float(np.mean(fids) / np.mean(floors)),
                  "ceiling_noise": metrics.frechet_distance(
                      reference_features(classifier, noise), real_features)}
    results["unconditional"] = {"classifier_fid": fid_report, "label_coverage": min(coverage),
                                "label_histogram": np.asarray(label_counts).tolist()}
    if long_chain_factor:
        # The same seeds as the stated chains: one seed's FID scatters as much as the effect.
        long_steps = int(long_chain_factor * steps)
        longer = {"refine_steps": long_chain_factor * refine_steps} if refine_steps else {}
        long_fids, long_coverage, long_counts, _ = judged_seeds(steps=long_steps, **longer)
        results["long_chain"] = {
            "steps": long_steps, "refine_steps": long_chain_factor * refine_steps,
            "classifier_fid": float(np.mean(long_fids)), "per_seed": long_fids,
            "fid_ratio_to_stated_steps": float(np.mean(long_fids) / np.mean(fids)),
            "ratio_per_seed": [a / b for a, b in zip(long_fids, fids)],
            "label_coverage": min(long_coverage),
            "label_histogram": np.asarray(long_counts).tolist()}
    # As many test images as samples, drawn at random: the test set is ordered by writer.
    test_drawn = np.random.default_rng(0).choice(len(test_x), min(len(samples), len(test_x)),
                                                 replace=False)
    results["nearest_train_distance"] = {
        "samples": float(np.median(metrics.nearest_distances(samples, train_x))),
        "test_images": float(np.median(metrics.nearest_distances(_crop(test_x[test_drawn], pad),
                                                                 train_x))),
    }
    rows = {"real": _crop(test_x[:10], pad)}
    for i in range(5):
        rows[f"noise -> E(x) {i + 1}"] = samples[10 * i:10 * i + 10]
    if isinstance(model, JEM):
        per_class = max(1, num_samples // num_classes)
        labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
        cond = _crop(model.generate(len(labels), steps=steps, labels=labels, seed=seeds[0]).numpy(), pad)
        predicted = reference.predict(classifier, cond).argmax(-1)
        results["conditional_sample_accuracy"] = float(np.mean(predicted == labels))
        results["conditional_sample_accuracy_per_class"] = [
            float(np.mean(predicted[labels == c] == c)) for c in range(num_classes)]
        warm = _crop(model.generate(len(labels), steps=steps, labels=labels, seed=seeds[0],
                                    unconditional_steps=int(warm_start * steps)).numpy(), pad)
        results["conditional_sample_accuracy_warm"] = reference.label_accuracy(classifier, warm, labels)
        for c in range(num_classes):
            rows[f"E(x, y={c})"] = cond[c * per_class:c * per_class + 10]
    plotting.save_grid(rows, os.path.join(out_dir, "samples.png"),
                       title=f"{steps} Langevin steps{f' + {refine_steps} noise-free' if refine_steps else ''} "
                             f"from {results['chain_start'].replace('_', ' ')} starts")
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
        lines.append(f"ECE (15 bins)           {100 * results['ece']:.2f}% (temperature "
                     f"{results['temperature']:.3g}; at 1: {100 * results['ece_uncalibrated']:.2f}%)")
    for name, by_score in results["ood"].items():
        auroc = "  ".join(f"{score} {v['auroc']:.3f}" for score, v in by_score.items())
        lines.append(f"OOD AUROC {name:<18} {auroc}")
    fid = results["unconditional"]["classifier_fid"]
    lines.append(f"classifier FID          {fid['mean']:.2f} +- {fid['std']:.2f} = "
                 f"{fid['ratio_to_floor']:.1f}x the real floor {fid['floor']:.2f} +- "
                 f"{fid['floor_std']:.2f} (noise {fid['ceiling_noise']:.1f})")
    histogram = results["unconditional"]["label_histogram"]
    lines.append(f"label coverage          {results['unconditional']['label_coverage']}/"
                 f"{len(histogram)}")
    if "long_chain" in results:
        long = results["long_chain"]
        steps = f"{long['steps']} + {long['refine_steps']}" if long.get("refine_steps") else long["steps"]
        lines.append(f"at {steps} steps{' ' * max(1, 10 - len(str(steps)))}FID {long['classifier_fid']:.2f} "
                     f"({long['fid_ratio_to_stated_steps']:.2f}x), coverage "
                     f"{long['label_coverage']}/{len(histogram)}")
    if "conditional_sample_accuracy" in results:
        lines.append(f"conditional sample acc  {100 * results['conditional_sample_accuracy']:.1f}% "
                     f"(first {results['conditional_unconditional_steps']} of "
                     f"{results['langevin_steps']} steps on E(x): "
                     f"{100 * results['conditional_sample_accuracy_warm']:.1f}%)")
        worst = min(results["conditional_sample_accuracy_per_class"])
        lines.append(f"  worst class           {100 * worst:.1f}%")
    near = results["nearest_train_distance"]
    lines.append(f"nearest-train L2        samples {near['samples']:.2f}, "
                 f"test images {near['test_images']:.2f}")
    return "\n".join(lines)
