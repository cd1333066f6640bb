"""Deterministic out-of-distribution sets for digit models, built offline.

Far sets (noise, inverted and constant images) are easy for any density model;
near sets (flipped, rotated and stitched digits, rendered letters) keep digit-like
strokes and are what separates a good ``p(x)`` from a pixel-statistics detector.
All images are float32 in [-1, 1], shaped like the test images they come from.
"""

import os

import numpy as np

FAR = ("uniform_noise", "gaussian_noise", "inverted", "constant")
NEAR = ("flipped_vertical", "flipped_horizontal", "rotated_90", "stitched_halves", "letters")

# Letters that no MNIST digit resembles closely (no O, I, l, S, Z, B, b, g, q, ...).
LETTERS = "ACEFHKLMNPRTUVWXYacefhkmnprtuvwxy"
FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif.ttf",
         "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono-Bold.ttf")


def mnist_like(glyph, size=28, box=20):
    """Centre a grey-level glyph (uint8 ``[h, w]``, ink high) as MNIST did: scaled to fit a
    ``box`` x ``box`` square keeping its aspect ratio, then placed by its centre of mass."""
    import tensorflow as tf

    rows, cols = np.nonzero(glyph)
    glyph = glyph[rows.min():rows.max() + 1, cols.min():cols.max() + 1].astype("float32")
    scale = box / max(glyph.shape)
    shape = (max(1, round(glyph.shape[0] * scale)), max(1, round(glyph.shape[1] * scale)))
    small = tf.image.resize(glyph[..., None], shape, method="area", antialias=True).numpy()[..., 0]
    small = small * (255.0 / max(small.max(), 1e-6))
    ys, xs = np.indices(small.shape)
    mass = small.sum()
    centre_y, centre_x = (ys * small).sum() / mass, (xs * small).sum() / mass
    top = int(np.clip(round(size / 2 - centre_y), 0, size - small.shape[0]))
    left = int(np.clip(round(size / 2 - centre_x), 0, size - small.shape[1]))
    image = np.zeros((size, size), "float32")
    image[top:top + small.shape[0], left:left + small.shape[1]] = small
    return np.clip(np.round(image), 0, 255).astype("uint8")


def render_letters(num, seed=0, size=28):
    """``num`` uint8 images ``[num, size, size, 1]`` of letters in DejaVu fonts (shipped with
    matplotlib), sized and centred as MNIST's digits (a 20/28 box); letters and fonts drawn by
    ``seed``."""
    import matplotlib
    from matplotlib import ft2font

    font_dir = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    rng = np.random.default_rng(seed)
    cache = {}
    images = np.empty((num, size, size, 1), "uint8")
    for i in range(num):
        letter = LETTERS[rng.integers(len(LETTERS))]
        font_name = FONTS[rng.integers(len(FONTS))]
        if (letter, font_name) not in cache:
            font = ft2font.FT2Font(os.path.join(font_dir, font_name))
            font.set_size(48, 72)
            font.set_text(letter)
            font.draw_glyphs_to_bitmap()
            cache[letter, font_name] = mnist_like(np.asarray(font.get_image()), size,
                                                    box=max(1, round(size * 20 / 28)))
        images[i, ..., 0] = cache[letter, font_name]
    return images


