"""How far an unlearned model sits from retraining, per example and in one number.

- :func:`standardised_margins`: each sample's margin (true-class logit minus the logsumexp of
  the others) standardised against the reference models' margins of that sample, as in the
  per-example tests of U-LiRA (Hayes et al. 2024) and KLOM (Georgiev et al. 2024): about
  N(0, 1) for a model drawn like the references, far above 0 for a model that still fits its
  forget samples (under-forgetting), far below for one that pushes them away (over-forgetting).
- :func:`binned_kl`: a KLOM-style binned KL divergence between two samples of margins.
- :func:`tug_of_war`: the Tug-of-War score (Zhao et al., NeurIPS 2024),
  ``(1 - |d forget|)(1 - |d retain|)(1 - |d test|)`` over accuracy differences with the
  reference, with a bootstrap interval.

References:
    Hayes et al. 2024, "Inexact Unlearning Needs More Careful Evaluations to Avoid a False
    Sense of Privacy". Georgiev et al. 2024, "Attribute-to-Delete: Machine Unlearning via
    Datamodel Matching". Zhao et al. 2024, "What makes unlearning hard and what to do about
    it".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unlearn_audit._validation import fail
from unlearn_audit.functional._checks import check_array, check_count, check_seed, describe
from unlearn_audit.functional.mia import lira_offline_scores, logit_confidence

__all__ = ["binned_kl", "margins", "standardised_margins", "tug_of_war"]


def margins(logits: Any, labels: Any) -> np.ndarray:
    """Per-sample margin ``z_y - logsumexp(z without y)`` ``(N,)`` (the logit-scaled
    confidence of LiRA: ``log p_y - log(1 - p_y)``)."""
    return logit_confidence(logits, labels)


def standardised_margins(target: Any, references: Any) -> np.ndarray:
    """``(m_i - mean_i) / std_i``: the target's margin of each sample against the references'
    margins of that sample ``(K, N)``. Few references (``K < 8``) share one pooled variance,
    one reference uses the spread of all its margins (as in :func:`lira_offline_scores`)."""
    return lira_offline_scores(target, references)


def binned_kl(p_values: Any, q_values: Any, *, bins: int = 20, smoothing: float = 0.5) -> float:
    """KL(P || Q) in nats between the histograms of two samples on common bins.

    The bins split the range of both samples together into ``bins`` equal widths; every bin
    count gets ``smoothing`` added before normalising, so an empty bin never gives infinity.
    Identical samples give 0.

    Raises:
        ConfigError: Empty or non-finite samples, ``bins < 1`` or ``smoothing <= 0``.
    """
    p = check_array(p_values, "p_values", ndim=1, shape_hint="(N,)", min_rows=1)
    q = check_array(q_values, "q_values", ndim=1, shape_hint="(M,)", min_rows=1)
    bins = check_count(bins, "bins", minimum=1)
    if not (isinstance(smoothing, (int, float)) and math.isfinite(smoothing) and smoothing > 0):
        raise fail("smoothing", "a positive number", smoothing)
    low, high = float(min(p.min(), q.min())), float(max(p.max(), q.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    hp = np.histogram(p, edges)[0] + smoothing
    hq = np.histogram(q, edges)[0] + smoothing
    hp, hq = hp / hp.sum(), hq / hq.sum()
    return float(np.sum(hp * np.log(hp / hq)))


def tug_of_war(
    forget: tuple[Any, Any],
    retain: tuple[Any, Any],
    test: tuple[Any, Any],
    *,
    seed: int = 0,
    n_resamples: int = 1000,
) -> tuple[float, float, float]:
    """Tug-of-War score with a bootstrap interval.

    Args:
        forget: ``(correct_unlearned, correct_reference)``: per-sample correctness (0/1) of
            the two models on the same forget samples; likewise ``retain`` and ``test``.
        seed: Seed of the bootstrap (each split's samples resampled, pairs kept together).
        n_resamples: Bootstrap resamples.

    Returns:
        ``(tow, low, high)``; 1 when the unlearned model matches the reference's accuracy on
        every split, lower as it drifts.

    Raises:
        ConfigError: Pairs of different lengths, empty splits, or non-0/1 values.
    """
    from unlearn_audit.functional.stats import bootstrap_interval

    differences = []
    for name, pair in (("forget", forget), ("retain", retain), ("test", test)):
        unlearned = check_array(pair[0], f"{name}[0]", ndim=1, shape_hint="(N,)", min_rows=1)
        reference = check_array(pair[1], f"{name}[1]", ndim=1, shape_hint="(N,)", min_rows=1)
        if unlearned.shape != reference.shape:
            raise fail(f"{name}[1]", f"an array of shape {unlearned.shape}", describe(reference))
        both = np.concatenate([unlearned, reference])
        if not np.all((both == 0) | (both == 1)):
            raise fail(name, "per-sample correctness (0 or 1)", describe(both))
        differences.append(unlearned - reference)

    def score(*diffs: np.ndarray, axis: int = -1) -> Any:
        return np.prod([1.0 - np.abs(np.mean(d, axis=axis)) for d in diffs], axis=0)

    low, high = bootstrap_interval(
        score, *differences, n_resamples=n_resamples, seed=check_seed(seed), vectorized=True
    )
    return float(score(*differences)), low, high
