"""unlearn_audit.functional.representation: L1-density, CSI, relevance, CKA, few-shot probe."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ortho_group

from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.representation import (
    class_channel_relevance,
    csi,
    few_shot_probe,
    l1_density,
    linear_cka,
    linear_cka_interval,
)


def test_l1_density_hand_computed() -> None:
    assert l1_density([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]]) == pytest.approx(2.0 / 6.0)
    assert l1_density(np.ones((4, 3))) == 1.0
    assert l1_density([[-1.0, 1.0]]) == 1.0


def test_csi_hand_computed() -> None:
    total, mean = csi([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert total == pytest.approx(2.0)
    assert mean == pytest.approx(2.0 / 6.0)
    # rows at 45 degrees: each ordered pair contributes cos 45
    total, mean = csi([[1.0, 0.0], [1.0, 1.0]])
    assert total == pytest.approx(2 * math.sqrt(0.5)) and mean == pytest.approx(math.sqrt(0.5))


def test_csi_matches_pairwise_loop_and_zero_rows() -> None:
    g = np.random.default_rng(0).random((6, 9))
    g[2] = 0.0
    expected = 0.0
    for i in range(6):
        for j in range(6):
            ni, nj = np.linalg.norm(g[i]), np.linalg.norm(g[j])
            if i != j and ni > 0 and nj > 0:
                expected += g[i] @ g[j] / (ni * nj)
    total, mean = csi(g)
    assert total == pytest.approx(expected, abs=1e-12)
    assert mean == pytest.approx(expected / 30)
    assert csi(np.zeros((3, 4))) == (0.0, 0.0)


def test_csi_and_density_validation() -> None:
    with pytest.raises(ConfigError, match="`g` must be a matrix with at least 2 classes"):
        csi([[1.0, 0.0]])
    with pytest.raises(ConfigError, match=r"`g` must be a 2-D array of shape \(C, K\)"):
        l1_density([1.0, 0.0])
    with pytest.raises(ConfigError, match="`g` must be a non-empty matrix"):
        l1_density(np.zeros((2, 0)))


def test_class_channel_relevance_hand_computed() -> None:
    activations = np.array([[2.0, 1.0, 0.0], [4.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 2.0]])
    labels = np.array([0, 0, 1, 2])
    g = class_channel_relevance(activations, labels, num_classes=4)
    # class 0 mean (3, 1, 0) -> (1, 1/3, 0); class 1 all zero; class 2 (1, 3, 2) / 3; class 3 empty
    expected = np.array([[1.0, 1 / 3, 0.0], [0.0, 0.0, 0.0], [1 / 3, 1.0, 2 / 3], [0.0, 0.0, 0.0]])
    assert g == pytest.approx(expected)
    assert np.all(g.max(axis=1)[[0, 2]] == 1.0)


def test_class_channel_relevance_validation() -> None:
    with pytest.raises(ConfigError, match=r"`channel_activations` must be non-negative"):
        class_channel_relevance([[-1.0, 0.0]], [0], num_classes=2)
    with pytest.raises(ConfigError, match="`labels` must be class labels below `num_classes` = 2"):
        class_channel_relevance([[1.0, 0.0]], [2], num_classes=2)
    with pytest.raises(ConfigError, match="`labels` must be a 1-D array of 1 labels"):
        class_channel_relevance([[1.0, 0.0]], [0, 1], num_classes=2)
    with pytest.raises(ConfigError, match="`num_classes` must be an integer >= 1"):
        class_channel_relevance([[1.0, 0.0]], [0], num_classes=0)


def _cka_hsic(x: np.ndarray, y: np.ndarray) -> float:
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_matches_hsic_formula() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12))
    y = x[:, :5] @ rng.normal(size=(5, 7)) + rng.normal(size=(40, 7))
    assert linear_cka(x, y) == pytest.approx(_cka_hsic(x, y), abs=1e-10)


def test_linear_cka_properties() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8))
    q = ortho_group.rvs(8, random_state=2)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.5 * x @ q + 1.0) == pytest.approx(1.0, abs=1e-10)
    y = rng.normal(size=(60, 8))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)
    assert 0.0 <= linear_cka(x, y) < 0.5


def test_linear_cka_constant_input_is_nan() -> None:
    x = np.random.default_rng(3).normal(size=(10, 4))
    assert math.isnan(linear_cka(x, np.ones((10, 3))))


def test_linear_cka_validation() -> None:
    with pytest.raises(ConfigError, match=r"`y` must be an array with the same number of rows"):
        linear_cka(np.ones((5, 2)), np.ones((4, 2)))
    with pytest.raises(ConfigError, match=r"`x` must be a 2-D array of shape \(N, D1\)"):
        linear_cka(np.ones(5), np.ones((5, 2)))


def test_linear_cka_interval_hand_case_and_properties() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    # a model against itself (or an orthogonal transform of itself): every resample is 1
    q = ortho_group.rvs(5, random_state=1)
    assert linear_cka_interval(x, x @ q, seed=3) == pytest.approx((1.0, 1.0, 1.0), abs=1e-10)
    # a hand case: two rows only (any resample of 2 rows is either both rows or one row twice;
    # one row repeated has no variance, so it counts as the estimate)
    two = linear_cka_interval([[0.0], [1.0]], [[0.0], [2.0]], n_resamples=50, seed=0)
    assert two == pytest.approx((1.0, 1.0, 1.0))
    # noisy features: the interval holds the estimate, is seeded, and narrows with more rows
    y = x + rng.normal(scale=2.0, size=x.shape)
    value, low, high = linear_cka_interval(x, y, seed=3)
    assert value == pytest.approx(linear_cka(x, y))
    assert 0.0 <= low < value < high <= 1.0
    assert linear_cka_interval(x, y, seed=3) == (value, low, high)
    assert linear_cka_interval(x, y, seed=4) != (value, low, high)
    big_x = rng.normal(size=(600, 5))
    big_y = big_x + rng.normal(scale=2.0, size=big_x.shape)
    _, big_low, big_high = linear_cka_interval(big_x, big_y, seed=3)
    assert big_high - big_low < (high - low) / 2
    # undefined CKA: no interval either
    assert all(math.isnan(v) for v in linear_cka_interval(x, np.ones((60, 2))))
    with pytest.raises(ConfigError, match=r"`y` must be an array with the same number of rows"):
        linear_cka_interval(np.ones((5, 2)), np.ones((4, 2)))


def _blobs(seed: int, per_class: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    labels = np.repeat(np.arange(3), per_class)
    return centres[labels] + rng.normal(0.0, spread, (labels.size, 3)), labels


def test_few_shot_probe_separable_and_seeded() -> None:
    x_train, y_train = _blobs(0, 30, 0.3)
    x_test, y_test = _blobs(1, 20, 0.3)
    result = few_shot_probe(x_train, y_train, x_test, y_test, shots=2, draws=3, seed=4)
    assert set(result) == {"recall", "recall_std", "accuracy", "recall_draws", "accuracy_draws"}
    # the per-draw values behind the means and stds
    for c in (0, 1, 2):
        assert len(result["recall_draws"][c]) == 3
        assert np.mean(result["recall_draws"][c]) == pytest.approx(result["recall"][c])
        assert np.std(result["recall_draws"][c]) == pytest.approx(result["recall_std"][c])
    assert np.mean(result["accuracy_draws"]) == pytest.approx(result["accuracy"])
    assert list(result["recall"]) == [0, 1, 2] and list(result["recall_std"]) == [0, 1, 2]
    assert all(value >= 0.85 for value in result["recall"].values())
    assert all(0.0 <= value <= 0.2 for value in result["recall_std"].values())
    assert result["accuracy"] == pytest.approx(np.mean(list(result["recall"].values())))
    noisy = (_blobs(2, 30, 3.0), _blobs(3, 30, 3.0))
    args = (*noisy[0], *noisy[1])
    first = few_shot_probe(*args, shots=2, draws=4, seed=5, classes=[1])
    assert list(first["recall"]) == [1]
    assert few_shot_probe(*args, shots=2, draws=4, seed=5, classes=[1]) == first
    assert few_shot_probe(*args, shots=2, draws=4, seed=6, classes=[1]) != first


def test_few_shot_probe_hand_computed_and_missing_class() -> None:
    # one shot each of two points on a line; the test points sit beside them
    x_train = np.array([[0.0], [10.0], [0.5]])
    y_train = np.array([0, 1, 0])
    x_test = np.array([[1.0], [9.0], [8.0], [-1.0]])
    y_test = np.array([0, 1, 0, 0])  # the third one is labelled 0 but sits near class 1
    result = few_shot_probe(x_train, y_train, x_test, y_test, shots=5, draws=1, classes=[0, 1, 2])
    assert result["recall"][0] == pytest.approx(2 / 3)
    assert result["recall"][1] == 1.0
    assert math.isnan(result["recall"][2])
    assert result["accuracy"] == pytest.approx(0.75)


def test_few_shot_probe_validation() -> None:
    x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ConfigError, match="`shots` must be an integer >= 1"):
        few_shot_probe(x, y, x, y, shots=0)
    with pytest.raises(ConfigError, match="`draws` must be an integer >= 1"):
        few_shot_probe(x, y, x, y, shots=1, draws=0)
    with pytest.raises(ConfigError, match="`train_labels` must be labels of at least 2 classes"):
        few_shot_probe(x, np.zeros(4, dtype=int), x, y, shots=1)
    with pytest.raises(ConfigError, match=r"`test_features` must be an array of shape \(M, 2\)"):
        few_shot_probe(x, y, np.zeros((4, 3)), y, shots=1)
    with pytest.raises(ConfigError, match="`test_labels` must be a 1-D array of 4 labels"):
        few_shot_probe(x, y, x, y[:2], shots=1)
    with pytest.raises(ConfigError, match="`classes` must be non-negative class labels"):
        few_shot_probe(x, y, x, y, shots=1, classes=[-1])


@pytest.mark.parametrize("features", [7, 60], ids=["more samples", "more features"])
def test_linear_cka_interval_is_the_bootstrap_error_of_linear_cka(features: int) -> None:
    """Both ways of computing a resample's CKA (its features, or the kernels when features
    outnumber samples) give the CKA of the resampled rows: the same standard error as a
    bootstrap of the plain :func:`linear_cka` with the same seed, around the estimate."""
    from scipy.special import ndtri

    from unlearn_audit.functional.stats import bootstrap_standard_error

    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, features))
    y = x @ rng.normal(size=(features, 3)) + rng.normal(scale=1.5, size=(40, 3))

    def plain(rows: np.ndarray) -> float:
        return linear_cka(x[rows.astype(np.int64)], y[rows.astype(np.int64)])

    error = bootstrap_standard_error(
        plain, np.arange(40, dtype=np.float64), n_resamples=150, seed=2
    )
    value, low, high = linear_cka_interval(x, y, n_resamples=150, seed=2)
    assert value == linear_cka(x, y) and error > 0.01
    half = float(ndtri(0.975)) * error
    assert (low, high) == pytest.approx((max(0.0, value - half), min(1.0, value + half)))


def test_linear_cka_interval_holds_the_estimate_with_more_features_than_samples() -> None:
    """98 samples of 128 noisy features (the digits forget set's size): every resample's CKA
    lies above the estimate, so a percentile interval would miss it; this one holds it."""
    from unlearn_audit.functional.stats import bootstrap_interval

    rng = np.random.default_rng(0)
    x = rng.normal(size=(98, 128))
    y = x + rng.normal(size=(98, 128))

    def plain(rows: np.ndarray) -> float:
        return linear_cka(x[rows.astype(np.int64)], y[rows.astype(np.int64)])

    value, low, high = linear_cka_interval(x, y, seed=1)
    percentile = bootstrap_interval(plain, np.arange(98, dtype=np.float64), n_resamples=200, seed=1)
    assert percentile[0] > value  # the bias this interval avoids
    assert low < value < high and high - low > 0.01
