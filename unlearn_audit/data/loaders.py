"""File-based datasets: IDX (Fashion-MNIST, MNIST), CIFAR-10, image folders and ``.npz`` files.

Every loader reads files the user already has; nothing here downloads. Ids follow the files'
natural order: the training file (or folder) first, then the test one.
"""

from __future__ import annotations

import functools
import gzip
import math
import pickle
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes
from torchvision.datasets.folder import make_dataset as find_images

from unlearn_audit.data.datasets import (
    Dataset,
    InMemorySamples,
    Normalization,
    StreamingSamples,
    holdout_train_ids,
    make_dataset,
    register_dataset,
)
from unlearn_audit.errors import ConfigError, DatasetError, DatasetNotFoundError

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
# fmt: off
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
# fmt: on
CIFAR10_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
IDX_FILES = tuple(
    f"{part}-{kind}-ubyte" for part in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
)
FOLDER_MAX_IN_MEMORY_BYTES = 512 * 2**20
HOLDOUT_FRACTION = 0.3
_IDX_GZ = ", ".join(f"{file_name}.gz" for file_name in IDX_FILES)
_FOLDER_LAYOUT = "expected root/<class>/<image>.png or root/{train,test}/<class>/<image>.png"
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
# The globals a pickled numpy array names (numpy.core became numpy._core in numpy 2), taken from
# what this numpy pickles itself; CIFAR-10 batches name nothing else.
_RECONSTRUCT, _FROMBUFFER = np.zeros(1).__reduce__()[0], np.zeros(1).__reduce_ex__(5)[0]
_PICKLE_GLOBALS = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


def _require_root(name: str, root: Path | str | None) -> Path:
    if root is None:
        raise ConfigError(f"dataset {name!r} needs `--data-root`; give the path of its files.")
    return Path(root).expanduser()


def _train_normalization(
    images: np.ndarray, train_ids: np.ndarray, *, chunk: int = 1024
) -> Normalization | None:
    """Per-channel mean and std in [0, 1] of the training part, rounded to 4 decimals.

    Args:
        images: ``(N, C, H, W)``, uint8 (scaled by 1/255) or floats in [0, 1].
        train_ids: Ids of the training part, summed ``chunk`` images at a time.

    Returns:
        ``None`` when a channel is constant (its std would be 0).
    """
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    total, squares = np.zeros(images.shape[1]), np.zeros(images.shape[1])
    for start in range(0, len(train_ids), chunk):
        part = images[train_ids[start : start + chunk]].astype(np.float64) * scale
        total += part.sum(axis=(0, 2, 3))
        squares += np.square(part).sum(axis=(0, 2, 3))
    count = len(train_ids) * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.round(np.sqrt(np.maximum(squares / count - mean**2, 0.0)), 4)
    if np.any(std <= 0):
        return None
    return Normalization(tuple(np.round(mean, 4).tolist()), tuple(std.tolist()))


