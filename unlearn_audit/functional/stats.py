"""Intervals and positions: binomial proportions, bootstrap intervals, reference seeds.

Binomial intervals follow Wilson (1927) and Clopper & Pearson (1934), those of
:meth:`scipy.stats.binomtest` (from its closed forms, with ``scipy.special``); bootstrap
intervals are seeded percentile intervals from :func:`scipy.stats.bootstrap` (Efron &
Tibshirani 1993).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from unlearn_audit._validation import check_choice, fail
from unlearn_audit.functional._checks import (
    check_array,
    check_confidence,
    check_count,
    check_seed,
)

__all__ = [
    "Proportion",
    "bootstrap_interval",
    "bootstrap_standard_error",
    "clopper_pearson_interval",
    "mean_with_interval",
    "proportion",
    "reference_position",
    "wilson_interval",
]

PROPORTION_METHODS = ("wilson", "clopper-pearson")

Count = int | np.integer[Any]  # numpy counts (e.g. ``mask.sum()``) are accepted as they are


@dataclass(frozen=True)
class Proportion:
    """A binomial proportion with its confidence interval.

    Attributes:
        value: ``successes / total``; NaN when ``total == 0``.
        low: Lower bound of the interval (0.0 when ``total == 0``).
        high: Upper bound of the interval (1.0 when ``total == 0``).
        successes: Number of successes.
        total: Number of trials.
        method: ``"wilson"`` or ``"clopper-pearson"``.
    """

    value: float
    low: float
    high: float
    successes: int
    total: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)


def _check_counts(successes: Any, total: Any) -> tuple[int, int]:
    k = check_count(successes, "successes")
    n = check_count(total, "total")
    if k > n:
        raise fail("successes", f"at most `total` = {n}", k)
    return k, n


def _binomial_interval(
    successes: Any, total: Any, confidence: Any, method: str
) -> tuple[float, float]:
    """The two-sided interval ``scipy.stats.binomtest(k, n).proportion_ci`` gives, from the
    closed forms it evaluates (Wilson: Newcombe 1998) or solves for by root finding (exact: the
    beta quantiles), without the test's p-value, which sums the binomial pmf: 2 ms a call, and
    an audit asks for about a hundred intervals."""
    k, n = _check_counts(successes, total)
    level = check_confidence(confidence)
    if n == 0:
        return 0.0, 1.0
    alpha = (1.0 - level) / 2.0
    if method == "exact":
        low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha))
        high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1.0 - alpha))
    else:
        z = float(special.ndtri(1.0 - alpha))
        p = k / n
        denominator = 2.0 * (n + z * z)
        centre = (2.0 * n * p + z * z) / denominator
        delta = z / denominator * math.sqrt(4.0 * n * p * (1.0 - p) + z * z)
        low = 0.0 if k == 0 else centre - delta
        high = 1.0 if k == n else centre + delta
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def wilson_interval(
    successes: Count, total: Count, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    Args:
        successes: Number of successes ``k`` (0 <= k <= total).
        total: Number of trials ``n``.
        confidence: Confidence level in (0, 1).

    Returns:
        ``(low, high)`` within [0, 1]; ``(0.0, 1.0)`` when ``total == 0``.

    Raises:
        ConfigError: On negative counts, ``successes > total`` or a bad confidence level.
    """
    return _binomial_interval(successes, total, confidence, "wilson")


def clopper_pearson_interval(
    successes: Count, total: Count, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) interval for a binomial proportion.

    Conservative: coverage is at least ``confidence`` for every true proportion. Use it for
    rare events (TPR at low FPR, attack success near 0 or 1).

    Args:
        successes: Number of successes ``k`` (0 <= k <= total).
        total: Number of trials ``n``.
        confidence: Confidence level in (0, 1).

    Returns:
        ``(low, high)`` within [0, 1]; ``(0.0, 1.0)`` when ``total == 0``.

    Raises:
        ConfigError: On negative counts, ``successes > total`` or a bad confidence level.
    """
    return _binomial_interval(successes, total, confidence, "exact")


def proportion(
    successes: Count, total: Count, *, method: str = "wilson", confidence: float = 0.95
) -> Proportion:
    """A binomial proportion with a Wilson or Clopper-Pearson interval.

    Args:
        successes: Number of successes.
        total: Number of trials.
        method: ``"wilson"`` or ``"clopper-pearson"``.
        confidence: Confidence level in (0, 1).

    Returns:
        A :class:`Proportion`; ``value`` is NaN and the interval (0, 1) when ``total == 0``.

    Raises:
        ConfigError: On bad counts, method or confidence level.
    """
    check_choice(method, "method", PROPORTION_METHODS)
    interval = wilson_interval if method == "wilson" else clopper_pearson_interval
    low, high = interval(successes, total, confidence=confidence)
    k, n = int(successes), int(total)
    value = k / n if n else math.nan
    return Proportion(value=value, low=low, high=high, successes=k, total=n, method=method)


# resamples evaluated at once by a vectorised statistic (bounds memory on large samples)
BOOTSTRAP_BATCH = 100


def bootstrap_interval(
    statistic: Callable[..., Any],
    *samples: Any,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Seeded percentile bootstrap interval of ``statistic(*samples)``.

    Each 1-D sample is resampled independently (``paired=False``) by
    :func:`scipy.stats.bootstrap` with ``method="percentile"`` and
    ``rng=np.random.default_rng(seed)``, so equal seeds give equal intervals.

    Degenerate cases never raise: when every sample is constant, or any sample has fewer than
    2 values, the interval collapses to ``(v, v)`` with ``v = statistic(*samples)``; an empty
    sample gives ``(nan, nan)``.

    Args:
        statistic: Function of the samples returning a scalar; with ``vectorized`` it also
            takes ``axis`` and reduces resamples stacked along it (``np.mean`` does), which
            gives the same interval as the unvectorised call in a fraction of the time.
        *samples: One or more 1-D arrays ``(N_i,)``.
        n_resamples: Number of bootstrap resamples.
        confidence: Confidence level in (0, 1).
        seed: Seed of the resampling generator.
        vectorized: ``statistic`` accepts ``axis`` (see above).

    Returns:
        ``(low, high)``.

    Raises:
        ConfigError: On no samples, a sample that is not 1-D, or bad options.
    """
    result = _bootstrap(statistic, samples, n_resamples, confidence, seed, vectorized)
    if isinstance(result, float):
        return result, result
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_standard_error(
    statistic: Callable[..., Any], *samples: Any, n_resamples: int = 1000, seed: int = 0
) -> float:
    """Seeded bootstrap standard error of ``statistic(*samples)``: the standard deviation
    (ddof=1) of the statistic over the resamples :func:`bootstrap_interval` draws (the same
    draws for the same seed); 0.0 where that interval collapses, NaN for an empty sample.

    For a statistic that is biased on samples with repeated rows (a linear CKA on fewer
    samples than features, for one), the resamples sit to one side of the estimate and their
    percentile interval may not even hold it; ``estimate +- z * standard error`` does.

    Raises:
        ConfigError: As :func:`bootstrap_interval`.
    """
    result = _bootstrap(statistic, samples, n_resamples, 0.95, seed, False)
    if isinstance(result, float):
        return math.nan if math.isnan(result) else 0.0
    return float(result.standard_error)


