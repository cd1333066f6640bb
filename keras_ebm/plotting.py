"""Figures of images in [-1, 1]: labelled sample grids and Langevin chain strips."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Images in ``value_range`` -> uint8 ``[N, H, W, C]``."""
    low, high = value_range
    x = (np.asarray(images, dtype=np.float32) - low) / (high - low)
    return np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def tile(rows):
    """A list of equally long image batches -> one uint8 mosaic ``[H, W, C]``."""
    rows = [to_uint8(r) for r in rows]
    return np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)


def save_grid(rows, path, title=None):
    """Save ``rows`` (``{label: images [n, H, W, C]}``) as one labelled PNG."""
    labels = list(rows)
    num_cols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(
        len(labels), num_cols, figsize=(num_cols * 0.8 + 1.2, len(labels) * 0.8 + 0.4),
        squeeze=False,
    )
    for r, label in enumerate(labels):
        images = to_uint8(rows[label])
        for c in range(num_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c].squeeze(), cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    _finish(fig, title, path)


def save_chain(snapshots, steps_per_snapshot, path, title=None):
    """Save Langevin snapshots ``[num_snapshots, chains, H, W, C]``: one row per
    chain, one column per snapshot, columns labelled by step."""
    snapshots = np.asarray(snapshots)
    num_snapshots, num_chains = snapshots.shape[:2]
    fig, axes = plt.subplots(
        num_chains, num_snapshots, figsize=(num_snapshots * 0.8, num_chains * 0.8 + 0.4),
        squeeze=False,
    )
    images = to_uint8(snapshots)
    for r in range(num_chains):
        for c in range(num_snapshots):
            ax = axes[r, c]
            ax.imshow(images[c, r].squeeze(), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{c * steps_per_snapshot}", fontsize=7)
    _finish(fig, title, path)


def _finish(fig, title, path):
    top = 1.0
    if title:
        fig.suptitle(title, fontsize=9)
        top = 1.0 - 0.3 / fig.get_figheight()
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, top))
    _save(fig, path)


def _save(fig, path):
    """Write the figure atomically (a temporary file, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def save_reliability(mean_confidence, accuracy, count, path, title=None):
    """A reliability diagram: accuracy against confidence per bin, with the diagonal."""
    num_bins = len(count)
    edges = np.linspace(0, 1, num_bins + 1)
    fig, ax = plt.subplots(figsize=(4, 4))
    used = count > 0
    ax.bar(edges[:-1][used], accuracy[used], width=1 / num_bins, align="edge",
           edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    _finish(fig, title, path)


def save_histograms(values, path, xlabel=None, title=None):
    """Overlaid histograms of ``{name: values}`` on shared bins."""
    everything = np.concatenate([np.ravel(v) for v in values.values()])
    bins = np.linspace(np.percentile(everything, 0.5), np.percentile(everything, 99.5), 60)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, v in values.items():
        ax.hist(np.ravel(v), bins=bins, alpha=0.5, density=True, label=name)
    ax.set_xlabel(xlabel or "")
    ax.legend(fontsize=7)
    _finish(fig, title, path)
