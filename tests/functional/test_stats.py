"""unlearn_audit.functional.stats: binomial intervals, bootstrap, reference position."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from scipy import stats

from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.stats import (
    Proportion,
    bootstrap_interval,
    bootstrap_standard_error,
    clopper_pearson_interval,
    mean_with_interval,
    proportion,
    reference_position,
    wilson_interval,
)

CASES = [(0, 1), (0, 10), (1, 10), (3, 10), (5, 10), (10, 10), (7, 250), (999, 1000)]


def _wilson_by_hand(k: int, n: int, confidence: float) -> tuple[float, float]:
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_closed_form(k: int, n: int, confidence: float) -> None:
    low, high = wilson_interval(k, n, confidence=confidence)
    expected = _wilson_by_hand(k, n, confidence)
    assert low == pytest.approx(expected[0], abs=1e-12)
    assert high == pytest.approx(expected[1], abs=1e-12)


@pytest.mark.parametrize(("k", "n"), CASES)
def test_clopper_pearson_matches_beta_quantiles(k: int, n: int) -> None:
    alpha = 0.05
    expected_low = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
    expected_high = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
    low, high = clopper_pearson_interval(k, n)
    assert low == pytest.approx(expected_low, abs=1e-9)
    assert high == pytest.approx(expected_high, abs=1e-9)


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("method", ["wilson", "clopper-pearson"])
def test_interval_contains_estimate_within_unit_range(k: int, n: int, method: str) -> None:
    share = proportion(k, n, method=method)
    assert 0.0 <= share.low <= share.value <= share.high <= 1.0
    assert (share.successes, share.total, share.method) == (k, n, method)


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_intervals_equal_scipy_binomtest(k: int, n: int, confidence: float) -> None:
    test = stats.binomtest(k, n)
    for ours, method in ((wilson_interval, "wilson"), (clopper_pearson_interval, "exact")):
        expected = test.proportion_ci(confidence_level=confidence, method=method)
        low, high = ours(k, n, confidence=confidence)
        assert low == pytest.approx(max(expected.low, 0.0), abs=1e-9), method
        assert high == pytest.approx(min(expected.high, 1.0), abs=1e-9), method


def test_clopper_pearson_is_wider_than_wilson() -> None:
    w_low, w_high = wilson_interval(3, 10)
    c_low, c_high = clopper_pearson_interval(3, 10)
    assert c_low < w_low and c_high > w_high


def test_wilson_hand_computed_case() -> None:
    # k = 5, n = 10, z = 1.959964: centre 0.5, half 0.2659...
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2365931, abs=1e-6)
    assert high == pytest.approx(0.7634069, abs=1e-6)


def test_empty_proportion_is_nan_with_full_interval() -> None:
    share = proportion(0, 0)
    assert math.isnan(share.value)
    assert (share.low, share.high) == (0.0, 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert clopper_pearson_interval(0, 0) == (0.0, 1.0)


def test_proportion_to_dict_and_numpy_counts() -> None:
    share = proportion(np.int64(2), np.int64(4), method="clopper-pearson")
    assert isinstance(share, Proportion)
    data = share.to_dict()
    assert data["value"] == 0.5 and data["method"] == "clopper-pearson"
    assert set(data) == {"value", "low", "high", "successes", "total", "method"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"successes": -1, "total": 3}, "`successes` must be an integer >= 0; got -1."),
        ({"successes": 4, "total": 3}, "`successes` must be at most `total` = 3; got 4."),
        ({"successes": 1.5, "total": 3}, "`successes` must be an integer"),
        ({"successes": True, "total": 3}, "`successes` must be an integer"),
        ({"successes": 1, "total": -2}, "`total` must be an integer >= 0"),
        ({"successes": 1, "total": 3, "confidence": 1.0}, "`confidence` must be"),
        ({"successes": 1, "total": 3, "confidence": 0}, "`confidence` must be"),
        ({"successes": 1, "total": 3, "method": "exact"}, "`method` must be one of"),
    ],
)
def test_proportion_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        proportion(**kwargs)


def test_config_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        wilson_interval(5, 2)


def test_bootstrap_is_seeded() -> None:
    values = np.random.default_rng(1).normal(size=200)
    first = bootstrap_interval(np.mean, values, n_resamples=200, seed=7)
    assert bootstrap_interval(np.mean, values, n_resamples=200, seed=7) == first
    assert bootstrap_interval(np.mean, values, n_resamples=200, seed=8) != first


def test_bootstrap_matches_scipy_percentile_interval() -> None:
    values = np.random.default_rng(2).exponential(size=80)
    low, high = bootstrap_interval(np.median, values, n_resamples=300, seed=3)
    expected = stats.bootstrap(
        (values,),
        np.median,
        n_resamples=300,
        vectorized=False,
        method="percentile",
        rng=np.random.default_rng(3),
    ).confidence_interval
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert low <= np.median(values) <= high


def test_a_vectorised_statistic_gives_the_same_interval() -> None:
    values = np.random.default_rng(5).exponential(size=333)  # more than one batch of resamples
    plain = bootstrap_interval(np.mean, values, n_resamples=250, seed=1)
    assert bootstrap_interval(np.mean, values, n_resamples=250, seed=1, vectorized=True) == (
        pytest.approx(plain, abs=1e-12)
    )
    assert plain != bootstrap_interval(np.mean, values, n_resamples=250, seed=2, vectorized=True)


def test_bootstrap_two_samples_difference_of_means() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
    low, high = bootstrap_interval(lambda x, y: np.mean(x) - np.mean(y), a, b, n_resamples=300)
    assert low < np.mean(a) - np.mean(b) < high
    assert low > 0.5 and high < 1.5


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ((np.full(20, 0.3),), (0.3, 0.3)),
        ((np.array([0.7]),), (0.7, 0.7)),
        ((np.full(5, 2.0), np.full(3, 1.0)), (1.0, 1.0)),
    ],
)
def test_bootstrap_degenerate_cases_collapse_quietly(samples: tuple, expected: tuple) -> None:
    statistic = np.mean if len(samples) == 1 else (lambda x, y: np.mean(x) - np.mean(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interval = bootstrap_interval(statistic, *samples)
    assert interval == pytest.approx(expected)


def test_bootstrap_empty_sample_gives_nan() -> None:
    low, high = bootstrap_interval(np.mean, np.array([]))
    assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "`samples` must be at least one 1-D array"),
        ((np.ones((2, 2)),), {}, r"`samples\[0\]` must be a 1-D array"),
        ((np.arange(3.0),), {"n_resamples": 0}, "`n_resamples` must be an integer >= 1"),
        ((np.arange(3.0),), {"seed": -1}, "`seed` must be an integer >= 0"),
        ((np.arange(3.0),), {"confidence": 1.5}, "`confidence` must be"),
    ],
)
def test_bootstrap_validation(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        bootstrap_interval(np.mean, *args, **kwargs)


def test_bootstrap_standard_error() -> None:
    values = np.random.default_rng(6).normal(2.0, 3.0, size=400)
    error = bootstrap_standard_error(np.mean, values, n_resamples=400, seed=3)
    expected = stats.bootstrap(
        (values,), np.mean, n_resamples=400, method="percentile", rng=np.random.default_rng(3)
    ).standard_error
    assert error == pytest.approx(expected, abs=1e-12)
    # the mean's standard error by formula, sigma / sqrt(n) = 0.15
    assert error == pytest.approx(np.std(values, ddof=1) / 20, rel=0.15)
    assert bootstrap_standard_error(np.mean, values, n_resamples=400, seed=4) != error
    assert bootstrap_standard_error(np.mean, np.full(9, 0.5)) == 0.0
    assert math.isnan(bootstrap_standard_error(np.mean, np.array([])))
    with pytest.raises(ConfigError, match="`n_resamples` must be an integer >= 1"):
        bootstrap_standard_error(np.mean, values, n_resamples=0)


def test_mean_with_interval() -> None:
    values = np.arange(10.0)
    mean, low, high = mean_with_interval(values, seed=0, n_resamples=500)
    assert mean == 4.5
    assert 2.0 < low < mean < high < 7.0
    assert mean_with_interval(values, seed=0, n_resamples=500) == (mean, low, high)
    assert mean_with_interval([0.25, 0.25, 0.25]) == (0.25, 0.25, 0.25)
    assert all(math.isnan(v) for v in mean_with_interval([]))
    with pytest.raises(ConfigError, match="`values` must be finite"):
        mean_with_interval([1.0, float("nan")])


def test_reference_position_hand_computed() -> None:
    # references 1, 2, 3: mean 2, sample std 1
    position = reference_position(3.5, [1.0, 2.0, 3.0])
    assert position["z"] == pytest.approx(1.5)
    assert position["percentile"] == pytest.approx(100.0)
    assert position["n"] == 3
    below = reference_position(2.0, [1.0, 2.0, 3.0])
    assert below["z"] == pytest.approx(0.0)
    assert below["percentile"] == pytest.approx(200.0 / 3.0)
    assert reference_position(0.0, [1.0, 2.0])["percentile"] == 0.0


def test_reference_position_degenerate() -> None:
    assert reference_position(0.5, []) == {"z": None, "percentile": None, "n": 0}
    single = reference_position(0.5, [0.4])
    assert single["z"] is None and single["percentile"] == 100.0
    assert reference_position(0.5, [0.4, 0.4])["z"] is None  # std 0
    assert reference_position(float("nan"), [0.4, 0.6])["percentile"] is None
    assert reference_position(0.5, [0.4, float("nan"), 0.6])["n"] == 2
    assert reference_position(0.5, [0.4, None, 0.6])["n"] == 2
    assert reference_position(None, [0.4, 0.6]) == {"z": None, "percentile": None, "n": 2}
    with pytest.raises(ConfigError, match="`reference_values` must be a 1-D array"):
        reference_position(0.5, [[0.4]])
    with pytest.raises(ConfigError, match="`value` must be a number"):
        reference_position("high", [0.4])  # type: ignore[arg-type]
