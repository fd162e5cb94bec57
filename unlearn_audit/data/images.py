"""Your own images: an image folder (ImageFolder layout) or an ``.npz`` file of arrays.

Small folders load into memory; folders larger than :data:`FOLDER_MAX_IN_MEMORY_BYTES` stream
from disk batch by batch.
"""

from __future__ import annotations

import functools
import math
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from unlearn_audit.data.datasets import (
    DEFAULT_HOLDOUT,
    Dataset,
    InMemorySamples,
    StreamingSamples,
    holdout_train_ids,
    make_dataset,
    normalization_from_images,
    register_dataset,
    require_root,
)
from unlearn_audit.errors import DatasetError, DatasetNotFoundError

FOLDER_MAX_IN_MEMORY_BYTES = 512 * 2**20
_FOLDER_LAYOUT = "expected root/<class>/<image>.png or root/{train,test}/<class>/<image>.png"
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


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
            classes.update(_folder().find_classes(part)[0])
        except FileNotFoundError:
            raise DatasetNotFoundError(
                f"folder: no class folders in {part}; {_FOLDER_LAYOUT}."
            ) from None
    names = sorted(classes)
    index = {name: i for i, name in enumerate(names)}
    folder = _folder()
    found = [
        folder.make_dataset(part, index, folder.IMG_EXTENSIONS, allow_empty=True) for part in parts
    ]
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
    root = require_root("folder", root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"folder: {root} is not a folder; {_FOLDER_LAYOUT}.")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    classes, found = _find_class_images([root / "train", root / "test"] if split else [root])
    paths = [Path(path) for images in found for path, _ in images]
    labels = np.array([label for images in found for _, label in images], dtype=np.int64)
    n_train = len(found[0])
    train_ids = np.arange(n_train) if split else holdout_train_ids(n_train, DEFAULT_HOLDOUT)
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
        normalization = normalization_from_images(content, train_ids)
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
    path = require_root("npz", root)
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
        np.arange(n_train) if len(keys) == 2 else holdout_train_ids(n_train, DEFAULT_HOLDOUT)
    )
    return make_dataset(
        "npz",
        InMemorySamples(torch.from_numpy(x)),
        y,
        train_ids=train_ids,
        classes=classes,
        normalization=normalization_from_images(x, train_ids),
        content_arrays=[x],
        source=str(path),
    )


def _folder() -> Any:
    """torchvision's image-folder helpers, imported when an image folder is read (torchvision
    pulls in its model zoo and torch._dynamo: seconds that no other dataset should pay)."""
    from torchvision.datasets import folder

    return folder
