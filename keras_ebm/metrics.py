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
    out-of-distribution inputs: P(score_in > score_out), ties counted half."""
    scores_in = np.asarray(scores_in, dtype=np.float64).ravel()
    scores_out = np.asarray(scores_out, dtype=np.float64).ravel()
    both = np.concatenate([scores_in, scores_out])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both[np.diff(np.sort(both), prepend=np.nan) == 0]):
        ranks[both == value] = ranks[both == value].mean()  # average ranks of ties
    n_in, n_out = len(scores_in), len(scores_out)
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))
