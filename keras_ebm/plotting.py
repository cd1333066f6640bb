"""Figures of images in [-1, 1]: labelled sample grids and Langevin chain strips."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_ebm import files  # noqa: E402


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Images in ``value_range`` -> uint8 ``[N, H, W, C]``."""
    low, high = value_range
    x = (np.asarray(images, dtype=np.float32) - low) / (high - low)
    return np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def tile(rows):
    """A list of image batches -> one uint8 mosaic ``[H, W, C]``; shorter rows end in black."""
    rows = [to_uint8(r) for r in rows]
    width = max(len(r) for r in rows)
    rows = [np.concatenate([r, np.zeros((width - len(r),) + r.shape[1:], np.uint8)]) for r in rows]
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
    try:
        with files.atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


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


# --- toy densities (points in 1-D or 2-D) ------------------------------------
def _density_panel(ax, centres, values, box, label=None):
    """A density or energy on a grid: a curve in 1-D, an image in 2-D."""
    values = np.asarray(values)
    if values.ndim == 1:
        ax.plot(centres, values, label=label)
        ax.set_xlim(*box)
        return
    image = ax.imshow(values.T, origin="lower", extent=(*box, *box), cmap="viridis")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(label, fontsize=9)


def save_landscape(centres, densities, energy, box, path, title=None):
    """The learned energy ``E(x)`` on a grid next to densities ``{label: values}``
    (e.g. the true ``p`` and the grid-normalised ``p_theta``): curves in 1-D, images in 2-D."""
    one_d = np.ndim(energy) == 1
    panels = 2 if one_d else len(densities) + 1
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.5), squeeze=False)
    axes = axes[0]
    for i, (label, values) in enumerate(densities.items()):
        _density_panel(axes[0 if one_d else i], centres, values, box, label)
    if one_d:
        axes[0].legend(fontsize=8)
        axes[0].set_ylabel("density")
    # Energies far from the data dwarf the landscape near it: clip the colour/axis range.
    top = np.percentile(energy, 90)
    _density_panel(axes[-1], centres, np.minimum(energy, top), box,
                   "energy E(x), clipped at its 90th percentile")
    if one_d:
        axes[-1].set_ylabel("energy E(x)")
    _finish(fig, title, path)


def save_particle_flow(snapshots, steps_per_snapshot, box, path, title=None):
    """Particles ``[num_snapshots, N, dim]`` moving under Langevin dynamics: in 1-D
    their paths against the step, in 2-D one scatter plot per snapshot."""
    snapshots = np.asarray(snapshots)
    steps = np.arange(len(snapshots)) * steps_per_snapshot
    if snapshots.shape[-1] == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(steps, snapshots[..., 0], color="tab:blue", alpha=0.15, lw=0.7)
        ax.set_xlabel("Langevin step")
        ax.set_ylabel("x")
        ax.set_ylim(*box)
    else:
        fig, axes = plt.subplots(1, len(snapshots), figsize=(2.2 * len(snapshots), 2.5),
                                 squeeze=False)
        for ax, step, points in zip(axes[0], steps, snapshots):
            ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.5)
            ax.set_xlim(*box)
            ax.set_ylim(*box)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"step {step}", fontsize=8)
    _finish(fig, title, path)


def save_sample_histogram(samples, centres, true_density, box, path, bins=50, title=None):
    """Histogram of ``samples [N, dim]`` against the true density on the grid
    ``centres``: overlaid in 1-D, side by side in 2-D."""
    samples = np.asarray(samples)
    if samples.shape[-1] == 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(samples[:, 0], bins=bins, range=box, density=True, alpha=0.5, label="samples")
        ax.plot(centres, true_density, "r", label="true density")
        ax.legend(fontsize=8)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
        axes[0].hist2d(samples[:, 0], samples[:, 1], bins=bins, range=[box, box], density=True)
        axes[0].set_title("samples", fontsize=9)
        axes[0].set_aspect("equal")
        _density_panel(axes[1], centres, true_density, box, "true density")
    _finish(fig, title, path)
