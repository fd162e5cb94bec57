"""unlearn_audit.functional.divergence: activation distance and per-sample JS divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import softmax

from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.divergence import activation_distance, js_divergence


def _random_probs(seed: int, n: int = 200, c: int = 10, zeros: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(0.0, 4.0, (n, c)), axis=1)
    if zeros:  # exact zeros exercise 0 log 0
        probs[rng.random((n, c)) < 0.2] = 0.0
        probs[:, 0] += 1e-3
        probs /= probs.sum(axis=1, keepdims=True)
    return probs


def _js_direct(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return 0.5 * left.sum(axis=1) + 0.5 * right.sum(axis=1)


def test_js_matches_direct_sum() -> None:
    p, q = _random_probs(0), _random_probs(1)
    assert js_divergence(p, q) == pytest.approx(_js_direct(p, q), abs=1e-12)


def test_js_properties() -> None:
    p, q = _random_probs(2), _random_probs(3)
    js = js_divergence(p, q)
    assert js.shape == (200,)
    assert np.array_equal(js, js_divergence(q, p))
    assert np.all((js >= 0) & (js <= math.log(2)))
    assert np.all(js_divergence(p, p) == 0.0)
    nearly = p.copy()
    nearly[:, 0] += 1e-13
    nearly /= nearly.sum(axis=1, keepdims=True)
    close = js_divergence(p, nearly)
    assert np.all(np.isfinite(close)) and np.all((close >= 0) & (close < 1e-15))


def test_js_hand_computed() -> None:
    # disjoint supports reach ln 2; p = (1, 0), q = (1/2, 1/2) gives
    # (1/2) ln(4/3) + (1/2) [(1/2) ln(2/3) + (1/2) ln 2]
    p = np.array([[1.0, 0.0], [1.0, 0.0]])
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    expected = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    assert js_divergence(p, q) == pytest.approx([math.log(2), expected], abs=1e-12)


def test_js_is_per_sample_not_per_element() -> None:
    # ten classes: an elementwise mean would report ln 2 / 10 for disjoint rows
    p = np.eye(10)
    q = np.roll(np.eye(10), 1, axis=1)
    assert js_divergence(p, q) == pytest.approx(np.full(10, math.log(2)))


def test_activation_distance() -> None:
    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    q = np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    assert activation_distance(p, q) == pytest.approx([math.sqrt(2.0), 0.0])
    a, b = _random_probs(4), _random_probs(5)
    assert activation_distance(a, b) == pytest.approx(np.sqrt(((a - b) ** 2).sum(axis=1)))
    assert np.array_equal(activation_distance(a, b), activation_distance(b, a))


@pytest.mark.parametrize("function", [activation_distance, js_divergence])
@pytest.mark.parametrize(
    ("p", "q", "message"),
    [
        (np.full((2, 2), 0.5), np.full((3, 2), 0.5), r"`q` must be the same shape as `p` \(2, 2\)"),
        (np.full(2, 0.5), np.full(2, 0.5), r"`p` must be a 2-D array of shape \(N, C\)"),
        (np.array([[1.5, -0.5]]), np.array([[0.5, 0.5]]), "`p` must be probabilities"),
        (np.array([[0.5, 0.5]]), np.array([[2.0, 3.0]]), "`q` must be rows of probabilities"),
        (np.array([[0.5, np.nan]]), np.array([[0.5, 0.5]]), "`p` must be finite"),
    ],
)
def test_validation(function, p: np.ndarray, q: np.ndarray, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        function(p, q)


def test_logits_error_suggests_softmax() -> None:
    with pytest.raises(ConfigError, match=r"Apply softmax to the logits\."):
        js_divergence(np.array([[3.0, 1.0]]), np.array([[0.5, 0.5]]))


def test_empty_input_gives_empty_output() -> None:
    empty = np.zeros((0, 3))
    assert js_divergence(empty, empty).shape == (0,)
    assert activation_distance(empty, empty).shape == (0,)
