"""Datasets: samples with stable ids, labels, a training part and a held-out part.

Every dataset is one id space ``0 .. N-1`` in its natural order (for IDX and CIFAR-10: the
training file, then the test file). ``train_ids`` is the part a model is normally trained on
(its members by default); ``heldout_ids`` is never trained on and later becomes test and
population. Images come out as float tensors in [0, 1], shape ``(N, C, H, W)``.

Small datasets sit in memory and are batched by slicing; large image folders stream from disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from unlearn_audit._hashing import fingerprint_arrays
from unlearn_audit.errors import ConfigError, DatasetError
from unlearn_audit.registry import Registry


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x - mean) / std`` a model applies to inputs in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ConfigError(
                f"`normalize` must give as many means as stds; got mean={self.mean!r}, "
                f"std={self.std!r}."
            )
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"`normalize` stds must be > 0; got {self.std!r}.")

    @classmethod
    def parse(cls, text: str) -> Normalization | None:
        """Parse ``none``, ``MEAN,STD`` or ``M1,M2,M3,S1,S2,S3`` (means first, then stds)."""
        text = text.strip()
        if text.lower() == "none":
            return None
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if not values or len(values) % 2:
            raise ConfigError(
                f"`normalize` must be 'none' or MEAN,STD (per channel: means then stds, "
                f"e.g. 0.5,0.5,0.5,0.25,0.25,0.25); got {text!r}."
            )
        half = len(values) // 2
        return cls(tuple(values[:half]), tuple(values[half:]))

    def for_channels(self, channels: int) -> Normalization:
        """This normalisation broadcast to ``channels`` (a single mean/std repeats)."""
        if len(self.mean) == channels:
            return self
        if len(self.mean) == 1:
            return Normalization(self.mean * channels, self.std * channels)
        raise ConfigError(
            f"`normalize` has {len(self.mean)} channel values but the inputs have {channels} "
            f"channels; give 1 or {channels} means and stds."
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Sequence[float]] | None) -> Normalization | None:
        if data is None:
            return None
        return cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))


class Samples(Protocol):
    """Images by id: ``load(ids)`` returns float32 ``(len(ids), C, H, W)`` in [0, 1]."""

    def __len__(self) -> int: ...

    def load(self, ids: np.ndarray) -> torch.Tensor: ...


class InMemorySamples:
    """All images in one tensor (uint8 scaled by 1/255, or float already in [0, 1])."""

    streams = False

    def __init__(self, images: torch.Tensor) -> None:
        if images.dim() != 4:
            raise DatasetError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def load(self, ids: np.ndarray) -> torch.Tensor:
        batch = self.images[torch.as_tensor(np.ascontiguousarray(ids, dtype=np.int64))]
        if batch.dtype == torch.uint8:
            return batch.to(torch.float32).div_(255.0)
        return batch.to(torch.float32)


class StreamingSamples:
    """Images read from files when a batch asks for them.

    Args:
        paths: One file per id.
        read: Reads one file into a uint8 array ``(C, H, W)``.
    """

    streams = True

    def __init__(self, paths: Sequence[Path], read: Callable[[Path], np.ndarray]) -> None:
        self.paths = list(paths)
        self.read = read

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, ids: np.ndarray) -> torch.Tensor:
        arrays = [self.read(self.paths[int(i)]) for i in np.asarray(ids)]
        if not arrays:
            shape = self.read(self.paths[0]).shape
            return torch.zeros((0, *shape), dtype=torch.float32)
        return torch.from_numpy(np.stack(arrays)).to(torch.float32).div_(255.0)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset with stable sample ids.

    Attributes:
        name: Registry name (``digits``, ``fashion-mnist``, ...).
        samples: The images, by id.
        labels: ``(N,)`` int64 class index of every id.
        train_ids: Sorted ids of the training part.
        heldout_ids: Sorted ids of the held-out part (disjoint from ``train_ids``).
        classes: Class names, index = label.
        input_shape: ``(C, H, W)``.
        normalization: The usual normalisation for models of this dataset, if one is known.
        fingerprint: Hash of the images, labels and parts; changes when any of them changes.
        flip_invariant: Whether a horizontal flip keeps the label (used by augmentation).
        source: Where the data was read from, for messages and reports.
    """

    name: str
    samples: Samples
    labels: np.ndarray
    train_ids: np.ndarray
    heldout_ids: np.ndarray
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    normalization: Normalization | None
    fingerprint: str
    flip_invariant: bool = False
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def load(
        self, ids: np.ndarray, *, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(len(ids), C, H, W)`` and labels ``(len(ids),)`` for ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        x = self.samples.load(ids)
        y = torch.from_numpy(self.labels[ids])
        if device is not None:
            x, y = x.to(device), y.to(device)
        return x, y

    def batches(
        self,
        ids: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
        """Yield ``(x, y, batch_ids)`` over ``ids`` by slicing, optionally shuffled."""
        ids = np.asarray(ids, dtype=np.int64)
        if shuffle:
            order = torch.randperm(len(ids), generator=generator).numpy()
            ids = ids[order]
        stop = len(ids) - (len(ids) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            batch_ids = ids[start : start + batch_size]
            x, y = self.load(batch_ids, device=device)
            yield x, y, batch_ids


def make_dataset(
    name: str,
    samples: Samples,
    labels: np.ndarray,
    *,
    train_ids: np.ndarray,
    classes: Sequence[str],
    normalization: Normalization | None,
    content_arrays: Sequence[np.ndarray],
    flip_invariant: bool = False,
    source: str = "",
) -> Dataset:
    """Assemble a :class:`Dataset`, validating labels and parts and computing its fingerprint.

    Args:
        content_arrays: Arrays whose bytes identify the images (the pixels for in-memory
            data; file names and sizes for streamed data).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(samples)
    if labels.shape != (n,):
        raise DatasetError(f"{name}: {n} images but {labels.shape[0]} labels in {source}")
    if n == 0:
        raise DatasetError(f"{name}: no images found in {source}")
    if labels.min() < 0 or labels.max() >= len(classes):
        raise DatasetError(
            f"{name}: labels must lie in [0, {len(classes) - 1}]; found "
            f"{int(labels.min())}..{int(labels.max())} in {source}"
        )
    train_ids = np.unique(np.asarray(train_ids, dtype=np.int64))
    is_train = np.zeros(n, dtype=bool)
    is_train[train_ids] = True
    heldout_ids = np.flatnonzero(~is_train).astype(np.int64)
    first = samples.load(np.array([0]))
    input_shape = tuple(int(s) for s in first.shape[1:])
    if normalization is not None:
        normalization = normalization.for_channels(input_shape[0])
    fingerprint = fingerprint_arrays(
        [*content_arrays, labels, train_ids], salt=f"{name}|{','.join(classes)}"
    )
    return Dataset(
        name=name,
        samples=samples,
        labels=labels,
        train_ids=train_ids,
        heldout_ids=heldout_ids,
        classes=tuple(str(c) for c in classes),
        input_shape=(input_shape[0], input_shape[1], input_shape[2]),
        normalization=normalization,
        fingerprint=fingerprint,
        flip_invariant=flip_invariant,
        source=source,
    )


DEFAULT_HOLDOUT = 0.3


def require_root(name: str, root: Path | str | None) -> Path:
    """``root`` as a ``Path``, or a clear error for a dataset that needs ``--data-root``."""
    if root is None:
        raise ConfigError(
            f"dataset {name!r} needs `data_root`; give the folder (or file) that holds its data."
        )
    return Path(root).expanduser()


def normalization_from_images(
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


def holdout_train_ids(n: int, heldout: int | float, *, seed: int = 0) -> np.ndarray:
    """Deterministic training part for data that has no official test part.

    Args:
        n: Number of samples.
        heldout: Held-out count, or fraction of ``n`` when below 1.
        seed: Fixed so that the parts never change between runs.
    """
    count = round(heldout * n) if heldout < 1 else int(heldout)
    if not 0 < count < n:
        raise DatasetError(
            f"cannot hold out {heldout!r} of {n} samples and keep both parts non-empty; add "
            "samples, or provide an explicit test part (x_test / a test folder)."
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[count:]).astype(np.int64)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: how to load it and what it needs.

    Attributes:
        load: ``load(root) -> Dataset``; ``root`` is ``None`` when not given.
        description: One line for ``unlearn-audit datasets``.
        needs_root: Whether ``--data-root`` is required.
        default_root: Where it looks when ``--data-root`` is not given.
    """

    name: str
    load: Callable[[Path | None], Dataset]
    description: str
    needs_root: bool = False
    default_root: str | None = None


DATASETS: Registry[DatasetSpec] = Registry("dataset", group="unlearn_audit.datasets")


def register_dataset(
    name: str, *, description: str, needs_root: bool = False, default_root: str | None = None
) -> Callable[[Callable[[Path | None], Dataset]], Callable[[Path | None], Dataset]]:
    """Decorator that registers a ``load(root) -> Dataset`` function under ``name``."""

    def _register(
        load: Callable[[Path | None], Dataset],
    ) -> Callable[[Path | None], Dataset]:
        DATASETS.register(
            name,
            DatasetSpec(
                name=name,
                load=load,
                description=description,
                needs_root=needs_root,
                default_root=default_root,
            ),
        )
        return load

    return _register


def load_dataset(name: str = "digits", root: str | Path | None = None) -> Dataset:
    """Load a registered dataset by name.

    Args:
        name: Registry name; see ``unlearn-audit datasets``.
        root: ``--data-root``; required for datasets that are not embedded.

    Raises:
        RegistryError: Unknown name.
        ConfigError: ``root`` missing where the dataset needs one.
        DatasetNotFoundError, DatasetError: Files missing or malformed.
    """
    spec = DATASETS.get(name)
    if root is None and spec.default_root is not None:
        root = spec.default_root
    path = require_root(name, root) if spec.needs_root or root is not None else None
    return spec.load(path)


DIGITS_HELDOUT = 797


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits pixels ``(1797, 64)`` and labels, read from the file scikit-learn ships
    (what ``sklearn.datasets.load_digits`` reads) without importing scikit-learn, which costs
    most of a second; through scikit-learn when the file is not where it used to be."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    origin = spec.origin if spec else None
    path = Path(origin).parent / "datasets" / "data" / "digits.csv.gz" if origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as _sk_load_digits

        bunch = _sk_load_digits()
        return np.asarray(bunch.data), np.asarray(bunch.target)
    with gzip.open(path, "rt") as handle:
        data = np.loadtxt(handle, delimiter=",")
    return data[:, :-1], data[:, -1]


@register_dataset(
    "digits",
    description="scikit-learn's 1,797 handwritten digits, 8x8, 10 classes (embedded; default)",
)
def load_digits(root: Path | None = None) -> Dataset:
    """scikit-learn's digits: 1,000 training and 797 held-out images, 1x8x8, values / 16."""
    pixels, target = _sklearn_digits()
    images = pixels.astype(np.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = target.astype(np.int64)
    return make_dataset(
        "digits",
        InMemorySamples(torch.from_numpy(images)),
        labels,
        train_ids=holdout_train_ids(len(labels), DIGITS_HELDOUT),
        classes=[str(c) for c in range(10)],
        normalization=Normalization((0.305,), (0.376,)),
        content_arrays=[images],
        source="sklearn.datasets.load_digits",
    )
