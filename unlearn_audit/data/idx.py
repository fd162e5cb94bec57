"""IDX files: Fashion-MNIST (default root from the Debian package) and MNIST.

Ids: the training file first, then the ``t10k`` file. Files may be raw or gzipped.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from unlearn_audit.data.datasets import (
    Dataset,
    InMemorySamples,
    Normalization,
    make_dataset,
    register_dataset,
    require_root,
)
from unlearn_audit.errors import DatasetError, DatasetNotFoundError

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
# fmt: off
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
# fmt: on
IDX_FILES = tuple(
    f"{part}-{kind}-ubyte" for part in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
)
_IDX_GZ = ", ".join(f"{file_name}.gz" for file_name in IDX_FILES)


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
        f"dataset-fashion-mnist) or put the official files ({_IDX_GZ}) in `data_root`",
    )


@register_dataset("mnist", description="MNIST: 70,000 digits 28x28 (IDX files)", needs_root=True)
def load_mnist(root: Path | None) -> Dataset:
    """MNIST from the official IDX files in ``root``."""
    return _load_idx(
        "mnist",
        require_root("mnist", root),
        classes=[str(d) for d in range(10)],
        normalization=Normalization((0.1307,), (0.3081,)),
        flip_invariant=False,
        how_to_get=f"put the official MNIST IDX files ({_IDX_GZ}) in `data_root`",
    )
