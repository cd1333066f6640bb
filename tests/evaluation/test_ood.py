import types

import numpy as np
import pytest

from keras_ebm import data
from keras_ebm.evaluation import metrics, ood


@pytest.fixture(scope="module")
def test_images():
    splits = data.load_dataset("mnist", validation_size=0, subset=100)
    return data.preprocess(splits.x_test[:60]).numpy(), splits.y_test[:60]


def test_every_set_matches_the_test_images_and_is_deterministic(test_images):
    images, labels = test_images
    sets = ood.ood_sets(images, labels, seed=3)
    assert set(sets) == set(ood.FAR) | set(ood.NEAR)
    for name, x in sets.items():
        assert x.shape == images.shape and x.dtype == np.float32, name
        assert x.min() >= -1 and x.max() <= 1, name
    again = ood.ood_sets(images, labels, seed=3)
    for name in sets:
        np.testing.assert_array_equal(sets[name], again[name])


def test_geometric_sets_are_the_transforms_they_name(test_images):
    images, labels = test_images
    sets = ood.ood_sets(images, labels)
    np.testing.assert_array_equal(sets["flipped_horizontal"][3, :, 0], images[3, :, -1])
    np.testing.assert_array_equal(sets["flipped_vertical"][3, 0], images[3, -1])
    np.testing.assert_array_equal(sets["rotated_90"][3], np.rot90(images[3], 1, axes=(0, 1)))


def test_stitched_halves_join_two_classes():
    images = np.stack([np.full((4, 4, 1), float(c)) for c in range(10)]) / 10
    labels = np.arange(10)
    stitched = ood.stitched_halves(images, labels, seed=0)
    top, bottom = stitched[:, 0, 0, 0], stitched[:, -1, 0, 0]
    np.testing.assert_allclose(top, images[:, 0, 0, 0])
    assert np.all(top != bottom)  # the bottom half comes from another class


def test_letters_are_centred_like_mnist_digits():
    letters = ood.render_letters(40, seed=0)
    assert letters.shape == (40, 28, 28, 1) and letters.dtype == np.uint8
    for image in letters[..., 0].astype(float):
        rows, cols = np.nonzero(image)
        assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21  # a 20-pixel box
        ys, xs = np.indices(image.shape)
        centre = np.array([(ys * image).sum(), (xs * image).sum()]) / image.sum()
        assert np.all(np.abs(centre - 14) <= 1.0)  # centre of mass at the middle
    assert len({letters[i].tobytes() for i in range(40)}) > 20  # not one glyph repeated


def test_feature_mahalanobis_matches_a_brute_force_per_class_distance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 200)
    centres = rng.normal(0, 5, (3, 4))
    mixing = rng.normal(size=(4, 4))
    features = centres[labels] + rng.normal(size=(600, 4)) @ mixing
    detector = ood.FeatureMahalanobis(features, labels, 3)
    means = [features[labels == c].mean(0) for c in range(3)]
    within = np.concatenate([features[labels == c] - means[c] for c in range(3)])
    precision = np.linalg.inv(np.cov(within, rowvar=False, bias=True))
    queries = rng.normal(0, 6, (50, 4))
    brute = [-min((q - m) @ precision @ (q - m) for m in means) for q in queries]
    np.testing.assert_allclose(detector.score(queries, batch_size=7), brute, rtol=1e-8)
    assert detector.score(np.stack(means)) == pytest.approx(np.zeros(3), abs=1e-9)


def test_feature_mahalanobis_tells_a_shifted_cluster_from_the_classes():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(2), 500)
    features = np.stack([labels * 4.0, np.zeros(1000)], 1) + rng.normal(size=(1000, 2))
    detector = ood.FeatureMahalanobis(features, labels, 2)
    between = np.stack([np.full(500, 2.0), np.zeros(500)], 1) + rng.normal(size=(500, 2))
    aside = np.stack([np.full(500, 2.0), np.full(500, 4.0)], 1) + rng.normal(size=(500, 2))
    assert metrics.auroc(detector.score(features), detector.score(aside)) > 0.99
    # Between the two classes is nearer both than the classes' own outskirts are.
    assert 0.6 < metrics.auroc(detector.score(features), detector.score(between)) < 0.95


def test_feature_mahalanobis_names_a_class_without_images():
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        ood.FeatureMahalanobis(np.zeros((4, 3)), [0, 1, 0, 1], 3)


