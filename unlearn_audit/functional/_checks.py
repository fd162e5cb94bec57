"""Array validators shared by the functional modules.

They extend :mod:`unlearn_audit._validation` to numpy inputs with the same message shape:
"`{param}` must be {expected}; got {value!r}." Arrays are described by their shape, never
printed in full.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

from unlearn_audit._validation import check_fraction, fail

__all__ = [
    "check_array",
    "check_confidence",
    "check_count",
    "check_labels",
    "check_rate",
    "check_same_shape",
    "check_seed",
    "describe",
    "plain",
]


class _Described(str):
    """A string whose ``repr`` is itself, so ``fail`` prints "got an array of shape (3,)"."""

    def __repr__(self) -> str:
        return str(self)


def describe(array: np.ndarray) -> _Described:
    """A short description of ``array`` for error messages."""
    return _Described(f"an array of shape {tuple(array.shape)}")


def plain(text: str) -> _Described:
    """``text`` printed without quotes after "got"."""
    return _Described(text)


def check_array(
    value: Any,
    param: str,
    *,
    ndim: int,
    shape_hint: str,
    finite: bool = True,
    min_rows: int = 0,
) -> np.ndarray:
    """Return ``value`` as a float64 array with ``ndim`` dimensions.

    Args:
        value: Array-like input.
        param: Parameter name for the message.
        ndim: Required number of dimensions.
        shape_hint: Expected shape in words, e.g. ``"(N, C)"``.
        finite: Reject NaN and infinity.
        min_rows: Minimum size of the first dimension.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(param, f"a numeric array of shape {shape_hint}", type(value).__name__) from None
    if array.ndim != ndim:
        raise fail(param, f"a {ndim}-D array of shape {shape_hint}", describe(array))
    if array.shape[0] < min_rows:
        raise fail(param, f"an array with at least {min_rows} rows", describe(array))
    if finite and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise fail(param, "finite (no NaN or infinity)", plain(f"{bad} non-finite values"))
    return array


def check_same_shape(a: np.ndarray, b: np.ndarray, param_a: str, param_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise fail(param_b, f"the same shape as `{param_a}` {tuple(a.shape)}", describe(b))


def check_labels(value: Any, param: str, *, n: int, num_classes: int | None = None) -> np.ndarray:
    """Return integer class labels ``(N,)`` as int64, each in ``[0, num_classes)``."""
    array = np.asarray(value)
    if array.ndim != 1 or array.shape[0] != n:
        raise fail(param, f"a 1-D array of {n} labels", describe(array))
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise fail(param, "an array of integer class labels", plain(f"dtype {array.dtype}"))
    labels = array.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise fail(param, "non-negative class labels", int(labels.min()))
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise fail(param, f"class labels below `num_classes` = {num_classes}", int(labels.max()))
    return labels


def check_count(value: Any, param: str, *, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` >= ``minimum`` (numpy integers accepted)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise fail(param, f"an integer >= {minimum}", value)
    return int(value)


def check_seed(value: Any, param: str = "seed") -> int:
    """Return a non-negative integer seed."""
    return check_count(value, param, minimum=0)


def check_confidence(value: Any, param: str = "confidence") -> float:
    """Return a confidence level strictly between 0 and 1."""
    return check_fraction(value, param)


def check_rate(value: Any, param: str) -> float:
    """Return a rate or fraction in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise fail(param, "a number in (0, 1]", value)
    if not 0.0 < float(value) <= 1.0:
        raise fail(param, "a number in (0, 1]", value)
    return float(value)