# ---- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (raw, or gzip when named ``*.gz``), shaped by its header.

    Raises:
        DatasetError: Unreadable, bad magic number, not unsigned bytes, truncated or too long.
    """
    try:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read {path} ({exc}); get the file again.") from exc
    if len(data) < 4 or data[:2] != b"\0\0":
        raise DatasetError(f"{path} is not an IDX file (magic {data[:4].hex()!r}); get it again.")
    if data[2] != 0x08:
        raise DatasetError(f"{path}: IDX type 0x{data[2]:02x} is not 0x08 (unsigned byte).")
    header = 4 + 4 * data[3]
    if data[3] == 0 or len(data) < header:
        raise DatasetError(f"{path}: the IDX header is truncated; get the file again.")
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=data[3], offset=4))
    size = math.prod(shape) if min(shape) >= 0 else -1
    if len(data) - header != size:
        state = "truncated" if len(data) - header < size else "malformed"
        raise DatasetError(
            f"{path} is {state}: {len(data) - header} data bytes for the header's shape "
            f"{shape}; get the file again."
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _find_idx(root: Path, name: str) -> Path | None:
    """The first of ``name``, ``name.gz`` and the ``train-images.idx3-ubyte`` forms that exists."""
    for base in (name, name.replace("-idx", ".idx")):
        for path in (root / base, root / f"{base}.gz"):
            if path.is_file():
                return path
    return None


def _load_idx(
    name: str,
    root: Path,
    *,
    classes: Sequence[str],
    normalization: Normalization,
    flip_invariant: bool,
    how_to_get: str,
) -> Dataset:
    """Images and labels from ``train-*`` then ``t10k-*`` IDX files in ``root``."""
    found = {file_name: _find_idx(root, file_name) for file_name in IDX_FILES}
    missing = [f"{file_name}[.gz]" for file_name, path in found.items() if path is None]
    if missing:
        raise DatasetNotFoundError(f"{name}: no {', '.join(missing)} in {root}; {how_to_get}.")
    paths = [path for path in found.values() if path is not None]
    images, labels = [], []
    for x_path, y_path in zip(paths[::2], paths[1::2], strict=True):
        x, y = read_idx(x_path), read_idx(y_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(
                f"{name}: {x_path} holds images {x.shape} and {y_path} labels {y.shape}; "
                "expected (N, H, W) and (N,) from one official pair of files."
            )
        if y.size and y.max() >= len(classes):
            raise DatasetError(
                f"{name}: {y_path} has label {y.max()}, outside 0..{len(classes) - 1}; "
                f"is it a {name} labels file?"
            )
        images.append(x)
        labels.append(y)
    if images[0].shape[1:] != images[1].shape[1:]:
        raise DatasetError(f"{name}: {paths[0]} and {paths[2]} hold images of different sizes.")
    x, y = np.concatenate(images)[:, None], np.concatenate(labels).astype(np.int64)
    return make_dataset(
        name,
        InMemorySamples(torch.from_numpy(x)),
        y,
        train_ids=np.arange(len(images[0])),
        classes=classes,
        normalization=normalization,
        content_arrays=[x, y],
        flip_invariant=flip_invariant,
        source=str(root),
    )


_FASHION = "Fashion-MNIST: 70,000 clothing images 28x28, 10 classes (IDX files)"


@register_dataset("fashion-mnist", description=_FASHION, default_root=FASHION_MNIST_ROOT)
def load_fashion_mnist(root: Path | None = None) -> Dataset:
    """Fashion-MNIST from its IDX files; ``root`` defaults to :data:`FASHION_MNIST_ROOT`."""
    return _load_idx(
        "fashion-mnist",
        Path(root or FASHION_MNIST_ROOT).expanduser(),
        classes=FASHION_MNIST_CLASSES,
        normalization=Normalization((0.2860,), (0.3530,)),
        flip_invariant=True,
        how_to_get="install the Debian package dataset-fashion-mnist (apt-get install "
        f"dataset-fashion-mnist) or put the official files ({_IDX_GZ}) in --data-root",
    )


@register_dataset("mnist", description="MNIST: 70,000 digits 28x28 (IDX files)", needs_root=True)
def load_mnist(root: Path | None) -> Dataset:
    """MNIST from the official IDX files in ``root``."""
    return _load_idx(
        "mnist",
        _require_root("mnist", root),
        classes=[str(d) for d in range(10)],
        normalization=Normalization((0.1307,), (0.3081,)),
        flip_invariant=False,
        how_to_get=f"put the official MNIST IDX files ({_IDX_GZ}) in --data-root",
    )


# ---- CIFAR-10 ------------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, dicts, lists and bytes; refuses every other global.

    CIFAR-10 batches are pickles, and a plain ``pickle.load`` runs whatever a file names.
    """

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _PICKLE_GLOBALS:
            raise DatasetError(f"refusing to unpickle {module}.{name} (not a numpy array)")
        return _PICKLE_GLOBALS[(module, name)]


