"""Distances between a model and a toy density, measured on a grid.

* ``grid_log_masses``: a log-density (true, or the model's ``-E(x)``) normalised
  numerically over a regular grid of the density's box;
* ``total_variation`` and ``kl_divergence`` between two such grids;
* ``histogram_masses``: samples binned on the same grid, for the distance of a
  sampler's output to the truth (with the distance of exact draws of the same
  size as the finite-sample floor);
* ``mmd`` and ``mmd_test``: kernel two-sample distance and permutation test;
* ``region_decomposition`` (with ``mixture_regions``): how much of a distance is in the
  regions' masses (e.g. a mixture's mode weights) and how much in the shapes within them;
* ``evaluate`` / ``evaluate_model``: all of them for one model and density.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp


def grid_points(box, dim, resolution):
    """Centres of a ``resolution^dim`` grid over ``box^dim``, ``[resolution^dim, dim]``
    (the first coordinate varies slowest), and the 1-D centres."""
    low, high = box
    width = (high - low) / resolution
    centres = np.linspace(low + width / 2, high - width / 2, resolution, dtype=np.float32)
    mesh = np.meshgrid(*([centres] * dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1), centres


def default_resolution(dim):
    """Grid cells per axis of :func:`evaluate`'s density grid: 400 in 1-D, 200 in 2-D."""
    return 400 if dim == 1 else 200


def grid_log_masses(log_density_fn, box, dim, resolution, batch_size=8192):
    """Log probability of each grid cell under ``exp(log_density_fn)``, normalised
    numerically over the grid (midpoint rule); shape ``[resolution] * dim``."""
    points, _ = grid_points(box, dim, resolution)
    return log_masses_of(grid_values(log_density_fn, points, batch_size), dim, resolution)


def grid_values(fn, points, batch_size=8192):
    """``fn`` (``[batch, dim] -> [batch]``) at ``points``, in batches; float64 ``[N]``."""
    return np.concatenate([np.asarray(fn(tf.constant(points[i:i + batch_size])),
                                      np.float64).ravel()
                           for i in range(0, len(points), batch_size)])


def log_masses_of(log_density, dim, resolution):
    """Grid-cell log masses ``[resolution] * dim`` from a log-density at the cell centres."""
    log_density = np.asarray(log_density, np.float64).ravel()
    return (log_density - np.logaddexp.reduce(log_density)).reshape([resolution] * dim)