def _bootstrap(
    statistic: Callable[..., Any],
    samples: tuple[Any, ...],
    n_resamples: int,
    confidence: float,
    seed: int,
    vectorized: bool,
) -> Any:
    """:func:`scipy.stats.bootstrap`'s result, or the statistic itself (NaN for an empty
    sample) when every resample would equal the data."""
    if not samples:
        raise fail("samples", "at least one 1-D array", samples)
    arrays = [
        check_array(s, f"samples[{i}]", ndim=1, shape_hint="(N,)", finite=False)
        for i, s in enumerate(samples)
    ]
    n_resamples = check_count(n_resamples, "n_resamples", minimum=1)
    level = check_confidence(confidence)
    seed = check_seed(seed)
    if any(a.size == 0 for a in arrays):
        return math.nan
    if any(a.size < 2 for a in arrays) or all(np.all(a == a[0]) for a in arrays):
        # every resample would equal the data: the bootstrap distribution is a point
        return float(statistic(*arrays))
    return stats.bootstrap(
        tuple(arrays),
        statistic,
        n_resamples=n_resamples,
        vectorized=vectorized,
        # batches bound memory; with several samples they would change the draws' order
        batch=BOOTSTRAP_BATCH if vectorized and len(arrays) == 1 else None,
        paired=False,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )


def mean_with_interval(
    values: Any, *, seed: int = 0, n_resamples: int = 1000, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``values`` with a seeded percentile bootstrap interval.

    Args:
        values: Per-sample values ``(N,)``, e.g. JS divergences of the forget samples.
        seed: Seed of the resampling generator.
        n_resamples: Number of bootstrap resamples.
        confidence: Confidence level in (0, 1).

    Returns:
        ``(mean, low, high)``; all NaN when ``values`` is empty.

    Raises:
        ConfigError: When ``values`` is not 1-D or holds NaN or infinity.
    """
    array = check_array(values, "values", ndim=1, shape_hint="(N,)")
    if array.size == 0:
        return math.nan, math.nan, math.nan
    low, high = bootstrap_interval(
        np.mean, array, n_resamples=n_resamples, confidence=confidence, seed=seed, vectorized=True
    )
    return float(np.mean(array)), low, high


def reference_position(
    value: float | None, reference_values: Sequence[float] | Any
) -> dict[str, Any]:
    """Place ``value`` inside the distribution of reference values (e.g. retrained seeds).

    Args:
        value: The audited model's value (e.g. its forget accuracy); None or NaN when missing.
        reference_values: The same quantity for each reference model ``(R,)``. None and
            non-finite entries (a reference without a value) are ignored.

    Returns:
        ``{"z": ..., "percentile": ..., "n": ...}``: ``z`` is ``(value - mean) / std`` with the
        sample std (ddof=1) of the references, None with fewer than 2 references or std 0;
        ``percentile`` is the share of references <= ``value`` in [0, 100], None without
        references; ``n`` is the number of references used. Both are None when ``value`` is
        None or not finite.

    Raises:
        ConfigError: When ``reference_values`` is not 1-D.
    """
    refs = check_array(
        reference_values, "reference_values", ndim=1, shape_hint="(R,)", finite=False
    )
    refs = refs[np.isfinite(refs)]
    out: dict[str, Any] = {"z": None, "percentile": None, "n": int(refs.size)}
    if value is None:  # a JSON null: the audited model has no value on this split
        return out
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise fail("value", "a number", value) from None
    if not math.isfinite(number) or refs.size == 0:
        return out
    out["percentile"] = float(stats.percentileofscore(refs, number, kind="weak"))
    if refs.size >= 2:
        std = float(np.std(refs, ddof=1))
        if std > 0:
            out["z"] = (number - float(np.mean(refs))) / std
    return out