def stitched_halves(images, labels, seed=0):
    """The top half of each digit over the bottom half of a digit of another class."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    partner = rng.permutation(len(images))
    same = labels[partner] == labels
    for _ in range(10):  # re-draw partners of the same class
        if not same.any():
            break
        partner[same] = rng.integers(0, len(images), same.sum())
        same = labels[partner] == labels
    half = images.shape[1] // 2
    return np.concatenate([images[:, :half], images[partner, half:]], axis=1)


def ood_sets(images, labels=None, seed=0):
    """Far and near OOD sets built from test ``images`` in [-1, 1] ``[N, H, W, C]``, one image
    per test image. ``labels`` (the test labels) enable ``stitched_halves``; ``letters`` are
    made for single-channel images only."""
    images = np.asarray(images, dtype="float32")
    rng = np.random.default_rng(seed)
    shape = images.shape
    sets = {
        "uniform_noise": rng.uniform(-1, 1, shape).astype("float32"),
        "gaussian_noise": np.clip(rng.normal(0, 0.5, shape), -1, 1).astype("float32"),
        "inverted": -images,
        "constant": np.broadcast_to(rng.uniform(-1, 1, (shape[0], 1, 1, 1)), shape).astype("float32"),
        "flipped_vertical": images[:, ::-1],
        "flipped_horizontal": images[:, :, ::-1],
        "rotated_90": np.rot90(images, 1, axes=(1, 2)) if shape[1] == shape[2] else None,
        "stitched_halves": stitched_halves(images, labels, seed) if labels is not None else None,
        "letters": None,
    }
    if shape[-1] == 1:
        letters = render_letters(shape[0], seed, size=min(shape[1], shape[2]))
        pad_y, pad_x = (shape[1] - letters.shape[1]) // 2, (shape[2] - letters.shape[2]) // 2
        letters = np.pad(letters, [(0, 0), (pad_y, shape[1] - letters.shape[1] - pad_y),
                                   (pad_x, shape[2] - letters.shape[2] - pad_x), (0, 0)])
        sets["letters"] = letters.astype("float32") / 127.5 - 1.0
    return {name: np.ascontiguousarray(x) for name, x in sets.items() if x is not None}


class FeatureMahalanobis:
    """The Mahalanobis detector of Lee et al. (2018) on a classifier's features.

    Fitted on in-distribution features and labels: one mean per class and one covariance
    shared by the classes. :meth:`score` is minus the smallest squared Mahalanobis distance
    of a feature vector to a class mean (higher = more in-distribution), so an image counts as
    typical when it lies close to some class in the classifier's own representation.
    """

    def __init__(self, features, labels, num_classes):
        features = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels)
        missing = sorted(set(range(num_classes)) - set(labels.tolist()))
        if features.ndim != 2 or len(features) != len(labels) or missing:
            raise ValueError(f"FeatureMahalanobis needs features [N, D] with N labels covering "
                             f"all {num_classes} classes; got features of shape {features.shape}, "
                             f"{len(labels)} labels and no image of class(es) {missing}.")
        self.means = np.stack([features[labels == c].mean(0) for c in range(num_classes)])
        centred = features - self.means[labels]
        self.precision = np.linalg.pinv(centred.T @ centred / len(features), hermitian=True)

    def score(self, features, batch_size=2000):
        features = np.asarray(features, dtype=np.float64)
        scores = []
        for start in range(0, len(features), batch_size):
            offsets = features[start:start + batch_size, None, :] - self.means[None]
            distances = np.einsum("nci,nci->nc", offsets @ self.precision, offsets)
            scores.append(-distances.min(1))
        return np.concatenate(scores)


def pooled_features(features):
    """Feature maps ``[N, H, W, C]`` -> ``[N, 2C]``: each channel's mean and standard deviation
    over positions (how strongly and how unevenly each detector fires); vectors ``[N, D]``
    pass through."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim == 2:
        return features
    flat = features.reshape(len(features), -1, features.shape[-1])
    return np.concatenate([flat.mean(1), flat.std(1)], axis=1)


def symmetries(images):
    """``images`` ``[N, H, W, C]`` under every symmetry of their frame, the identity first: the
    8 of a square (rotations by multiples of 90 degrees, with and without a mirror) when
    ``H == W``, else the 4 of a rectangle (identity, the two mirrors, half a turn)."""
    images = np.asarray(images)
    mirrors = [images, images[:, ::-1], images[:, :, ::-1], images[:, ::-1, ::-1]]
    if images.shape[1] == images.shape[2]:
        transposed = np.swapaxes(images, 1, 2)
        mirrors += [transposed, transposed[:, ::-1], transposed[:, :, ::-1],
                    transposed[:, ::-1, ::-1]]
    return [np.ascontiguousarray(x) for x in mirrors]