def pool_masses(masses, bins):
    """Sum a ``[resolution] * dim`` grid of masses into ``[bins] * dim`` coarser cells
    (``resolution`` a multiple of ``bins``)."""
    resolution, dim = masses.shape[0], masses.ndim
    if resolution % bins:
        raise ValueError(f"resolution {resolution} is not a multiple of bins {bins}.")
    blocks = masses.reshape(sum(([bins, resolution // bins] for _ in range(dim)), []))
    return blocks.sum(axis=tuple(range(1, 2 * dim, 2)))


def histogram_masses(samples, box, resolution):
    """Share of ``samples [N, dim]`` in each grid cell; samples outside the box
    count in no cell (so the masses sum to less than 1)."""
    samples = np.asarray(samples)
    counts, _ = np.histogramdd(samples, bins=resolution, range=[box] * samples.shape[1])
    return counts / len(samples)


def total_variation(p, q):
    """``0.5 * sum |p - q|`` (probability masses); missing mass counts as a difference."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    return 0.5 * (np.abs(p - q).sum() + abs(p.sum() - q.sum()))


def kl_divergence(log_p, log_q):
    """``KL(p || q)`` from log masses (cells where ``p = 0`` contribute nothing)."""
    p = np.exp(log_p)
    inside = p > 0
    return float(np.sum(p[inside] * (log_p[inside] - log_q[inside])))


def region_decomposition(p, q, regions):
    """Where the masses ``p`` and ``q`` (grids of equal shape) differ: in how much mass each
    region holds, or in its shape within the regions.

    ``regions`` labels each cell with a non-negative integer. Returns ``region_tv``, the TV
    between the regions' masses, and ``shape_tv``, the TV between ``p`` and ``q`` rescaled in
    each region to ``p``'s mass there (a region ``q`` leaves empty takes ``p``'s shape).
    ``region_tv <= TV(p, q) <= region_tv + shape_tv``.
    """
    p, q = np.asarray(p, np.float64).ravel(), np.asarray(q, np.float64).ravel()
    regions = np.asarray(regions).ravel()
    if not p.shape == q.shape == regions.shape:
        raise ValueError(f"p, q and regions need one entry per cell, got {p.size}, {q.size} "
                         f"and {regions.size}.")
    count = int(regions.max()) + 1
    p_mass, q_mass = np.bincount(regions, p, count), np.bincount(regions, q, count)
    empty = (q_mass == 0)[regions]
    rescaled = np.where(empty, p, q * (p_mass / np.where(q_mass > 0, q_mass, 1.0))[regions])
    return {"region_tv": 0.5 * float(np.abs(p_mass - q_mass).sum()),
            "shape_tv": total_variation(p, rescaled)}


def num_components(density):
    """The number of components of a mixture of diagonal Gaussians (``ValueError`` if the
    density is not one)."""
    components = getattr(density.distribution, "components_distribution", None)
    if not isinstance(components, tfp.distributions.MultivariateNormalDiag):
        raise ValueError(f"{density.name} is not a mixture of diagonal Gaussians; its regions "
                         "cannot be told by component.")
    return int(components.batch_shape[0])


def mixture_regions(density, points, within=4.0):
    """For a Gaussian mixture with diagonal components: the index of each point's nearest
    component in standard deviations, or :func:`num_components` ("far") where that is more
    than ``within`` standard deviations away."""
    num_components(density)  # refuses other densities
    components = density.distribution.components_distribution
    means = components.mean().numpy()
    stds = components.stddev().numpy()
    distances = np.sqrt((((points[:, None, :] - means[None]) / stds[None]) ** 2).sum(-1))
    nearest = distances.argmin(axis=1)
    return np.where(distances.min(axis=1) > within, len(means), nearest)


def _sq_distances(x, y):
    return np.maximum(
        (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2.0 * x @ y.T, 0.0)


def _pooled_kernel(x, y, bandwidth):
    pooled = np.concatenate([x, y]).astype(np.float64)
    sq = _sq_distances(pooled, pooled)
    if bandwidth is None:  # median heuristic
        bandwidth = np.sqrt(0.5 * np.median(sq[np.triu_indices(len(pooled), 1)]))
    return np.exp(-sq / (2.0 * bandwidth**2)), bandwidth


def mmd(x, y, bandwidth=None):
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel
    (bandwidth: median heuristic on the pooled samples by default)."""
    kernel, _ = _pooled_kernel(np.asarray(x), np.asarray(y), bandwidth)
    n, m = len(x), len(y)
    kxx, kyy, kxy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                 + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean())


def mmd_test(x, y, num_permutations=200, seed=0, bandwidth=None):
    """Permutation two-sample test of ``x ~ y``: returns ``(mmd^2, p_value)``.

    The statistic is the MMD with the kernel's diagonal removed; the p-value is
    the share of random relabellings of the pooled samples with a statistic at
    least as large (the observed labelling included).
    """
    x, y = np.asarray(x), np.asarray(y)
    kernel, bandwidth = _pooled_kernel(x, y, bandwidth)
    np.fill_diagonal(kernel, 0.0)
    n, m = len(x), len(y)
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    weights = np.stack([labels] + [rng.permutation(labels) for _ in range(num_permutations)])
    stats = np.einsum("pi,pi->p", weights @ kernel, weights)
    p_value = float(np.mean(stats >= stats[0]))
    return mmd(x, y, bandwidth), p_value


def evaluate(energy_fn, samples, density, resolution=None, bins=None, seed=0):
    """Distances between a model and the true density.

    Args:
        energy_fn: the model's energy ``x -> [batch]``; ``p_theta ~ exp(-E)``.
        samples: the model's samples ``[N, dim]`` (e.g. Langevin from noise).
        density: the true :class:`ToyDensity`.
        resolution: grid cells per axis for ``p_theta`` (default 400 in 1-D, 200 in 2-D).
        bins: histogram cells per axis for the samples (default 50 in 1-D, 25 in 2-D);
            a divisor of ``resolution``.

    Returns:
        ``tv_density`` (TV between p_theta and p on the grid), ``kl_density``
        (KL(p || p_theta) on the grid), ``tv_samples`` (TV between the samples'
        histogram and p), ``tv_samples_floor`` (the same for exact draws of equal
        size), ``mmd_samples`` and ``mmd_samples_floor`` (against other exact draws).
    """
    dim = density.dim
    resolution = resolution or default_resolution(dim)
    bins = bins or (50 if dim == 1 else 25)
    log_p = grid_log_masses(density.log_prob, density.box, dim, resolution)
    log_q = grid_log_masses(lambda x: -energy_fn(x), density.box, dim, resolution)
    true_bins = pool_masses(np.exp(log_p), bins)
    samples = np.asarray(samples)
    exact = density.sample(len(samples), seed=seed + 1)
    reference = density.sample(min(len(samples), 2000), seed=seed + 2)
    # One kernel for the score and its floor, fixed by exact draws: a median heuristic over
    # spread-out samples would widen the samples' kernel and flatter their MMD.
    _, bandwidth = _pooled_kernel(exact[:2000], reference, None)
    return {
        "tv_density": total_variation(np.exp(log_p), np.exp(log_q)),
        "kl_density": kl_divergence(log_p, log_q),
        "tv_samples": total_variation(histogram_masses(samples, density.box, bins), true_bins),
        "tv_samples_floor": total_variation(histogram_masses(exact, density.box, bins),
                                            true_bins),
        "mmd_samples": mmd(samples[:2000], reference, bandwidth),
        "mmd_samples_floor": mmd(exact[:2000], reference, bandwidth),
        "mmd_bandwidth": float(bandwidth),
        "num_samples": len(samples),
    }


def evaluate_model(model, density, num_samples=5000, steps=500, seed=0):
    """:func:`evaluate` for a :class:`keras_ebm.EBM`, with samples from
    ``model.generate`` (``steps`` Langevin steps from uniform noise in the box) and the
    energy of its clean-data density (``model.density_energy``)."""
    samples = model.generate(num_samples, steps=steps, seed=seed).numpy()
    return evaluate(model.density_energy, samples, density, seed=seed)
