"""unlearn_audit.functional.forgetting: margins against references, binned KL, Tug-of-War."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.forgetting import (
    binned_kl,
    margins,
    standardised_margins,
    tug_of_war,
)


def test_margins_hand_computed() -> None:
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    expected = [2.0 - math.log(2.0), 1.0 - math.log(math.e + 1.0)]
    assert margins(logits, [0, 2]) == pytest.approx(expected)


def test_standardised_margins_hand_computed_and_a_reference_against_its_peers() -> None:
    references = np.array([[0.0, 10.0], [2.0, 14.0]])  # means 1, 12; pooled variance 5
    assert standardised_margins([3.0, 12.0], references) == pytest.approx([2 / math.sqrt(5), 0.0])
    rng = np.random.default_rng(0)
    draws = rng.normal(0.0, 1.0, (5, 2000)) + np.linspace(-3, 3, 2000)
    # a model drawn like the references: about N(0, 1)
    z = standardised_margins(draws[0], draws[1:])
    assert abs(z.mean()) < 0.1 and 0.8 < z.std() < 1.4
    # one that kept its forget samples: far above
    assert standardised_margins(draws[0] + 4.0, draws[1:]).mean() > 2


def test_binned_kl_properties_and_hand_case() -> None:
    rng = np.random.default_rng(1)
    sample = rng.normal(size=500)
    assert binned_kl(sample, sample) == pytest.approx(0.0)
    near, far = binned_kl(sample, sample + 0.2), binned_kl(sample, sample + 2.0)
    assert 0 < near < far
    # two bins over [0, 2]: P = (1.5, 0.5) / 2, Q = (0.5, 1.5) / 2 after smoothing 0.5
    p, q = np.array([0.75, 0.25]), np.array([0.25, 0.75])
    assert binned_kl([0.0], [2.0], bins=2) == pytest.approx(float(np.sum(p * np.log(p / q))))
    with pytest.raises(ConfigError, match="`bins` must be"):
        binned_kl(sample, sample, bins=0)
    with pytest.raises(ConfigError, match="`smoothing` must be a positive number"):
        binned_kl(sample, sample, smoothing=0.0)
    with pytest.raises(ConfigError, match="`q_values`"):
        binned_kl(sample, [])


def test_tug_of_war_hand_case_interval_and_identity() -> None:
    rng = np.random.default_rng(2)
    correct = {s: rng.integers(0, 2, n).astype(float) for s, n in (("f", 50), ("r", 80), ("t", 60))}
    same = tug_of_war(*((c, c) for c in correct.values()))
    assert same == (1.0, 1.0, 1.0)  # a model against itself: no drift, no spread
    forget = (np.zeros(10), np.ones(10))  # forget accuracy 0 vs 1
    retain = (np.array([1.0, 1, 1, 0]), np.ones(4))  # 0.75 vs 1
    test = (np.ones(5), np.ones(5))
    tow, low, high = tug_of_war(forget, retain, test, n_resamples=200)
    assert tow == pytest.approx(0.0)
    forget = (np.array([1.0, 0, 0, 0]), np.array([0.0, 0, 0, 0]))  # 0.25 vs 0
    tow, low, high = tug_of_war(forget, retain, test, n_resamples=500)
    assert tow == pytest.approx(0.75 * 0.75)
    assert low <= tow <= high and high <= 1.0 and low < high
    with pytest.raises(ConfigError, match=r"`retain\[1\]` must be an array of shape \(4,\)"):
        tug_of_war(forget, (retain[0], np.ones(3)), test)
    with pytest.raises(ConfigError, match="`test` must be per-sample correctness"):
        tug_of_war(forget, retain, (np.full(5, 0.5), np.ones(5)))