def pose_log_posterior(scores):
    """The log posterior that each image is shown in its given pose, from ``[P, N]``
    log-likelihood-like scores of the image in each of ``P`` poses (given pose first), under a
    uniform prior over the poses: ``scores[0] - logsumexp(scores, axis=0)``. Near 0 when the
    given pose is clearly the likeliest; ``log(1 / P)`` for an image that looks the same in
    every pose; far below when another pose is likelier (an upside-down digit)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) < 2:
        raise ValueError(f"pose_log_posterior needs scores [P, N] for at least 2 poses; got "
                         f"shape {scores.shape}.")
    return scores[0] - np.logaddexp.reduce(scores, axis=0)


class StandardizedSum:
    """The sum of several scores, each first standardised by its mean and standard deviation
    on held-out in-distribution images, so that every score weighs the same whatever its
    units. Fitted on in-distribution data only: no OOD example chooses the weights.

    Args:
        reference: ``{name: [N] scores}`` of held-out in-distribution images.
    """

    def __init__(self, reference):
        self.stats = {}
        for name, values in reference.items():
            values = np.asarray(values, dtype=np.float64)
            if values.ndim != 1 or len(values) < 2 or not values.std() > 0:
                raise ValueError(f"Score {name!r} cannot be standardised: it needs at least 2 "
                                 f"held-out scores that are not all equal; got "
                                 f"{values.size} values with spread {values.std():.3g}.")
            self.stats[name] = (values.mean(), values.std())

    def standardized(self, scores):
        """``[K, N]``: each of the ``K`` scores, standardised."""
        missing = sorted(set(self.stats) - set(scores))
        if missing:
            raise ValueError(f"{type(self).__name__} needs the scores {sorted(self.stats)}; "
                             f"{missing} are missing.")
        return np.stack([(np.asarray(scores[name], np.float64) - mean) / std
                         for name, (mean, std) in self.stats.items()])

    def __call__(self, scores):
        return self.standardized(scores).sum(0)


class StandardizedMin(StandardizedSum):
    """The smallest of several scores, each standardised on held-out in-distribution images:
    an image is as atypical as its most atypical score says. Suits detectors that each see
    one kind of outlier (the pose of an image; a whole that matches no training image), where
    a sum would dilute the one that fires with the others that do not."""

    def __call__(self, scores):
        return self.standardized(scores).min(0)


class FeatureKNN:
    """The nearest-neighbour detector of Sun et al. (2022) on a classifier's features: the
    cosine similarity of an image's features to the ``k``-th nearest of a bank of
    in-distribution features (higher = more in-distribution). It assumes no class-wise
    Gaussian, so it also sees an image whose parts are each typical but whose whole resembles
    no training image (the top of a 7 over the bottom of a 3).

    Args:
        features: ``[N, D]`` features of in-distribution images (the bank).
        k: which neighbour's similarity is the score, ``1 <= k <= N``.
    """

    def __init__(self, features, k=1):
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or not 1 <= k <= len(features):
            raise ValueError(f"FeatureKNN needs a bank of features [N, D] with 1 <= k <= N; got "
                             f"features of shape {features.shape} and k={k}.")
        self.bank = _unit_rows(features)
        self.k = k

    def score(self, features, batch_size=500):
        features = _unit_rows(np.asarray(features, dtype=np.float32))
        scores = []
        for start in range(0, len(features), batch_size):
            similarity = features[start:start + batch_size] @ self.bank.T
            scores.append(-np.partition(-similarity, self.k - 1, axis=1)[:, self.k - 1])
        return np.concatenate(scores)


def _unit_rows(features):
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


class _LayerEnsemble:
    """One detector per layer (``detectors``), their scores standardised on held-out
    in-distribution images and summed (``combine``)."""

    def layer_scores(self, layer_features):
        """``{layer index: [N] scores}``, higher = more in-distribution."""
        return {i: detector.score(pooled_features(f))
                for i, (detector, f) in enumerate(zip(self.detectors, layer_features))}

    def score(self, layer_features):
        """``[N]`` the standardised sum of the layers' scores (higher = more in-distribution)."""
        return self.combine(self.layer_scores(layer_features))


def _check_layers(ensemble, layer_features, held_out_features):
    if len(layer_features) != len(held_out_features) or not layer_features:
        raise ValueError(f"{type(ensemble).__name__} needs features of the same layers (at "
                         f"least one) for fitting and held-out images; got "
                         f"{len(layer_features)} and {len(held_out_features)} layers.")


class LayerKNN(_LayerEnsemble):
    """A :class:`FeatureKNN` on every hidden layer's :func:`pooled_features`; like
    :class:`LayerMahalanobis`, the layers' similarities are standardised on held-out
    in-distribution images and summed.

    Args:
        layer_features: per layer, features of the in-distribution bank images.
        held_out_features: per layer, features of held-out in-distribution images.
        k: the neighbour whose similarity is the score.
    """

    def __init__(self, layer_features, held_out_features, k=1):
        _check_layers(self, layer_features, held_out_features)
        self.detectors = [FeatureKNN(pooled_features(f), k) for f in layer_features]
        self.combine = StandardizedSum(self.layer_scores(held_out_features))


class LayerMahalanobis(_LayerEnsemble):
    """Lee et al. (2018)'s Mahalanobis feature ensemble, fitted on in-distribution data only.

    One :class:`FeatureMahalanobis` per layer on its :func:`pooled_features`; the layers'
    scores are standardised on held-out in-distribution images and summed
    (:class:`StandardizedSum`), in place of the paper's weights learnt from OOD examples,
    which a detector of unknown OOD data does not have. Early layers see stroke direction
    and thickness, late ones the shape, so together they flag images whose strokes are
    unusual (mirrored, rotated) and whose layout is.

    Args:
        layer_features: per layer, features of the in-distribution fitting images.
        labels: their labels.
        num_classes: the number of classes.
        held_out_features: per layer, features of held-out in-distribution images.
    """

    def __init__(self, layer_features, labels, num_classes, held_out_features):
        _check_layers(self, layer_features, held_out_features)
        self.detectors = [FeatureMahalanobis(pooled_features(f), labels, num_classes)
                          for f in layer_features]
        self.combine = StandardizedSum(self.layer_scores(held_out_features))
