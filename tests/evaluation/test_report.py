import json
import os

import keras
import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

from keras_ebm import data
from keras_ebm.cli import evaluate as evaluate_cli
from keras_ebm.evaluation import metrics, ood, reference, report
from keras_ebm.models import networks
from keras_ebm.models.ebm import EBM, JEM
from keras_ebm.samplers.langevin import LangevinSampler

FIGURES = ("energy_histograms.png", "samples.png", "chain.png")


@pytest.fixture(scope="module")
def splits():
    return data.load_dataset("mnist", validation_size=0, subset=2000)


def mean_pixel_ebm():
    """E(x) = mean pixel value: dark (mostly background) digits are likely, bright images not."""
    inputs = keras.Input((28, 28, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    score = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(pooled)
    network = keras.Model(inputs, keras.layers.Rescaling(-1.0)(score))
    return EBM(network, buffer_size=10, sampler=LangevinSampler(steps=2), seed=0)


def test_ood_detection_on_a_hand_made_energy(splits, tmp_path):
    results = report.evaluate_model(mean_pixel_ebm(), splits, str(tmp_path), num_samples=40,
                                      steps=2, seeds=(0, 1), num_test=300)
    # Inverted digits and uniform noise are brighter than every test digit.
    assert results["ood"]["inverted"]["log_px"]["auroc"] == 1.0
    assert results["ood"]["uniform_noise"]["log_px"]["auroc"] == 1.0
    assert results["ood"]["inverted"]["log_px"]["fpr95"] == 0.0
    # A vertical flip keeps the mean: no better than chance.
    assert results["ood"]["flipped_vertical"]["log_px"]["auroc"] == pytest.approx(0.5, abs=0.1)
    assert "accuracy" not in results and "conditional_sample_accuracy" not in results
    fid = results["unconditional"]["classifier_fid"]
    assert fid["floor"] < fid["ceiling_noise"] and len(fid["per_seed"]) == 2
    assert len(fid["floor_per_subset"]) == 50 and fid["floor_images"] == "train"
    assert fid["std"] == pytest.approx(np.std(fid["per_seed"], ddof=1))  # a sample std
    assert fid["floor_std"] == pytest.approx(np.std(fid["floor_per_subset"], ddof=1))
    assert fid["ratio_to_floor"] == pytest.approx(fid["mean"] / fid["floor"])
    # The memorisation yardstick: 40 random test images (as many as samples), brute force.
    test_x = data.preprocess(splits.x_test[:300]).numpy().reshape(300, -1)
    train_x = data.preprocess(splits.x_train).numpy().reshape(len(splits.x_train), -1)
    picked = test_x[np.random.default_rng(0).choice(300, 40, replace=False)]
    nearest = [np.sqrt(((train_x - image) ** 2).sum(1)).min() for image in picked]
    assert results["nearest_train_distance"]["test_images"] == pytest.approx(
        np.median(nearest), rel=1e-4)
    long = results["long_chain"]
    assert long["steps"] == 6 and len(long["per_seed"]) == 2  # every seed, like the FID
    assert long["fid_ratio_to_stated_steps"] == pytest.approx(
        np.mean(long["per_seed"]) / np.mean(fid["per_seed"]))
    assert long["ratio_per_seed"] == pytest.approx(
        [a / b for a, b in zip(long["per_seed"], fid["per_seed"])])
    assert sum(long["label_histogram"]) == 80
    assert set(results["ood"]) >= {"letters", "rotated_90", "flipped_horizontal", "stitched_halves"}
    assert sum(results["unconditional"]["label_histogram"]) == 80
    for name in FIGURES + ("evaluation.json",):
        assert os.path.isfile(tmp_path / name), name


def test_jem_evaluation_reports_classification_and_conditional_samples(splits, tmp_path):
    keras.utils.set_random_seed(0)
    model = JEM(networks.get_network("cnn", num_outputs=10), buffer_size=100,
                sampler=LangevinSampler(steps=2), px_weight=0.0, seed=0)
    model.compile(keras.optimizers.Adam(1e-3))
    x = data.preprocess(splits.x_train).numpy()
    model.fit(x, splits.y_train, batch_size=100, epochs=1, verbose=0)
    model.temperature = 2.0
    results = report.evaluate_model(model, splits, str(tmp_path), num_samples=20, steps=3,
                                      seeds=(0,), num_test=500)
    test_x = data.preprocess(splits.x_test[:500]).numpy()
    logits = model.predict(test_x, verbose=0)
    expected = np.mean(logits.argmax(-1) == splits.y_test[:500])
    assert results["accuracy"] == pytest.approx(expected)
    # Calibration is scored with the model's temperature, and without it beside.
    assert results["temperature"] == 2.0
    assert results["ece"] == pytest.approx(metrics.expected_calibration_error(
        metrics.softmax(logits / 2.0), splits.y_test[:500]), abs=1e-6)
    assert results["ece_uncalibrated"] == pytest.approx(metrics.expected_calibration_error(
        metrics.softmax(logits), splits.y_test[:500]), abs=1e-6)
    assert results["ece"] != pytest.approx(results["ece_uncalibrated"], abs=1e-4)
    assert 0 <= results["conditional_sample_accuracy"] <= 1
    assert 0 <= results["conditional_sample_accuracy_warm"] <= 1
    per_class = results["conditional_sample_accuracy_per_class"]
    assert len(per_class) == 10 and np.mean(per_class) == pytest.approx(
        results["conditional_sample_accuracy"])
    assert results["conditional_unconditional_steps"] == 2  # 0.8 of 3 steps
    with pytest.raises(ValueError, match="warm_start"):
        report.evaluate_model(model, splits, str(tmp_path), warm_start=1.5)
    assert set(results["ood"]["inverted"]) == {"log_px", "grad_norm", "max_prob", "max_logit",
                                               "feature_mahalanobis", "layer_mahalanobis",
                                               "orientation", "feature_knn", "layer_knn",
                                               "combined"}
    # The largest logit is the joint of the other two: log p(x) + log max p(y|x) (+ log Z).
    scores = report.ood_scores(model, test_x[:50])
    np.testing.assert_allclose(scores["max_logit"],
                               scores["log_px"] + np.log(scores["max_prob"]), atol=1e-4)
    assert os.path.isfile(tmp_path / "reliability.png")
    assert "test accuracy" in report.format_table(results)
    # The Mahalanobis detector reads the features the logits are a linear map of.
    features = report.penultimate_features(model, test_x[:50])
    kernel, bias = model.network.layers[-1].get_weights()
    np.testing.assert_allclose(features @ kernel + bias, logits[:50], atol=1e-4)
    detector = report.fit_feature_mahalanobis(model, x, splits.y_train)
    scores = report.ood_scores(model, test_x[:50], mahalanobis=detector)
    np.testing.assert_allclose(scores["feature_mahalanobis"], detector.score(features), rtol=1e-6)
    # The layer ensemble reads every hidden layer; the combined score sums standardised
    # scores, standardised on the validation images (else on training images not fitted).
    assert [layer.name for layer in report.hidden_layers(model.network)] == [
        layer.name for layer in model.network.layers[1:-1] if layer.weights]
    chunked = report.hidden_features(model, test_x[:20], chunk=7)
    for layer, features in zip(report.hidden_layers(model.network), chunked):
        whole = ood.pooled_features(report.layer_outputs(model.network, layer, test_x[:20]))
        np.testing.assert_allclose(features, whole, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="knn_layers=0"):
        report.fit_detectors(model, splits, knn_layers=0)
    order = np.random.default_rng(0).permutation(len(splits.x_train))
    with_validation = data.load_dataset("mnist", validation_size=300, subset=2000)
    for splits_, held_out in ((splits, splits.x_train[order[len(order) * 4 // 5:]]),
                              (with_validation, with_validation.x_val)):
        detectors = report.fit_detectors(model, splits_)
        reference = report.ood_scores(model, data.preprocess(held_out).numpy(), **detectors)
        assert reference["layer_mahalanobis"].mean() == pytest.approx(0.0, abs=1e-6)
        scores = report.ood_scores(model, test_x[:50], **detectors)
        # The smallest of the standardised orientation and each of the last three hidden
        # layers' nearest-neighbour similarities.
        features = report.hidden_features(model, test_x[:50])
        drawn = np.random.default_rng(0).permutation(len(splits_.x_train))
        drawn = drawn[:20000 if splits_ is with_validation else len(drawn) * 4 // 5]
        bank = report.hidden_features(model, data.preprocess(splits_.x_train[drawn]).numpy())
        held_out_features = report.hidden_features(model, data.preprocess(held_out).numpy())
        parts, reference_parts = [scores["orientation"]], [reference["orientation"]]
        for layer in (-3, -2, -1):
            unit = [f[layer] / np.linalg.norm(f[layer], axis=1, keepdims=True)
                    for f in (features, held_out_features, bank)]
            parts.append((unit[0] @ unit[2].T).max(1))
            reference_parts.append((unit[1] @ unit[2].T).max(1))
        expected = np.min([(p - r.mean()) / r.std() for p, r in zip(parts, reference_parts)], 0)
        np.testing.assert_allclose(scores["combined"], expected, atol=1e-3)  # float32 bank
        np.testing.assert_allclose(scores["feature_knn"], parts[-1], rtol=1e-5, atol=1e-5)
        assert reference["layer_knn"].mean() == pytest.approx(0.0, abs=1e-4)
    # The orientation is the ensemble's posterior of the given pose among the 8 of the square.
    layers = detectors["layer_mahalanobis"]
    by_pose = np.stack([layers.score(report.hidden_features(model, posed))
                        for posed in ood.symmetries(test_x[:50])])
    np.testing.assert_allclose(scores["orientation"],
                               by_pose[0] - np.log(np.exp(by_pose).sum(0)), rtol=1e-6, atol=1e-6)


def test_cli_writes_into_the_run_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    mean_pixel_ebm().save(run_dir / "checkpoints" / "best.keras")
    assert evaluate_cli.main([str(run_dir), "--samples", "10", "--steps", "1", "--num_test", "50"]) == 0
    results = json.loads((run_dir / "evaluation" / "evaluation.json").read_text())
    assert results["num_test"] == 50
    assert "classifier FID" in capsys.readouterr().out
    assert evaluate_cli.main([str(tmp_path / "nothing")]) == 2
    assert evaluate_cli.main([str(run_dir), "--warm_start", "2"]) == 2
    assert "--warm_start must be a share" in capsys.readouterr().err
    (run_dir / "config.json").write_text(json.dumps({"dataset": "toy:rings"}))
    assert evaluate_cli.main([str(run_dir)]) == 2
    assert "toy density toy:rings" in capsys.readouterr().err


def bars(num, size=12, seed=0):
    """Noisy images of 3 classes: a horizontal bar, a vertical bar, both."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, num)
    images = rng.integers(0, 60, (num, size, size)).astype("uint8")
    middle = slice(size // 2 - 1, size // 2 + 1)
    for image, label in zip(images, labels):
        if label != 1:
            image[middle] = 255
        if label != 0:
            image[:, middle] = 255
    return images, labels.astype("uint8")


def test_a_dataset_without_a_shipped_judge_gets_one_trained_for_it(tmp_path, capsys):
    (x_train, y_train), (x_test, y_test) = bars(400), bars(100, seed=1)
    path = tmp_path / "bars.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"data_file": str(path), "validation_size": 50}))
    model = JEM(networks.get_network("mlp", input_shape=(12, 12, 1), num_outputs=3),
                buffer_size=10, sampler=LangevinSampler(steps=2), seed=0)
    model.save(run_dir / "checkpoints" / "last.keras")
    flags = ["--samples", "30", "--steps", "1", "--num_test", "100"]
    was_on = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    try:
        assert evaluate_cli.main([str(run_dir), *flags]) == 0
        assert not tf_config.is_op_determinism_enabled()  # on for the judge's training only
    finally:
        if was_on:
            tf_config.enable_op_determinism()
    judge_path = run_dir / "evaluation" / "reference_classifier.keras"
    judge = keras.saving.load_model(judge_path)
    assert judge.input_shape[1:] == (12, 12, 1) and judge.output_shape[-1] == 3
    assert json.loads(judge_path.with_suffix(".json").read_text())["test_accuracy"] > 0.9
    results = json.loads((run_dir / "evaluation" / "evaluation.json").read_text())
    assert len(results["conditional_sample_accuracy_per_class"]) == 3
    assert len(results["unconditional"]["label_histogram"]) == 3
    written = judge_path.stat().st_mtime_ns
    assert evaluate_cli.main([str(run_dir), *flags]) == 0  # the kept judge is used again
    assert judge_path.stat().st_mtime_ns == written
    capsys.readouterr()
    assert evaluate_cli.main([str(run_dir), "--dataset", "mnist"]) == 2
    assert "generates 12x12x1 images; mnist holds 28x28x1 images" in capsys.readouterr().err


def test_a_judge_for_other_images_is_refused(splits, tmp_path):
    judge = reference.build_classifier((12, 12, 1), 3)
    with pytest.raises(ValueError, match=r"judges \(12, 12, 1\) images of 3 classes; these data"):
        report.evaluate_model(mean_pixel_ebm(), splits, str(tmp_path), classifier=judge)
    points = data.Splits(*(np.zeros((4, 2), "float32"), np.zeros(4, "int32")) * 3)
    with pytest.raises(ValueError, match="scores image models; these data are points"):
        report.evaluate_model(mean_pixel_ebm(), points, str(tmp_path))


def test_the_fid_floor_is_built_like_the_sample_score(splits):
    """Real held-out images score near their floor; the test set's writer-ordered halves do not
    stand in for it."""
    classifier = reference.load_reference_classifier()
    test_features = report.reference_features(
        classifier, data.preprocess(splits.x_test[:2000]).numpy())
    held_out = data.preprocess(splits.x_train[:1000]).numpy()
    floors = report.real_floor(classifier, held_out, test_features, num_samples=200, repeats=3)
    assert len(floors) == 3 and min(floors) > 0
    rng = np.random.default_rng(0)  # the same subsets, each one's features computed alone
    subsets = [held_out[rng.choice(len(held_out), 200, replace=False)] for _ in range(3)]
    np.testing.assert_allclose(floors, [metrics.frechet_distance(
        report.reference_features(classifier, subset), test_features) for subset in subsets],
        rtol=1e-4)
    # Real images of one class are far from the floor: the floor measures sampling noise only.
    ones = data.preprocess(splits.x_train[splits.y_train == 1][:200]).numpy()
    one_class = metrics.frechet_distance(report.reference_features(classifier, ones), test_features)
    assert one_class > 5 * max(floors)
    with pytest.raises(ValueError, match="held-out images"):
        report.real_floor(classifier, held_out[:10], test_features, num_samples=200)


def test_padded_models_are_judged_on_unpadded_images(tmp_path):
    inputs = keras.Input((32, 32, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    network = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    model = EBM(network, buffer_size=10, sampler=LangevinSampler(steps=1), seed=0)
    splits = data.load_dataset("mnist", validation_size=0, subset=200)
    results = report.evaluate_model(model, splits, str(tmp_path), pad=2, num_samples=20,
                                      steps=2, seeds=(0,), num_test=50)
    assert sum(results["unconditional"]["label_histogram"]) == 20
    assert os.path.isfile(tmp_path / "chain.png")


def test_evaluation_does_not_trigger_retracing_warnings(splits, tmp_path, caplog):
    import logging

    keras.utils.set_random_seed(0)
    model = JEM(networks.get_network("cnn", num_outputs=10), buffer_size=100,
                sampler=LangevinSampler(steps=2), seed=0)
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(data.preprocess(splits.x_train[:500]).numpy(), splits.y_train[:500], batch_size=100,
              epochs=1, verbose=0)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        report.evaluate_model(model, splits, str(tmp_path), num_samples=100, steps=3,
                                seeds=(0, 1, 2), num_test=1000)
    assert "retracing" not in caplog.text
