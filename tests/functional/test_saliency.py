"""unlearn_audit.functional.saliency: Spearman per sample, top-k IoU, mass inside a mask."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from unlearn_audit.errors import ConfigError
from unlearn_audit.functional import saliency
from unlearn_audit.functional.saliency import mask_mass, spearman_per_sample, topk_iou


def _maps(seed: int, n: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # ReLU-like maps with many tied zeros, as Grad-CAM gives
    return np.maximum(rng.normal(size=(n, 8, 9)), 0.0).round(1)


def test_spearman_matches_scipy_per_row() -> None:
    a = _maps(0)
    b = 0.5 * a + 0.5 * _maps(1)
    expected = [spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b, strict=True)]
    assert spearman_per_sample(a, b) == pytest.approx(np.array(expected), abs=1e-12)


def test_spearman_chunks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _maps(2, 10), _maps(3, 10)
    whole = spearman_per_sample(a, b)
    monkeypatch.setattr(saliency, "_CHUNK", 3)
    assert np.array_equal(spearman_per_sample(a, b), whole)


def test_spearman_properties_and_hand_case() -> None:
    a = _maps(4)
    assert spearman_per_sample(a, a) == pytest.approx(np.ones(30))
    assert spearman_per_sample(a, a**3 + 2) == pytest.approx(np.ones(30))  # monotone transform
    up = np.arange(4.0).reshape(1, 2, 2)
    assert spearman_per_sample(up, -up) == pytest.approx([-1.0])
    # ranks (1, 2, 3) vs (1, 3, 2): rho = 1 - 6 * 2 / (3 * 8) = 0.5
    assert spearman_per_sample([[[1.0, 2.0, 3.0]]], [[[1.0, 3.0, 2.0]]]) == pytest.approx([0.5])


def test_spearman_constant_maps_are_nan_quietly() -> None:
    a = np.zeros((2, 3, 3))
    b = np.stack([np.zeros((3, 3)), np.arange(9.0).reshape(3, 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rho = spearman_per_sample(a, b)
    assert np.all(np.isnan(rho))
    mixed = spearman_per_sample(np.stack([b[1], b[1]]), b)
    assert math.isnan(mixed[0]) and mixed[1] == pytest.approx(1.0)


def test_topk_iou_hand_computed() -> None:
    a = np.array([[[9.0, 8.0, 1.0, 0.0], [0.0, 0.0, 0.0, 7.0]]])
    b = np.array([[[9.0, 0.0, 8.0, 0.0], [0.0, 0.0, 0.0, 7.0]]])
    # 8 pixels, fraction 0.25 -> k = 2: {0, 1} vs {0, 2}: IoU 1/3
    assert topk_iou(a, b, fraction=0.25) == pytest.approx([1 / 3])
    # k = 3: {0, 1, 7} vs {0, 2, 7}: IoU 2/4
    assert topk_iou(a, b, fraction=0.375) == pytest.approx([0.5])
    # tiny fraction still keeps one pixel (the shared maximum)
    assert topk_iou(a, b, fraction=0.01) == pytest.approx([1.0])
    assert topk_iou(a, b, fraction=1.0) == pytest.approx([1.0])


def test_topk_iou_properties() -> None:
    a, b = _maps(5), _maps(6)
    iou = topk_iou(a, b)
    assert np.all((iou >= 0) & (iou <= 1))
    assert np.array_equal(iou, topk_iou(b, a))
    assert np.all(topk_iou(a, a) == 1.0)
    assert np.all(topk_iou(np.zeros((2, 4, 4)), np.zeros((2, 4, 4))) == 1.0)  # ties by index


def test_mask_mass() -> None:
    maps = np.array(
        [
            [[1.0, 3.0], [-5.0, 0.0]],  # positive mass 4, 3 inside
            [[-1.0, 0.0], [0.0, -2.0]],  # no positive mass
            [[0.0, 0.0], [2.0, 2.0]],  # all outside
        ]
    )
    mask = np.array([[False, True], [False, False]])
    assert mask_mass(maps, mask) == pytest.approx([0.75, 0.0, 0.0])
    assert mask_mass(maps, np.ones((2, 2), dtype=bool)) == pytest.approx([1.0, 0.0, 1.0])


@pytest.mark.parametrize("function", [spearman_per_sample, topk_iou])
def test_pair_validation(function) -> None:
    with pytest.raises(ConfigError, match=r"`b` must be the same shape as `a` \(2, 3, 3\)"):
        function(np.ones((2, 3, 3)), np.ones((2, 3, 4)))
    with pytest.raises(ConfigError, match=r"`a` must be a 3-D array of shape \(N, H, W\)"):
        function(np.ones((3, 3)), np.ones((3, 3)))
    with pytest.raises(ConfigError, match="`a` must be maps with at least one pixel"):
        function(np.ones((2, 0, 3)), np.ones((2, 0, 3)))
    with pytest.raises(ConfigError, match="`b` must be finite"):
        function(np.ones((1, 2, 2)), np.full((1, 2, 2), np.nan))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01, float("nan"), True])
def test_topk_iou_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ConfigError, match=r"`fraction` must be a number in \(0, 1\]"):
        topk_iou(np.ones((1, 2, 2)), np.ones((1, 2, 2)), fraction=fraction)


def test_mask_mass_validation() -> None:
    maps = np.ones((2, 3, 3))
    with pytest.raises(ConfigError, match="`mask` must be a boolean array"):
        mask_mass(maps, np.ones((3, 3)))
    with pytest.raises(ConfigError, match=r"`mask` must be a boolean array of shape \(3, 3\)"):
        mask_mass(maps, np.ones((3, 4), dtype=bool))
    with pytest.raises(ConfigError, match=r"`maps` must be a 3-D array"):
        mask_mass(np.ones((3, 3)), np.ones((3, 3), dtype=bool))