def _unpickle(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            return _ArrayUnpickler(handle, encoding="bytes").load()
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise DatasetError(
            f"{path} is not a valid CIFAR-10 file: {exc}; extract cifar-10-python.tar.gz again."
        ) from exc


def _read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch as uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``."""
    batch = _unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"{path} is not a CIFAR-10 batch (no b'data' and b'labels').")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    shape = getattr(data, "shape", None)
    if getattr(data, "dtype", None) != np.uint8 or shape is None or shape[1:] != (3072,):
        raise DatasetError(f"{path}: b'data' must be uint8 (N, 3072); got {type(data)} {shape}.")
    ok = labels.shape == (len(data),) and labels.dtype.kind in "iu"
    if not ok or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise DatasetError(
            f"{path}: b'labels' must be {len(data)} integers in 0..{num_classes - 1}."
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


_CIFAR10 = "CIFAR-10: 60,000 colour images 32x32, 10 classes (cifar-10-batches-py)"


@register_dataset("cifar10", description=_CIFAR10, needs_root=True)
def load_cifar10(root: Path | None) -> Dataset:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (or ``root`` itself), torchvision's layout."""
    root = _require_root("cifar10", root)
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    missing = [name for name in CIFAR10_BATCHES if not (folder / name).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"cifar10: no {', '.join(missing)} in {folder} (expected data_batch_1..5, test_batch "
            "and batches.meta); download cifar-10-python.tar.gz from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it in {root} yourself."
        )
    classes: Sequence[str] = CIFAR10_CLASSES
    meta = _unpickle(folder / "batches.meta") if (folder / "batches.meta").is_file() else {}
    if isinstance(meta, dict) and isinstance(meta.get(b"label_names"), list):
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]
    batches = [_read_cifar_batch(folder / name, len(classes)) for name in CIFAR10_BATCHES]
    x = np.concatenate([images for images, _ in batches])
    y = np.concatenate([labels for _, labels in batches])
    return make_dataset(
        "cifar10",
        InMemorySamples(torch.from_numpy(x)),
        y,
        train_ids=np.arange(len(x) - len(batches[-1][1])),
        classes=classes,
        normalization=Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        content_arrays=[x, y],
        flip_invariant=True,
        source=str(folder),
    )


# ---- image folders -------------------------------------------------------------------------


def _image_format(path: Path) -> tuple[str, tuple[int, int]]:
    """PIL mode to convert to (``L`` for modes ``L`` and ``1``, else ``RGB``) and (W, H)."""
    try:
        with Image.open(path) as image:
            return ("L" if image.mode in ("L", "1") else "RGB"), image.size
    except _PIL_ERRORS as exc:
        raise DatasetError(f"cannot read image {path} ({exc}); remove or replace it.") from exc


