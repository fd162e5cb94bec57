"""The file loaders, run on small files written into ``tmp_path``."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unlearn_audit.data import cifar, idx, images
from unlearn_audit.data.datasets import holdout_train_ids, load_dataset
from unlearn_audit.errors import ConfigError, DatasetError, DatasetNotFoundError

N_TRAIN, N_TEST = 20, 10


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _write_idx_set(root: Path, *, suffix: str = ".gz", dotted: bool = False, seed: int = 0):
    """20 training and 10 test images 28x28 with labels; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(N_TRAIN + N_TEST, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=N_TRAIN + N_TEST).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", slice(0, N_TRAIN)), ("t10k", slice(N_TRAIN, None))):
        for kind, array in (("images-idx3", images[rows]), ("labels-idx1", labels[rows])):
            name = f"{part}-{kind}-ubyte".replace("-idx", ".idx" if dotted else "-idx")
            _write(root / f"{name}{suffix}", _idx_bytes(array))
    return images, labels


def _all(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.load(np.arange(len(dataset)))


# ---- IDX --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "dotted"), [(".gz", False), ("", False), ("", True)])
def test_idx_loads_pixels_labels_and_parts_in_file_order(tmp_path, suffix, dotted):
    images, labels = _write_idx_set(tmp_path, suffix=suffix, dotted=dotted)
    dataset = load_dataset("fashion-mnist", tmp_path)
    x, y = _all(dataset)
    assert len(dataset) == N_TRAIN + N_TEST and dataset.input_shape == (1, 28, 28)
    assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(x, torch.from_numpy(images[:, None]).float() / 255)
    assert y.tolist() == labels.tolist()
    assert dataset.train_ids.tolist() == list(range(N_TRAIN))
    assert dataset.heldout_ids.tolist() == list(range(N_TRAIN, N_TRAIN + N_TEST))
    assert dataset.classes[0] == "T-shirt/top" and dataset.classes[9] == "Ankle boot"
    assert dataset.flip_invariant
    assert dataset.normalization is not None and dataset.normalization.mean == (0.2860,)


def test_idx_raw_and_gz_give_the_same_fingerprint_and_a_pixel_changes_it(tmp_path):
    _write_idx_set(tmp_path / "gz", suffix=".gz")
    images, _ = _write_idx_set(tmp_path / "raw", suffix="")
    gz, raw = (
        load_dataset("fashion-mnist", tmp_path / "gz"),
        load_dataset("fashion-mnist", tmp_path / "raw"),
    )
    assert gz.fingerprint == raw.fingerprint
    images[N_TRAIN + 3, 5, 7] ^= 1
    _write(tmp_path / "raw" / "t10k-images-idx3-ubyte", _idx_bytes(images[N_TRAIN:]))
    assert load_dataset("fashion-mnist", tmp_path / "raw").fingerprint != gz.fingerprint


def test_mnist_uses_digit_classes_and_needs_a_root(tmp_path):
    _write_idx_set(tmp_path)
    dataset = load_dataset("mnist", tmp_path)
    assert dataset.classes == tuple(str(d) for d in range(10))
    assert not dataset.flip_invariant and dataset.normalization.mean == (0.1307,)
    with pytest.raises(ConfigError, match="`data_root`"):
        load_dataset("mnist")
    with pytest.raises(DatasetNotFoundError, match="official MNIST IDX files"):
        load_dataset("mnist", tmp_path / "empty")


def test_idx_missing_file_says_where_and_how_to_get_it(tmp_path):
    _write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message
    assert "train-images-idx3-ubyte[" not in message  # only the missing file is listed
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda data: b"\x08\x03" + data[2:], "not an IDX file"),
        (lambda data: data[:2] + b"\x0d" + data[3:], "not 0x08"),
        (lambda data: data[:-5], "truncated"),
        (lambda data: data[:6], "header is truncated"),
        (lambda data: data + b"\0", "malformed"),
    ],
)
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_malformed_idx_names_the_file(tmp_path, damage, match, suffix):
    images, _ = _write_idx_set(tmp_path, suffix=suffix)
    path = tmp_path / f"train-images-idx3-ubyte{suffix}"
    _write(path, damage(_idx_bytes(images[:N_TRAIN])))
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset("fashion-mnist", tmp_path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream_is_a_dataset_error(tmp_path):
    _write_idx_set(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="cannot read") as info:
        load_dataset("fashion-mnist", tmp_path)
    assert str(path) in str(info.value)


def test_idx_count_mismatch_and_label_out_of_range(tmp_path):
    _, labels = _write_idx_set(tmp_path)
    labels_path = tmp_path / "train-labels-idx1-ubyte.gz"
    _write(labels_path, _idx_bytes(labels[: N_TRAIN - 1]))
    with pytest.raises(DatasetError, match="labels \\(19,\\)"):
        load_dataset("fashion-mnist", tmp_path)
    bad = labels[:N_TRAIN].copy()
    bad[4] = 10
    _write(labels_path, _idx_bytes(bad))
    with pytest.raises(DatasetError, match=re.escape("label 10, outside 0..9")) as info:
        load_dataset("fashion-mnist", tmp_path)
    assert str(labels_path) in str(info.value)


@pytest.mark.skipif(
    not Path(idx.FASHION_MNIST_ROOT).is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist_from_the_system_package():
    dataset = load_dataset("fashion-mnist")
    assert len(dataset) == 70000 and len(dataset.train_ids) == 60000
    assert dataset.input_shape == (1, 28, 28) and dataset.num_classes == 10
    assert np.bincount(dataset.labels[dataset.heldout_ids]).tolist() == [1000] * 10


# ---- CIFAR-10 ---------------------------------------------------------------------------------


def _write_cifar(folder: Path, *, per_batch: int = 4, n_test: int = 3, meta: bool = True):
    """Batches in the real format (dicts with bytes keys); returns images (N, 3, 32, 32), labels."""
    rng = np.random.default_rng(1)
    n = 5 * per_batch + n_test
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    starts = [per_batch * i for i in range(6)] + [n]
    for i, (name, start, stop) in enumerate(zip(names, starts[:-1], starts[1:], strict=True)):
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels[start:stop].tolist(),
            b"data": images[start:stop].reshape(stop - start, 3072),
            b"filenames": [f"{i}.png".encode() for i in range(start, stop)],
        }
        # Protocols 3, 4 and 5 name numpy's reconstruction helpers in different ways.
        (folder / name).write_bytes(pickle.dumps(batch, protocol=3 + i % 3))
    if meta:
        names_ = [f"class-{i}".encode() for i in range(10)]
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names_}))
    return images, labels


