"""Fingerprints: short stable hashes of ids, arrays, weights and JSON-able settings."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sys
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


# A module the package compiles from a file (an architecture given as ``path.py:name``) keeps the
# bytes it was compiled from under this name in its namespace: its code is fingerprinted by what
# ran, not by linecache's copy or by the file as it is later.
SOURCE_BYTES = "__unlearn_audit_source__"


def _namespace(obj: Any) -> dict[str, Any]:
    """The globals ``obj`` (a class or function) was defined in: through its functions, since a
    file compiled again under the same module name replaces ``sys.modules``' entry."""
    functions = [obj] if not isinstance(obj, type) else list(vars(obj).values())
    for function in functions:
        function = getattr(function, "__func__", function)
        namespace = getattr(function, "__globals__", None)
        if isinstance(namespace, dict):
            return namespace
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return vars(module) if module is not None else {}


def source_text(obj: Any, *, whole_module: bool = False) -> str:
    """The source of a class, function or module (``whole_module``: of the module that defines
    it): for a file the package compiled, the bytes it was compiled from (the whole file); ``""``
    when there is none (defined interactively, or shipped without source)."""
    if not inspect.ismodule(obj) and not hasattr(obj, "__qualname__"):
        obj = type(obj)  # a callable object (a hook instance, a partial): its class's source
    namespace = vars(obj) if inspect.ismodule(obj) else _namespace(obj)
    compiled = namespace.get(SOURCE_BYTES)
    if isinstance(compiled, bytes):
        return compiled.decode(errors="replace")
    target = inspect.getmodule(obj) if whole_module else obj
    try:
        return inspect.getsource(target) if target is not None else ""
    except (OSError, TypeError):
        return ""


def source_name(obj: Any) -> str:
    """``module.qualname`` of a class or function; only the qualname for one defined in a file
    the package compiled, whose module name stands for the file's path, not its code."""
    if not hasattr(obj, "__qualname__"):  # a callable object (a partial, a hook instance):
        obj = type(obj)  # its class, since its repr may hold its address
    qualname = obj.__qualname__
    if SOURCE_BYTES in _namespace(obj):
        return str(qualname)
    return f"{getattr(obj, '__module__', '')}.{qualname}"


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
