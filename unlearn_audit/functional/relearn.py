"""Relearn time: how fast forgotten knowledge comes back under fine-tuning (seeds 000, 003)."""

from __future__ import annotations

from typing import Any

import numpy as np

from unlearn_audit._validation import fail
from unlearn_audit.functional._checks import check_array, describe

__all__ = ["relearn_time"]


def relearn_time(steps: Any, accuracies: Any, threshold: float) -> int | None:
    """First fine-tuning step at which the held-out forget accuracy reaches ``threshold``.

    Args:
        steps: Steps at which accuracy was measured ``(T,)``, strictly increasing integers.
        accuracies: Accuracy at each of those steps ``(T,)``.
        threshold: Accuracy to reach (e.g. 50% of the original model's).

    Returns:
        The first ``steps[t]`` with ``accuracies[t] >= threshold``, or None when it was not
        reached by the last step measured ("not reached"; the run was capped there).

    Raises:
        ConfigError: On empty or mismatched inputs, steps that are not strictly increasing
            integers, or a non-finite threshold.
    """
    t = check_array(steps, "steps", ndim=1, shape_hint="(T,)", min_rows=1)
    acc = check_array(accuracies, "accuracies", ndim=1, shape_hint="(T,)")
    if acc.shape != t.shape:
        raise fail("accuracies", f"an array of shape {t.shape}, like `steps`", describe(acc))
    if np.any(t != np.round(t)) or np.any(np.diff(t) <= 0):
        raise fail("steps", "strictly increasing integers", t.tolist())
    try:
        level = float(threshold)
    except (TypeError, ValueError):
        raise fail("threshold", "a finite number", threshold) from None
    if not np.isfinite(level):
        raise fail("threshold", "a finite number", threshold)
    reached = np.flatnonzero(acc >= level)
    return int(t[reached[0]]) if reached.size else None
