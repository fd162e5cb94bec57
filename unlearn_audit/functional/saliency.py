"""Comparing saliency maps: rank correlation, top-k overlap, mass inside a mask (seeds 001, 003).

The maps are Grad-CAM maps (Selvaraju et al. 2017) taken as they are, without per-image
min-max scaling; every function here is invariant to positive scaling anyway, and
:func:`spearman_per_sample` and :func:`topk_iou` to any increasing transform.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata

from unlearn_audit._validation import fail
from unlearn_audit.functional._checks import (
    check_array,
    check_rate,
    check_same_shape,
    describe,
    plain,
)

__all__ = ["mask_mass", "spearman_per_sample", "topk_iou"]

_CHUNK = 256  # rows ranked at once: bounds memory for large maps


def _maps(value: Any, param: str) -> np.ndarray:
    array = check_array(value, param, ndim=3, shape_hint="(N, H, W)")
    if array.shape[1] * array.shape[2] == 0:
        raise fail(param, "maps with at least one pixel (N, H, W)", describe(array))
    return array.reshape(array.shape[0], -1)


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x = check_array(a, "a", ndim=3, shape_hint="(N, H, W)")
    y = check_array(b, "b", ndim=3, shape_hint="(N, H, W)")
    check_same_shape(x, y, "a", "b")
    return _maps(x, "a"), _maps(y, "b")


def spearman_per_sample(a: Any, b: Any) -> np.ndarray:
    """Spearman rank correlation between ``a[i]`` and ``b[i]`` over pixels.

    Ties get average ranks, as in :func:`scipy.stats.spearmanr`, which this matches row by
    row. Pearson correlation of the ranks, vectorised over samples.

    Args:
        a: Maps ``(N, H, W)``.
        b: Maps ``(N, H, W)``.

    Returns:
        ``(N,)`` correlations in [-1, 1]; NaN where either map is constant (correlation
        undefined, also for two identical constant maps), as scipy returns. Aggregate with
        ``np.nanmean`` and report the NaN count.

    Raises:
        ConfigError: On shapes that differ or non-finite values.
    """
    x, y = _pair(a, b)
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _CHUNK):
        rx = rankdata(x[start : start + _CHUNK], axis=1)
        ry = rankdata(y[start : start + _CHUNK], axis=1)
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
        numerator = (rx * ry).sum(axis=1)
        # a constant map has no ranking: test the data, not a rounded rank variance
        constant = (np.ptp(x[start : start + _CHUNK], axis=1) == 0) | (
            np.ptp(y[start : start + _CHUNK], axis=1) == 0
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.clip(numerator / denominator, -1.0, 1.0)
        out[start : start + _CHUNK] = np.where(constant, math.nan, rho)
    return out


def topk_iou(a: Any, b: Any, *, fraction: float = 0.1) -> np.ndarray:
    """Intersection over union of the top ``fraction`` pixels of ``a[i]`` and ``b[i]``.

    Each map contributes exactly ``k = max(1, floor(fraction * H * W))`` pixels; ties at the
    cut are broken by pixel index (row-major), so the result is deterministic and two equal
    maps give 1.

    Args:
        a: Maps ``(N, H, W)``.
        b: Maps ``(N, H, W)``.
        fraction: Share of pixels kept, in (0, 1].

    Returns:
        ``(N,)`` IoU values in [0, 1].

    Raises:
        ConfigError: On shapes that differ, non-finite values or ``fraction`` outside (0, 1].
    """
    share = check_rate(fraction, "fraction")
    x, y = _pair(a, b)
    pixels = x.shape[1]
    k = max(1, math.floor(share * pixels))
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        top_x = np.zeros(pixels, dtype=bool)
        top_y = np.zeros(pixels, dtype=bool)
        top_x[np.argsort(-x[i], kind="stable")[:k]] = True
        top_y[np.argsort(-y[i], kind="stable")[:k]] = True
        both = np.count_nonzero(top_x & top_y)
        out[i] = both / (2 * k - both)
    return out


def mask_mass(maps: Any, mask: Any) -> np.ndarray:
    """Share of each map's positive mass that lies inside ``mask`` (e.g. a trigger patch).

    Args:
        maps: Maps ``(N, H, W)``; negative values are ignored.
        mask: Boolean region ``(H, W)``.

    Returns:
        ``(N,)`` shares in [0, 1]; 0 for a map without positive mass.

    Raises:
        ConfigError: On a non-boolean mask or one whose shape differs from the maps'.
    """
    x = check_array(maps, "maps", ndim=3, shape_hint="(N, H, W)")
    region = np.asarray(mask)
    if region.dtype != np.bool_:
        raise fail("mask", "a boolean array (H, W)", plain(f"dtype {region.dtype}"))
    if region.shape != x.shape[1:]:
        raise fail("mask", f"a boolean array of shape {tuple(x.shape[1:])}", describe(region))
    positive = np.clip(x, 0.0, None)
    total = positive.sum(axis=(1, 2))
    inside = positive[:, region].sum(axis=1)
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
