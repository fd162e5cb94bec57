"""Fingerprints: short stable hashes of ids, arrays, weights and JSON-able settings."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

FINGERPRINT_LENGTH = 16


def _finish(digest: Any) -> str:
    return str(digest.hexdigest()[:FINGERPRINT_LENGTH])


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces, so equal settings give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint_json(obj: Any) -> str:
    """Fingerprint of a JSON-able object (settings, cache keys)."""
    return _finish(hashlib.sha256(canonical_json(obj).encode()))


def code_fingerprint(*files: str | Path) -> str:
    """Fingerprint of source files (part of the key of every stored result their code
    computes, so a change of that code never reads a stale entry)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).read_bytes())
    return _finish(digest)


@functools.cache
def package_code() -> str:
    """Fingerprint of every source file of the package (the key part of stored results that
    whole checks compute, such as the null audit's evidence)."""
    root = Path(__file__).parent
    files = sorted(p for p in root.rglob("*") if p.suffix == ".py" and p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return _finish(digest)


def fingerprint_arrays(arrays: Iterable[np.ndarray], *, salt: str = "") -> str:
    """Fingerprint of numpy arrays: their dtype, shape and bytes, in order."""
    digest = hashlib.sha256(salt.encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return _finish(digest)


def fingerprint_ids(ids: np.ndarray, *, salt: str = "") -> str:
    """Fingerprint of a set of sample ids (order does not matter)."""
    return fingerprint_arrays([np.unique(np.asarray(ids, dtype=np.int64))], salt=salt)


def fingerprint_state(state: Mapping[str, torch.Tensor], *, salt: str = "") -> str:
    """Fingerprint of a state dict: names, dtypes, shapes and values of every tensor."""
    digest = hashlib.sha256(salt.encode())
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return _finish(digest)
