import numpy as np
import pytest

from keras_ebm import data
from keras_ebm.evaluation import ood


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