def test_cifar10_keeps_the_channel_row_column_layout(tmp_path):
    images, labels = _write_cifar(tmp_path / "cifar-10-batches-py")
    dataset = load_dataset("cifar10", tmp_path)
    x, y = _all(dataset)
    assert dataset.input_shape == (3, 32, 32) and len(dataset) == 23
    assert torch.equal(x, torch.from_numpy(images).float() / 255)
    # The flat row is R plane, then G, then B, each row-major: pixel (c, h, w) at c*1024+h*32+w.
    row = images[7].reshape(3072)
    assert x[7, 1, 2, 3] == row[1 * 1024 + 2 * 32 + 3] / 255
    assert y.tolist() == labels.tolist()
    assert dataset.train_ids.tolist() == list(range(20))
    assert dataset.heldout_ids.tolist() == [20, 21, 22]
    assert dataset.classes[3] == "class-3" and dataset.flip_invariant


def test_cifar10_root_may_be_the_batches_folder_and_meta_is_optional(tmp_path):
    _write_cifar(tmp_path / "batches", meta=False)
    dataset = load_dataset("cifar10", tmp_path / "batches")
    assert dataset.classes == cifar.CIFAR10_CLASSES and len(dataset) == 23


def test_cifar10_missing_batch_names_folder_and_archive(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert "data_batch_4" in message and "cifar-10-python.tar.gz" in message
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1," not in message


def test_cifar10_reads_batches_pickled_by_old_numpy(tmp_path):
    """The official files name ``numpy.core.multiarray._reconstruct`` (numpy < 2)."""
    images, _ = _write_cifar(tmp_path / "cifar-10-batches-py")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = {b"data": images[-3:].reshape(3, 3072), b"labels": [1, 2, 3]}
    data = pickle.dumps(batch, protocol=3)  # GLOBAL opcodes: "module\nname\n" in plain text
    assert b"numpy._core.multiarray\n_reconstruct" in data
    path.write_bytes(data.replace(b"numpy._core.", b"numpy.core."))
    dataset = load_dataset("cifar10", tmp_path)
    assert dataset.labels[-3:].tolist() == [1, 2, 3]
    assert torch.equal(dataset.load(np.array([22]))[0][0], torch.from_numpy(images[22]) / 255)


class _CreatesFile:
    """Unpickling this calls ``factory(*args)``: any callable a malicious file could name."""

    def __init__(self, factory, *args) -> None:
        self.factory, self.args = factory, args

    def __reduce__(self):
        return self.factory, self.args


@pytest.mark.parametrize("how", ["open", "os.system"])
def test_cifar10_refuses_a_malicious_pickle_without_running_it(tmp_path, how):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    marker = tmp_path / "pwned"
    payload = (
        _CreatesFile(open, str(marker), "w")
        if how == "open"
        else _CreatesFile(os.system, f"touch {marker}")
    )
    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3], b"x": payload}
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError, match="refusing to unpickle") as info:
        load_dataset("cifar10", tmp_path)
    assert str(folder / "data_batch_3") in str(info.value)
    assert not marker.exists()


