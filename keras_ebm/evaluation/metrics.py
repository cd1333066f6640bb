"""Evaluation metrics for EBM classifiers."""

import numpy as np


def softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def expected_calibration_error(probs, labels, num_bins=15):
    """Expected calibration error with equal-width confidence bins.

    ``ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|`` over the bins of
    the top-class confidence (Guo et al. 2017; 15 bins is their default).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
    # Bin b holds confidences in (b / num_bins, (b + 1) / num_bins].
    bins = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def auroc(scores_in, scores_out):
    """Area under the ROC curve for telling in-distribution (higher score) from
    out-of-distribution inputs: P(score_in > score_out), ties counted half.

    Mann-Whitney U from average ranks, so ties within and across the two sets are exact.
    """
    scores_in = np.asarray(scores_in, dtype=np.float64).ravel()
    scores_out = np.asarray(scores_out, dtype=np.float64).ravel()
    if not len(scores_in) or not len(scores_out):
        raise ValueError("auroc needs at least one in- and one out-of-distribution score.")
    values, inverse, counts = np.unique(np.concatenate([scores_in, scores_out]),
                                        return_inverse=True, return_counts=True)
    # Tied values share the mean of the ranks they span.
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    n_in, n_out = len(scores_in), len(scores_out)
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def fpr_at_tpr(scores_in, scores_out, tpr=0.95):
    """False-positive rate on OOD inputs at the threshold that keeps ``tpr`` of
    the in-distribution inputs (higher score = more in-distribution)."""
    threshold = np.quantile(np.asarray(scores_in, dtype=np.float64), 1.0 - tpr)
    return float(np.mean(np.asarray(scores_out) >= threshold))


def reliability_bins(probs, labels, num_bins=15):
    """Per equal-width confidence bin: ``(mean confidence, accuracy, count)`` arrays."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == np.asarray(labels)).astype(np.float64)
    bins = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
    count = np.bincount(bins, minlength=num_bins)
    safe = np.maximum(count, 1)
    mean_conf = np.bincount(bins, confidence, num_bins) / safe
    accuracy = np.bincount(bins, correct, num_bins) / safe
    return mean_conf, accuracy, count


def frechet_distance(features_a, features_b):
    """Fréchet distance between Gaussians fitted to two feature sets (as in FID)."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(cov_a cov_b) from the eigenvalues of sqrt(cov_a) cov_b sqrt(cov_a), which is PSD.
    vals, vecs = np.linalg.eigh(cov_a)
    sqrt_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def nearest_distances(queries, references, batch_size=1000):
    """Euclidean distance from each query to its nearest reference (flattened)."""
    q = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
    r = np.asarray(references, dtype=np.float32).reshape(len(references), -1)
    r_sq = (r**2).sum(1)
    out = []
    for start in range(0, len(q), batch_size):
        chunk = q[start:start + batch_size]
        d2 = (chunk**2).sum(1)[:, None] - 2 * chunk @ r.T + r_sq[None]
        out.append(np.sqrt(np.clip(d2.min(1), 0, None)))
    return np.concatenate(out)