def _read_image(path: Path, *, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 ``(C, H, W)`` in PIL ``mode``; it must be ``size`` (W, H)."""
    try:
        with Image.open(path) as image:
            found, array = image.size, np.asarray(image.convert(mode))
    except _PIL_ERRORS as exc:
        raise DatasetError(f"cannot read image {path} ({exc}); remove or replace it.") from exc
    if found != size:
        raise DatasetError(
            f"image {path} is {found[0]}x{found[1]} pixels but the first image is "
            f"{size[0]}x{size[1]}; resize all images to one size."
        )
    return np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


def _file_listing(paths: Sequence[Path], root: Path) -> np.ndarray:
    """``relative path, size, mtime_ns`` of every file, as bytes: what identifies streamed data.

    Hashing the pixels of a folder too large for memory would cost an epoch of reading, so a
    streamed folder is identified by its listing: adding, removing, renaming or rewriting a file
    changes it, but an edit that keeps both size and modification time would go unnoticed.
    """
    lines = []
    for path in paths:
        stat = path.stat()
        lines.append(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return np.frombuffer("\n".join(lines).encode(), dtype=np.uint8)


def _find_class_images(parts: list[Path]) -> tuple[list[str], list[list[tuple[str, int]]]]:
    """Sorted class names (union over ``parts``) and each part's ``(path, label)`` list."""
    classes: set[str] = set()
    for part in parts:
        try:
            classes.update(find_classes(part)[0])
        except FileNotFoundError:
            raise DatasetNotFoundError(
                f"folder: no class folders in {part}; {_FOLDER_LAYOUT}."
            ) from None
    names = sorted(classes)
    index = {name: i for i, name in enumerate(names)}
    found = [find_images(part, index, IMG_EXTENSIONS, allow_empty=True) for part in parts]
    for part, images in zip(parts, found, strict=True):
        if not images:
            raise DatasetNotFoundError(f"folder: no image files under {part}; {_FOLDER_LAYOUT}.")
    counts = np.bincount([c for images in found for _, c in images], minlength=len(names))
    if np.any(counts == 0):
        empty = [names[i] for i in np.flatnonzero(counts == 0)]
        where = " and ".join(str(part) for part in parts)
        raise DatasetError(f"folder: class folders {empty} in {where} hold no images; remove them.")
    return names, found


_FOLDER = "images of one size in root/<class>/ or root/{train,test}/<class>/"


@register_dataset("folder", description=_FOLDER, needs_root=True)
def load_folder(
    root: Path | None, *, max_in_memory_bytes: int = FOLDER_MAX_IN_MEMORY_BYTES
) -> Dataset:
    """Images in class folders, read with PIL.

    With ``root/train`` and ``root/test`` those are the training and held-out parts; otherwise
    all images form one pool and 30% of it is held out. The first image fixes the channels
    (grayscale for PIL modes ``L`` and ``1``, else RGB) and the size that every image must have.

    Args:
        max_in_memory_bytes: Above this total uint8 size the images stream from disk, get no
            computed normalisation and are fingerprinted by :func:`_file_listing`.
    """
    root = _require_root("folder", root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"folder: {root} is not a folder; {_FOLDER_LAYOUT}.")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    classes, found = _find_class_images([root / "train", root / "test"] if split else [root])
    paths = [Path(path) for images in found for path, _ in images]
    labels = np.array([label for images in found for _, label in images], dtype=np.int64)
    n_train = len(found[0])
    train_ids = np.arange(n_train) if split else holdout_train_ids(n_train, HOLDOUT_FRACTION)
    mode, size = _image_format(paths[0])
    read = functools.partial(_read_image, mode=mode, size=size)
    shape = (len(paths), 1 if mode == "L" else 3, size[1], size[0])
    if math.prod(shape) > max_in_memory_bytes:
        samples: InMemorySamples | StreamingSamples = StreamingSamples(paths, read)
        content, normalization = _file_listing(paths, root), None
    else:
        content = np.empty(shape, dtype=np.uint8)
        for i, path in enumerate(paths):
            content[i] = read(path)
        samples = InMemorySamples(torch.from_numpy(content))
        normalization = _train_normalization(content, train_ids)
    return make_dataset(
        "folder",
        samples,
        labels,
        train_ids=train_ids,
        classes=classes,
        normalization=normalization,
        content_arrays=[content],
        source=str(root),
    )


# ---- .npz arrays ---------------------------------------------------------------------------


def _npz_images(x: np.ndarray, key: str, path: Path) -> np.ndarray:
    """``x`` as ``(N, C, H, W)``: uint8 kept, floats checked to lie in [0, 1] and made float32.

    ``(N, H, W)`` gets one channel. A 4-D array is NHWC when only its last dim is a channel
    count (1, 3 or 4), else NCHW (also when both or neither are).
    """
    if x.ndim not in (3, 4):
        raise DatasetError(
            f"npz: {key!r} in {path} has shape {x.shape}; save (N, H, W), NCHW or NHWC images."
        )
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind != "f":
        raise DatasetError(
            f"npz: {key!r} in {path} is {x.dtype}; save images as uint8 (0..255) or floats in "
            "[0, 1]."
        )
    if not np.all((x >= 0) & (x <= 1)):
        raise DatasetError(
            f"npz: {key!r} in {path} has values outside [0, 1] (min {np.min(x)}, max "
            f"{np.max(x)}); scale it to [0, 1] or save it as uint8 (0..255)."
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def _npz_labels(y: np.ndarray, key: str, count: int, path: Path) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != count or (y.size and y.min() < 0):
        raise DatasetError(
            f"npz: {key!r} in {path} must hold {count} labels (integers >= 0, one per image); "
            f"got {y.dtype} {y.shape}."
        )
    return y.astype(np.int64)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """``x``, ``y`` and, where present, ``x_test``, ``y_test``, ``classes``; never unpickles."""
    fix = "save it with np.savez(path, x=images, y=labels) (no dtype=object arrays)"
    errors = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        archive = np.load(path, allow_pickle=False)
    except errors as exc:
        raise DatasetError(f"npz: cannot read {path} ({exc}); {fix}.") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"npz: {path} holds one array, not an .npz archive; {fix}.")
    arrays = {}
    with archive:
        for key in [k for k in ("x", "y", "x_test", "y_test", "classes") if k in archive]:
            try:
                arrays[key] = archive[key]
            except errors as exc:
                raise DatasetError(f"npz: cannot read {key!r} in {path} ({exc}); {fix}.") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(f"npz: {path} has no array {key!r}; {fix}.")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError(f"npz: {path} must hold both 'x_test' and 'y_test' or neither.")
    return arrays


_NPZ = "arrays x, y (optional x_test, y_test, classes) in the .npz file given as root"


@register_dataset("npz", description=_NPZ, needs_root=True)
def load_npz(root: Path | None) -> Dataset:
    """Images and labels from a ``.npz`` file; ``root`` is the file itself.

    Without ``x_test`` and ``y_test``, 30% of ``x`` is held out. Class names come from
    ``classes`` or are ``"0"`` up to the largest label.
    """
    path = _require_root("npz", root)
    if not path.is_file():
        raise DatasetNotFoundError(f"npz: no file {path}; give the path of a .npz file.")
    arrays = _read_npz(path)
    keys = [("x", "y"), ("x_test", "y_test")] if "x_test" in arrays else [("x", "y")]
    images = [_npz_images(arrays[x_key], x_key, path) for x_key, _ in keys]
    labels = [
        _npz_labels(arrays[y_key], y_key, len(x), path)
        for x, (_, y_key) in zip(images, keys, strict=True)
    ]
    if images[-1].shape[1:] != images[0].shape[1:]:
        raise DatasetError(
            f"npz: 'x_test' images are {images[1].shape[1:]} but 'x' images are "
            f"{images[0].shape[1:]} in {path}; save both with one layout and size."
        )
    if len({x.dtype for x in images}) > 1:  # uint8 and float: both as float in [0, 1]
        images = [x.astype(np.float32) / 255 if x.dtype == np.uint8 else x for x in images]
    x, y = np.concatenate(images), np.concatenate(labels)
    classes = [str(c) for c in range(int(y.max(initial=0)) + 1)]
    if "classes" in arrays:
        names = arrays["classes"]
        if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < len(classes):
            raise DatasetError(
                f"npz: 'classes' in {path} must be 1-D strings naming labels 0..{y.max()}; "
                f"got {names.dtype} {names.shape}."
            )
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    n_train = len(images[0])
    train_ids = (
        np.arange(n_train) if len(keys) == 2 else holdout_train_ids(n_train, HOLDOUT_FRACTION)
    )
    return make_dataset(
        "npz",
        InMemorySamples(torch.from_numpy(x)),
        y,
        train_ids=train_ids,
        classes=classes,
        normalization=_train_normalization(x, train_ids),
        content_arrays=[x],
        source=str(path),
    )