def test_cifar10_malformed_batch_is_a_dataset_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    batch = {b"data": np.zeros((4, 1024), np.uint8), b"labels": [0, 1, 2, 3]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError, match="must be uint8 \\(N, 3072\\)"):
        load_dataset("cifar10", tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="not a valid CIFAR-10 file"):
        load_dataset("cifar10", tmp_path)


# ---- image folders ----------------------------------------------------------------------------


def _write_images(folder: Path, count: int, *, mode: str, size=(6, 5), seed: int = 0) -> list:
    """``count`` PNGs in ``folder``; returns their pixels as (C, H, W) uint8 arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = []
    for i in range(count):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
        arrays.append(pixels[None] if mode == "L" else pixels.transpose(2, 0, 1))
    return arrays


def test_folder_without_split_holds_out_30_percent(tmp_path):
    expected = []
    for seed, name in enumerate(["cat", "ant", "bee"]):
        expected += [(name, a) for a in _write_images(tmp_path / name, 4, mode="L", seed=seed)]
    expected.sort(key=lambda item: item[0])  # torchvision lists classes, then files, sorted
    dataset = load_dataset("folder", tmp_path)
    x, y = _all(dataset)
    assert dataset.classes == ("ant", "bee", "cat") and dataset.input_shape == (1, 5, 6)
    assert y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    pixels = np.stack([a for _, a in expected])
    assert torch.equal(x, torch.from_numpy(pixels).float() / 255)
    assert dataset.train_ids.tolist() == holdout_train_ids(12, 0.3).tolist()
    train = pixels[dataset.train_ids] / 255
    assert dataset.normalization.mean == pytest.approx((round(train.mean(), 4),), abs=1e-9)
    assert dataset.normalization.std == pytest.approx((round(train.std(), 4),), abs=1e-9)


def test_folder_with_train_and_test_parts_and_a_test_only_class(tmp_path):
    _write_images(tmp_path / "train" / "a", 3, mode="RGB")
    _write_images(tmp_path / "train" / "b", 2, mode="RGB", seed=1)
    _write_images(tmp_path / "test" / "a", 1, mode="RGB", seed=2)
    _write_images(tmp_path / "test" / "c", 2, mode="L", seed=3)  # converted to RGB
    dataset = load_dataset("folder", tmp_path)
    x, y = _all(dataset)
    assert dataset.classes == ("a", "b", "c") and dataset.input_shape == (3, 5, 6)
    assert dataset.train_ids.tolist() == [0, 1, 2, 3, 4]
    assert dataset.heldout_ids.tolist() == [5, 6, 7]
    assert y.tolist() == [0, 0, 0, 1, 1, 0, 2, 2]
    assert torch.equal(x[6, 0], x[6, 2])  # a grayscale image repeated over R, G, B
    assert len(dataset.normalization.mean) == 3


def test_folder_streaming_matches_in_memory(tmp_path):
    _write_images(tmp_path / "x", 5, mode="RGB")
    _write_images(tmp_path / "y", 5, mode="RGB", seed=1)
    memory = images.load_folder(tmp_path)
    streamed = images.load_folder(tmp_path, max_in_memory_bytes=100)
    assert not memory.samples.streams and streamed.samples.streams
    ids = np.array([7, 0, 3])
    assert torch.equal(memory.load(ids)[0], streamed.load(ids)[0])
    assert streamed.normalization is None and memory.normalization is not None
    assert np.array_equal(memory.train_ids, streamed.train_ids)
    before = streamed.fingerprint
    assert images.load_folder(tmp_path, max_in_memory_bytes=100).fingerprint == before
    path = tmp_path / "y" / "img02.png"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert images.load_folder(tmp_path, max_in_memory_bytes=100).fingerprint != before


def test_folder_with_mixed_sizes_names_the_file(tmp_path):
    _write_images(tmp_path / "a", 3, mode="L")
    _write_images(tmp_path / "b", 1, mode="L", size=(7, 5))
    with pytest.raises(DatasetError, match="is 7x5 pixels but the first image is 6x5") as info:
        load_dataset("folder", tmp_path)
    assert str(tmp_path / "b" / "img00.png") in str(info.value)
    streamed = images.load_folder(tmp_path, max_in_memory_bytes=1)
    with pytest.raises(DatasetError, match="resize"):
        streamed.load(np.arange(len(streamed)))


def test_folder_without_images_explains_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=re.escape("root/<class>/<image>.png")):
        load_dataset("folder", tmp_path)
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("no images")
    with pytest.raises(DatasetNotFoundError, match="no image files under"):
        load_dataset("folder", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        load_dataset("folder", tmp_path / "missing")


# ---- .npz -------------------------------------------------------------------------------------


def test_npz_uint8_nhwc_with_test_part_and_class_names(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 5, 4, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(2, 5, 4, 3), dtype=np.uint8)
    path = tmp_path / "d.npz"
    classes = np.array(["no", "yes", "maybe"])
    np.savez(
        path, x=x, y=np.array([0, 1, 2, 0, 1, 2]), x_test=x_test, y_test=[1, 1], classes=classes
    )
    dataset = load_dataset("npz", path)
    images, y = _all(dataset)
    assert dataset.samples.images.dtype == torch.uint8 and dataset.input_shape == (3, 5, 4)
    expected = np.concatenate([x, x_test]).transpose(0, 3, 1, 2)
    assert torch.equal(images, torch.from_numpy(expected).float() / 255)
    assert y.tolist() == [0, 1, 2, 0, 1, 2, 1, 1]
    assert dataset.train_ids.tolist() == list(range(6)) and dataset.heldout_ids.tolist() == [6, 7]
    assert dataset.classes == ("no", "yes", "maybe")


def test_npz_float_nchw_without_test_part(tmp_path):
    x = np.random.default_rng(0).random((10, 3, 4, 5)).astype(np.float64)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.arange(10) % 4)
    dataset = load_dataset("npz", path)
    images, _ = _all(dataset)
    assert torch.equal(images, torch.from_numpy(x.astype(np.float32)))
    assert dataset.train_ids.tolist() == holdout_train_ids(10, 0.3).tolist()
    assert dataset.classes == ("0", "1", "2", "3") and len(dataset.heldout_ids) == 3
    train = x[dataset.train_ids].astype(np.float32).astype(np.float64)
    assert dataset.normalization.mean == pytest.approx(
        tuple(np.round(train.mean(axis=(0, 2, 3)), 4)), abs=1e-9
    )


@pytest.mark.parametrize(
    ("shape", "input_shape"), [((5, 6, 7), (1, 6, 7)), ((5, 3, 4, 3), (3, 4, 3))]
)
def test_npz_three_dims_get_one_channel_and_ambiguous_means_nchw(tmp_path, shape, input_shape):
    path = tmp_path / "d.npz"
    x = (np.arange(np.prod(shape)) % 256).astype(np.uint8).reshape(shape)
    np.savez(path, x=x, y=[0, 1, 0, 1, 0])
    assert load_dataset("npz", path).input_shape == input_shape


def test_npz_constant_images_get_no_normalization(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.full((6, 2, 2), 7, np.uint8), y=[0, 1, 0, 1, 0, 1])
    dataset = load_dataset("npz", path)
    assert dataset.normalization is None and dataset.num_classes == 2


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.full((4, 2, 2), 2.0), "y": [0, 1, 0, 1]}, "outside \\[0, 1\\].*uint8"),
        ({"x": np.zeros((4, 2, 2), np.uint8)}, "no array 'y'"),
        ({"x": np.zeros((4, 2, 2), np.uint8), "y": [0, 1, 0]}, "'y' .* must hold 4 labels"),
        (
            {"x": np.zeros((4, 2, 2), np.uint8), "y": [0, 1, 0, 1], "x_test": np.zeros((1, 2, 2))},
            "both 'x_test' and 'y_test'",
        ),
        (
            {"x": np.zeros((4, 2, 2), np.uint8), "y": np.array([0, 1, 0, 1], dtype=object)},
            "cannot read 'y'",
        ),
        ({"x": np.zeros((4, 2, 2), np.int32), "y": [0, 1, 0, 1]}, "is int32"),
    ],
)
def test_npz_bad_contents_are_one_line_dataset_errors(tmp_path, arrays, match):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset("npz", path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_npz_missing_file_and_plain_npy(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no file"):
        load_dataset("npz", tmp_path / "absent.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DatasetError, match=re.escape("not an .npz archive")):
        load_dataset("npz", tmp_path / "one.npy")
