"""Temperature scaling of a classifier's ``p(y|x)``."""

import numpy as np


def fit_temperature(logits, labels, bounds=(0.05, 20.0)):
    """The temperature ``T`` whose ``softmax(logits / T)`` has the least negative
    log-likelihood on ``labels`` (temperature scaling, Guo et al. 2017), within ``bounds``.

    The NLL is convex in ``1 / T``, so the root of its derivative is found by bisection on
    ``log(1 / T)``. Predictions (the argmax) do not change; only their confidence does.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise ValueError(f"fit_temperature needs logits [n, classes] and n labels, n >= 1; got "
                         f"logits of shape {logits.shape} and {len(labels)} labels.")
    if not 0 < bounds[0] < bounds[1]:
        raise ValueError(f"bounds must be 0 < low < high, got {bounds}.")
    label_logit = logits[np.arange(len(labels)), labels]
    centred = logits - logits.max(-1, keepdims=True)  # softmax(a * logits) without overflow

    def slope(inverse_t):  # d NLL / d(1/T): mean over examples of E_p[z] - z_y
        weights = np.exp(inverse_t * centred)
        expected = (weights * logits).sum(-1) / weights.sum(-1)
        return float(np.mean(expected - label_logit))

    low, high = np.log(1.0 / bounds[1]), np.log(1.0 / bounds[0])
    if slope(np.exp(low)) >= 0:
        return float(bounds[1])
    if slope(np.exp(high)) <= 0:
        return float(bounds[0])
    for _ in range(60):
        middle = 0.5 * (low + high)
        if slope(np.exp(middle)) < 0:
            low = middle
        else:
            high = middle
    return float(np.exp(-0.5 * (low + high)))
