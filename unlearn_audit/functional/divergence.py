"""Output divergence between two models: activation distance and JS divergence (seed 001).

Both are per-sample quantities on softmax outputs; the audit averages them over samples.

Reference:
    Both as used by Chundawat et al. 2023, "Can Bad Teaching Induce Forgetting? Unlearning in
    Deep Networks Using an Incompetent Teacher", against the retrained model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from unlearn_audit._validation import fail
from unlearn_audit.functional._checks import check_array, check_same_shape

__all__ = ["activation_distance", "js_divergence"]

_SUM_TOLERANCE = 1e-2  # loose enough for float16 softmax, tight enough to catch logits


def _probabilities(p: Any, q: Any) -> tuple[np.ndarray, np.ndarray]:
    a = check_array(p, "p", ndim=2, shape_hint="(N, C)")
    b = check_array(q, "q", ndim=2, shape_hint="(N, C)")
    check_same_shape(a, b, "p", "q")
    for name, array in (("p", a), ("q", b)):
        if array.size and array.min() < 0:
            raise fail(name, "probabilities (no negative entries)", float(array.min()))
        sums = array.sum(axis=1)
        if sums.size and np.max(np.abs(sums - 1.0)) > _SUM_TOLERANCE:
            worst = float(sums[np.argmax(np.abs(sums - 1.0))])
            raise fail(
                name, "rows of probabilities summing to 1", worst, "Apply softmax to the logits."
            )
    return a, b


def activation_distance(p: Any, q: Any) -> np.ndarray:
    """Per-sample L2 distance between two softmax vectors (Chundawat et al. 2023).

    Args:
        p: Probabilities of the first model ``(N, C)``.
        q: Probabilities of the second model ``(N, C)``.

    Returns:
        ``(N,)`` distances ``||p_i - q_i||_2``, each in [0, sqrt(2)].

    Raises:
        ConfigError: On shapes that differ, negative entries or rows not summing to 1.
    """
    a, b = _probabilities(p, q)
    return np.asarray(np.linalg.norm(a - b, axis=1))


def js_divergence(p: Any, q: Any) -> np.ndarray:
    """Per-sample Jensen-Shannon divergence with the natural log.

    ``JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``, computed as
    ``scipy.spatial.distance.jensenshannon(p, q, axis=1) ** 2`` (scipy returns the distance,
    the square root of the divergence). ``0 log 0 = 0``, so zero probabilities are fine.

    One value per sample, each in [0, ln 2]. Some public code averages the elementwise terms
    over all N x C entries instead, which divides the divergence by C; this does not.

    Args:
        p: Probabilities of the first model ``(N, C)``.
        q: Probabilities of the second model ``(N, C)``.

    Returns:
        ``(N,)`` divergences; 0 for identical rows.

    Raises:
        ConfigError: On shapes that differ, negative entries or rows not summing to 1.
    """
    a, b = _probabilities(p, q)
    if a.shape[0] == 0:
        return np.zeros(0)
    # rounding can leave the divergence a hair below 0, and scipy's sqrt then gives NaN
    with np.errstate(invalid="ignore"):
        distance = jensenshannon(a, b, axis=1)
    divergence = np.nan_to_num(np.asarray(distance, dtype=np.float64), nan=0.0) ** 2
    return np.clip(divergence, 0.0, math.log(2.0))