def test_pooled_features_are_each_channels_mean_and_spread_over_positions():
    maps = np.random.default_rng(0).normal(size=(3, 4, 5, 2))
    pooled = ood.pooled_features(maps)
    assert pooled.shape == (3, 4)
    for n in range(3):
        for c in range(2):
            values = maps[n, :, :, c].ravel()
            assert pooled[n, c] == pytest.approx(values.mean())
            assert pooled[n, 2 + c] == pytest.approx(values.std())
    vectors = np.ones((3, 7))
    np.testing.assert_array_equal(ood.pooled_features(vectors), vectors)


def test_standardized_sum_weighs_each_score_by_its_held_out_spread():
    reference = {"a": np.array([0.0, 2.0, 4.0]), "b": np.array([100.0, 110.0, 120.0])}
    combine = ood.StandardizedSum(reference)
    std_a, std_b = np.std([0, 2, 4]), np.std([100, 110, 120])
    scores = {"a": np.array([2.0, 6.0]), "b": np.array([90.0, 110.0]), "unused": np.zeros(2)}
    np.testing.assert_allclose(combine(scores), [(2 - 2) / std_a + (90 - 110) / std_b,
                                                 (6 - 2) / std_a + (110 - 110) / std_b])
    assert combine(reference).mean() == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"\['b'\] are missing"):
        combine({"a": np.zeros(2)})
    with pytest.raises(ValueError, match="'c' cannot be standardised"):
        ood.StandardizedSum({"c": np.ones(5)})


def test_layer_mahalanobis_finds_what_only_one_layer_sees():
    """Two layers: an OOD set that looks in-distribution to layer 0 and not to layer 1 is
    flagged by the ensemble; each layer's score is its own detector's on pooled features."""
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(2), 400)

    def layers(n, shift=0.0, labels_=None):
        labels_ = labels if labels_ is None else labels_
        early = rng.normal(size=(n, 3, 3, 2)) + labels_[:, None, None, None]
        late = rng.normal(size=(n, 4)) + 3.0 * labels_[:, None] + shift
        return [early, late]

    detector = ood.LayerMahalanobis(layers(800), labels, 2, layers(800))
    held_in, odd = layers(800), layers(800, shift=np.array([0, 0, 0, 6.0]))
    early_alone = ood.FeatureMahalanobis(ood.pooled_features(layers(800)[0]), labels, 2)
    assert detector.detectors[0].means.shape == early_alone.means.shape == (2, 4)
    scores_in, scores_odd = detector.layer_scores(held_in), detector.layer_scores(odd)
    assert 0.4 < metrics.auroc(scores_in[0], scores_odd[0]) < 0.6  # layer 0 is fooled
    assert metrics.auroc(scores_in[1], scores_odd[1]) > 0.99
    assert metrics.auroc(detector.score(held_in), detector.score(odd)) > 0.95
    with pytest.raises(ValueError, match="same layers"):
        ood.LayerMahalanobis(layers(800), labels, 2, layers(800)[:1])


def test_symmetries_are_the_group_of_the_frame():
    image = np.random.default_rng(0).normal(size=(1, 5, 5, 2))
    square = ood.symmetries(image)
    expected = [np.rot90(image, k, axes=(1, 2)) for k in range(4)]
    expected += [np.rot90(image[:, ::-1], k, axes=(1, 2)) for k in range(4)]
    np.testing.assert_array_equal(square[0], image)  # the given pose first
    assert len(square) == 8
    for posed in expected:  # every rotation and mirror image, each once
        assert sum(np.array_equal(posed, s) for s in square) == 1
    wide = np.random.default_rng(1).normal(size=(2, 3, 4, 1))
    rectangle = ood.symmetries(wide)
    assert len(rectangle) == 4 and all(x.shape == wide.shape for x in rectangle)
    for posed in (wide, wide[:, ::-1], wide[:, :, ::-1], np.rot90(wide, 2, axes=(1, 2))):
        assert sum(np.array_equal(posed, s) for s in rectangle) == 1


