import numpy as np
import pytest
import tensorflow as tf

from keras_ebm import restoration

OPTIMUM = np.linspace(-0.8, 0.8, 16, dtype=np.float32).reshape(1, 4, 4, 1)


def quadratic_energy(x):
    """E(x) = |x - OPTIMUM|^2 / 2, minimised by OPTIMUM."""
    return 0.5 * tf.reduce_sum((x - OPTIMUM) ** 2, axis=[1, 2, 3])


DESCENT = dict(step_size=0.1, grad_clip=None)  # plain gradient descent, no noise


def test_inpainting_keeps_observed_pixels_and_moves_missing_ones_to_the_optimum():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, size=(3, 4, 4, 1)).astype(np.float32)
    mask = (rng.uniform(size=(3, 4, 4, 1)) < 0.5).astype(np.float32)
    result = restoration.inpaint(quadratic_energy, image, mask, steps=300, **DESCENT).numpy()
    observed = mask == 1
    np.testing.assert_array_equal(result[observed], image[observed])  # exactly
    expected = np.broadcast_to(OPTIMUM, image.shape)
    np.testing.assert_allclose(result[~observed], expected[~observed], atol=1e-5)


def test_inpainting_snapshots_are_clamped_too():
    image = np.zeros((2, 4, 4, 1), np.float32)
    mask = np.zeros((1, 4, 4, 1), np.float32)
    mask[:, :2] = 1.0  # top half observed, broadcast over the batch
    result, snapshots = restoration.inpaint(quadratic_energy, image, mask, steps=10, seed=3,
                                        snapshot_every=5, **DESCENT)
    assert snapshots.shape == (3, 2, 4, 4, 1)
    np.testing.assert_array_equal(snapshots.numpy()[:, :, :2], 0.0)
    np.testing.assert_array_equal(snapshots[-1], result)


@pytest.mark.parametrize("fidelity", [0.0, 1.0, 4.0])
def test_denoising_reaches_the_posterior_mode(fidelity):
    # E(x) + f/2 |x - y|^2 is minimised by (OPTIMUM + f y) / (1 + f).
    noisy = np.random.default_rng(1).uniform(-0.5, 0.5, size=(2, 4, 4, 1)).astype(np.float32)
    result = restoration.denoise(quadratic_energy, noisy, steps=300, fidelity=fidelity, **DESCENT)
    np.testing.assert_allclose(result, (OPTIMUM + fidelity * noisy) / (1 + fidelity), atol=1e-5)


def test_restoration_takes_a_model_with_an_energy_method():
    class Model:
        energy = staticmethod(quadratic_energy)

    result = restoration.denoise(Model(), np.zeros((1, 4, 4, 1), np.float32), steps=300, **DESCENT)
    np.testing.assert_allclose(result, OPTIMUM, atol=1e-5)


def test_psnr_in_the_model_value_range():
    clean = np.full((1, 4, 4, 1), -1.0, np.float32)
    off = clean + 0.2  # an error of 0.1 in [0, 1] units: PSNR = 20 dB
    assert restoration.psnr(off, clean).numpy()[0] == pytest.approx(20.0, abs=1e-4)
