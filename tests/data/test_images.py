import numpy as np
import pytest

from keras_ebm import data
from keras_ebm.data import images


def write_npz(path, n_train=30, n_test=10, **overrides):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train).astype(np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test).astype(np.uint8),
    )
    arrays.update(overrides)
    np.savez(path, **arrays)
    return arrays


def test_bundled_mnist_is_the_standard_mnist():
    arrays = data.load_npz(data.BUNDLED["mnist"])
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["x_test"].shape == (10000, 28, 28)
    assert arrays["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(arrays["y_test"]),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert list(arrays["y_train"][:5]) == [5, 0, 4, 1, 9]


def test_splits_are_disjoint_and_seeded(tmp_path):
    path = tmp_path / "d.npz"
    arrays = write_npz(path, n_train=50)
    a = data.load_dataset(data_file=str(path), validation_size=10, seed=1)
    b = data.load_dataset(data_file=str(path), validation_size=10, seed=1)
    assert len(a.x_train) == 40 and len(a.x_val) == 10 and a.image_shape == (28, 28, 1)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    all_images = np.concatenate([a.x_train, a.x_val])[..., 0]
    assert sorted(map(bytes, all_images)) == sorted(map(bytes, arrays["x_train"]))
    assert len(data.load_dataset(data_file=str(path), validation_size=10, subset=7).x_train) == 7


def test_preprocess_scales_to_minus_one_one_and_pads_with_background():
    x = np.array([0, 255, 51], np.uint8).reshape(1, 1, 3, 1)
    y = data.preprocess(x).numpy()
    np.testing.assert_allclose(y.ravel(), [-1.0, 1.0, 51 / 127.5 - 1], rtol=1e-6)
    padded = data.preprocess(np.full((1, 28, 28, 1), 255, np.uint8), pad=2).numpy()
    assert padded.shape == (1, 32, 32, 1)
    assert padded[0, 0, 0, 0] == -1.0 and padded[0, 2, 2, 0] == 1.0


def test_dataset_batches_and_dequantization():
    x = np.full((10, 4, 4, 1), 128, np.uint8)
    y = np.arange(10, dtype=np.int32)
    batches = list(data.make_dataset(x, y, batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_allclose(batches[0][0].numpy(), 128 / 127.5 - 1, atol=1e-6)
    noisy = np.concatenate([b[0].numpy() for b in data.make_dataset(x, y, 4, dequantize=True)])
    # One grey level of uniform noise: values spread over [128, 129) / 127.5 - 1 (times 255/256).
    assert noisy.std() > 1e-3
    assert noisy.min() >= 128 * 255 / 256 / 127.5 - 1 - 1e-6
    assert noisy.max() <= 129 * 255 / 256 / 127.5 - 1 + 1e-6
    shuffled = np.concatenate([b[1].numpy() for b in data.make_dataset(x, y, 4, shuffle=True)])
    assert sorted(shuffled) == list(range(10))


def test_shift_translates_each_image_by_whole_pixels_within_bounds():
    images = np.zeros((64, 28, 28, 1), np.uint8)
    images[:, 14, 14, 0] = 255  # one bright pixel per image
    labels = np.arange(64)
    ds = data.make_dataset(images, labels, batch_size=64, shuffle=True, shift=2, seed=3)
    epochs = [next(iter(ds)) for _ in range(2)]
    offsets = []
    for x, y in epochs:
        x = x.numpy()
        assert np.all(np.sum(x > 0, axis=(1, 2, 3)) == 1)  # the pixel survives, unblurred
        assert sorted(y.numpy()) == list(range(64))
        offsets.append(np.argwhere(x[..., 0] > 0)[:, 1:] - 14)
    assert np.abs(offsets[0]).max() == 2
    assert len({tuple(o) for o in offsets[0]}) > 10  # per-image, not per-batch, shifts
    assert not np.array_equal(offsets[0], offsets[1])  # new shifts every epoch
    unshifted = next(iter(data.make_dataset(images, labels, batch_size=64)))[0].numpy()
    assert np.all(unshifted[:, 14, 14, 0] == 1.0)
    with pytest.raises(ValueError, match="shift"):
        data.make_dataset(images, labels, batch_size=8, shift=-1)


def test_missing_file_gives_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="Data file not found.*pass data_file=PATH"):
        data.load_dataset(data_file=str(tmp_path / "nope.npz"))


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(data.DataError, match="corrupt or not an .npz"):
        data.load_dataset(data_file=str(path))
    truncated = tmp_path / "truncated.npz"
    write_npz(truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(data.DataError, match="corrupt"):
        data.load_dataset(data_file=str(truncated))


def test_wrong_arrays_give_a_clear_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(data.DataError, match="lacks the arrays"):
        data.load_dataset(data_file=str(path))
    path = tmp_path / "float.npz"
    write_npz(path, x_train=np.zeros((30, 28, 28), np.float32))
    with pytest.raises(data.DataError, match="uint8"):
        data.load_dataset(data_file=str(path))


def test_unknown_dataset_name():
    with pytest.raises(data.DataError, match="Unknown dataset 'cifar'.*tfds:NAME"):
        data.load_dataset("cifar")


def test_tfds_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(images, "_online", lambda *a, **k: False)
    with pytest.raises(data.DataError, match="not prepared.*no internet"):
        data.load_dataset("tfds:fashion_mnist")