def test_pose_log_posterior_matches_bayes_rule_and_does_not_overflow():
    scores = np.array([[0.0, 3.0, 1000.0], [-1.0, 3.0, 1000.0], [2.0, 3.0, 990.0]])
    expected = [0.0 - np.log(1 + np.exp(-1) + np.exp(2)), np.log(1 / 3),
                -np.log(2 + np.exp(-10))]
    np.testing.assert_allclose(ood.pose_log_posterior(scores), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 poses"):
        ood.pose_log_posterior(scores[:1])


def test_orientation_tells_upside_down_images_and_sums_to_one_over_the_poses():
    import keras

    from keras_ebm.evaluation import report

    # In-distribution: images brighter at the top (two classes of slope), seen through a
    # vertical-difference filter; pooling keeps no position, so only the filter's sign knows
    # which way up an image is.
    rng = np.random.default_rng(0)

    def ramps(n, labels):
        slope = np.where(labels == 0, 1.0, 2.0)[:, None, None, None]
        rows = np.linspace(1, -1, 8)[None, :, None, None]
        return (slope * rows + 0.3 * rng.normal(size=(n, 8, 8, 1))).astype("float32")

    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(1, (2, 1), use_bias=False)
    logits = keras.layers.Dense(2)(keras.layers.Flatten()(conv(inputs)))
    conv.set_weights([np.array([1.0, -1.0], "float32").reshape(2, 1, 1, 1)])
    model = types.SimpleNamespace(network=keras.Model(inputs, logits), num_outputs=2)
    labels = rng.integers(0, 2, 400)
    layers = report.fit_layer_mahalanobis(model, ramps(400, labels), labels,
                                          ramps(200, rng.integers(0, 2, 200)))
    test = ramps(100, rng.integers(0, 2, 100))
    _, _, upright = report.layer_detectors(model, test, layers)
    _, _, upside_down = report.layer_detectors(model, test[:, ::-1], layers)
    assert metrics.auroc(upright, upside_down) > 0.99
    # A ramp and its mirror image look the same to the filter: the two share the posterior.
    np.testing.assert_allclose(upright, np.log(0.5), atol=0.01)
    total = sum(np.exp(report.layer_detectors(model, posed, layers)[2])
                for posed in ood.symmetries(test))
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)


def test_feature_knn_matches_a_brute_force_cosine_search():
    rng = np.random.default_rng(0)
    bank, queries = rng.normal(size=(300, 6)), rng.normal(size=(40, 6))
    queries[0] = 0.0  # a feature vector of zeros scores 0, not NaN
    unit = lambda f: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    similarity = unit(queries) @ unit(bank).T
    for k in (1, 3, 300):
        expected = np.sort(similarity, axis=1)[:, -k]
        np.testing.assert_allclose(ood.FeatureKNN(bank, k).score(queries, batch_size=7),
                                   expected, rtol=1e-5, atol=1e-6)
    # A bank image scores 1 (itself), and the score ignores the features' length.
    np.testing.assert_allclose(ood.FeatureKNN(bank).score(3.0 * bank[:5]), 1.0, rtol=1e-5)
    for k in (0, 301):
        with pytest.raises(ValueError, match="1 <= k <= N"):
            ood.FeatureKNN(bank, k)


def test_layer_knn_standardises_each_layers_similarity_on_held_out_images():
    rng = np.random.default_rng(1)
    bank = [rng.normal(size=(50, 4, 4, 3)), rng.normal(size=(50, 8))]
    held_out = [rng.normal(size=(30, 4, 4, 3)), rng.normal(size=(30, 8))]
    knn = ood.LayerKNN(bank, held_out)
    by_layer = knn.layer_scores(held_out)
    np.testing.assert_allclose(by_layer[1], ood.FeatureKNN(bank[1]).score(held_out[1]))
    np.testing.assert_allclose(by_layer[0], ood.FeatureKNN(ood.pooled_features(bank[0])).score(
        ood.pooled_features(held_out[0])))
    np.testing.assert_allclose(knn.score(held_out), sum(
        (s - s.mean()) / s.std() for s in by_layer.values()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(knn.layer_scores(bank)[1], 1.0, rtol=1e-5)  # bank images
    with pytest.raises(ValueError, match="same layers"):
        ood.LayerKNN(bank, held_out[:1])


def test_standardized_min_takes_each_images_most_atypical_score():
    reference = {"a": np.array([0.0, 2.0]), "b": np.array([10.0, 30.0])}
    lowest = ood.StandardizedMin(reference)
    # a: mean 1, std 1; b: mean 20, std 10.
    np.testing.assert_allclose(lowest({"a": np.array([1.0, -3.0]), "b": np.array([0.0, 40.0])}),
                               [-2.0, -4.0])
    with pytest.raises(ValueError, match="StandardizedMin needs the scores"):
        lowest({"a": np.zeros(2)})
