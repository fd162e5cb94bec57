"""CIFAR-10 in torchvision's on-disk python format, read without unpickling code.

The batch files are pickles; a restricted unpickler rebuilds numpy arrays and refuses every
other global, so a tampered file cannot run code. Nothing is downloaded.
"""

from __future__ import annotations

import pickle
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

# fmt: off
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
# fmt: on
CIFAR10_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
# The globals a pickled numpy array names (numpy.core became numpy._core in numpy 2), taken from
# what this numpy pickles itself; CIFAR-10 batches name nothing else.
_RECONSTRUCT, _FROMBUFFER = np.zeros(1).__reduce__()[0], np.zeros(1).__reduce_ex__(5)[0]
_PICKLE_GLOBALS = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


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
    root = require_root("cifar10", root)
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
