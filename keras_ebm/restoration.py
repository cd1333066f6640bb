"""Denoising and inpainting with a trained energy: descend ``E`` from the corrupted image.

Both run :class:`keras_ebm.samplers.langevin.LangevinSampler` (by default noise-free energy
descent with the training recipe's clipped steps) on an energy built from the
model's:

* :func:`denoise` starts at the noisy image and minimises
  ``E(x) + fidelity / 2 * |x - noisy|^2``: with ``fidelity = 1 / sigma^2`` this
  is the posterior energy of ``x`` under Gaussian noise of std ``sigma``;
  ``fidelity = 0`` is plain energy descent.
* :func:`inpaint` keeps the observed pixels and moves only the missing ones:
  the chain runs on ``z`` with energy ``E(mask * image + (1 - mask) * z)``, whose
  gradient vanishes on observed pixels, and the result puts the observed pixels
  back exactly.

``model`` is anything with an ``energy(x) -> [batch]`` method (an EBM or JEM)
or such a function itself.
"""

import tensorflow as tf

from keras_ebm.samplers.langevin import LangevinSampler


def _energy_fn(model):
    return getattr(model, "energy", model)


def _sum_per_example(x):
    return tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def _sampler(steps, step_size, noise_scale, grad_clip, value_range):
    return LangevinSampler(steps=steps, step_size=step_size, noise_scale=noise_scale,
                           grad_clip=grad_clip, value_range=value_range)


def denoise(model, noisy, steps=20, fidelity=0.0, step_size=10.0, noise_scale=0.0,
            grad_clip=0.03, value_range=(-1.0, 1.0), seed=0, snapshot_every=0):
    """Restore ``noisy`` images by descending ``E(x) + fidelity / 2 * |x - noisy|^2``.

    Args:
        model: an EBM/JEM or an energy function ``x -> [batch]``.
        noisy: corrupted images in the model's value range.
        steps, step_size, noise_scale, grad_clip, value_range: the sampler's
            (the defaults are the training recipe's update without its noise).
        fidelity: weight of the pull back to ``noisy``; ``1 / sigma^2`` for
            Gaussian noise of std ``sigma`` (MAP), 0 for plain energy descent.
        seed: sampler seed (matters only with ``noise_scale > 0``).
        snapshot_every: if > 0 also return the states every so many steps.
    """
    energy = _energy_fn(model)
    fidelity = float(fidelity)

    def posterior_energy(x, observed):
        return energy(x) + 0.5 * fidelity * _sum_per_example((x - observed) ** 2)

    noisy = tf.convert_to_tensor(noisy, tf.float32)
    return _sampler(steps, step_size, noise_scale, grad_clip, value_range)(
        posterior_energy, noisy, seed=[seed, 0], condition=noisy, snapshot_every=snapshot_every)


def inpaint(model, image, mask, steps=20, step_size=10.0, noise_scale=0.0, grad_clip=0.03,
            value_range=(-1.0, 1.0), start=None, seed=0, snapshot_every=0):
    """Fill the pixels where ``mask == 0`` by descending the energy, keeping the
    pixels where ``mask == 1`` exactly.

    Args:
        model: an EBM/JEM or an energy function ``x -> [batch]``.
        image: images in the model's value range (missing pixels: any value).
        mask: 1 for observed, 0 for missing pixels; broadcastable to ``image``.
        start: initial values of the missing pixels (same shape as ``image``);
            default uniform noise over ``value_range``.
        steps, step_size, noise_scale, grad_clip, value_range, seed: the sampler's.
        snapshot_every: if > 0 also return the (clamped) states every so many steps.
    """
    energy = _energy_fn(model)
    image = tf.convert_to_tensor(image, tf.float32)
    mask = tf.broadcast_to(tf.convert_to_tensor(mask, tf.float32), tf.shape(image))
    if start is None:
        start = tf.random.stateless_uniform(tf.shape(image), [seed, 1], *value_range)

    def clamp(z):
        return mask * image + (1.0 - mask) * z

    def clamped_energy(z, observed):
        image, mask = observed
        return energy(mask * image + (1.0 - mask) * z)

    result = _sampler(steps, step_size, noise_scale, grad_clip, value_range)(
        clamped_energy, clamp(start), seed=[seed, 0], condition=(image, mask),
        snapshot_every=snapshot_every)
    if snapshot_every:
        z, snapshots = result
        return clamp(z), clamp(snapshots)
    return clamp(result)


def psnr(images, reference, value_range=(-1.0, 1.0)):
    """Peak signal-to-noise ratio per image (dB), with the peak the range's width."""
    width = value_range[1] - value_range[0]
    return tf.image.psnr(tf.convert_to_tensor(images, tf.float32) - value_range[0],
                         tf.convert_to_tensor(reference, tf.float32) - value_range[0], width)
