"""Representation checks: mask-matrix statistics, linear CKA and a few-shot linear probe.

References:
    Seed 000 (ERM): L1-density and class-specific index (CSI) of the class-channel mask
    matrix ``G``.
    Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited" (CKA).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from unlearn_audit._validation import fail
from unlearn_audit.functional._checks import (
    check_array,
    check_confidence,
    check_count,
    check_labels,
    check_seed,
    describe,
)
from unlearn_audit.functional.stats import bootstrap_standard_error

__all__ = [
    "class_channel_relevance",
    "csi",
    "few_shot_probe",
    "l1_density",
    "linear_cka",
    "linear_cka_interval",
]


def _matrix(g: Any) -> np.ndarray:
    array = check_array(g, "g", ndim=2, shape_hint="(C, K)")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise fail("g", "a non-empty matrix (C, K)", describe(array))
    return array


def l1_density(g: Any) -> float:
    """L1-density of a class-channel matrix: ``||G||_1 / (C K)`` (seed 000).

    Args:
        g: Class-channel matrix ``(C, K)``, e.g. an ERM mask or :func:`class_channel_relevance`.

    Returns:
        The mean absolute entry; for a matrix in [0, 1], the share of channel mass in use.
    """
    array = _matrix(g)
    return float(np.abs(array).sum() / array.size)


def csi(g: Any) -> tuple[float, float]:
    """Class-specific index: cosine similarity between the rows of different classes (seed 000).

    Follows the seed's definition: the sum over ORDERED pairs ``(i, j)``, ``i != j``, so each
    unordered pair counts twice. A zero row has cosine 0 with every row (no NaN).

    Args:
        g: Class-channel matrix ``(C, K)`` with ``C >= 2``.

    Returns:
        ``(total, mean)``: the sum over the ``C (C - 1)`` ordered pairs, and its mean, which
        compares models with different ``C``. Lower means more class-specific channels.

    Raises:
        ConfigError: When ``g`` is not a matrix with at least 2 rows.
    """
    array = _matrix(g)
    c = array.shape[0]
    if c < 2:
        raise fail("g", "a matrix with at least 2 classes (rows)", describe(array))
    similarity = cosine_similarity(array)  # zero rows normalise to zero: cosine 0
    off_diagonal = ~np.eye(c, dtype=bool)
    total = float(similarity[off_diagonal].sum())
    return total, total / (c * (c - 1))


def class_channel_relevance(
    channel_activations: Any, labels: Any, *, num_classes: int
) -> np.ndarray:
    """Class-channel relevance matrix: mean channel activation per class, rows scaled to max 1.

    Plays the role of the seed-000 mask matrix ``G`` for any CNN, so :func:`csi` and
    :func:`l1_density` apply.

    Args:
        channel_activations: Mean ReLU activation of each last-conv channel per sample
            ``(N, K)``; non-negative.
        labels: Classes ``(N,)``.
        num_classes: Number of classes ``C``.

    Returns:
        ``(C, K)``; each row divided by its maximum. An all-zero row, or a class without
        samples, is a zero row.

    Raises:
        ConfigError: On negative activations, mismatched lengths or labels outside ``[0, C)``.
    """
    x = check_array(channel_activations, "channel_activations", ndim=2, shape_hint="(N, K)")
    if x.size and x.min() < 0:
        raise fail("channel_activations", "non-negative (after ReLU)", float(x.min()))
    num_classes = check_count(num_classes, "num_classes", minimum=1)
    y = check_labels(labels, "labels", n=x.shape[0], num_classes=num_classes)
    onehot = np.zeros((x.shape[0], num_classes))
    onehot[np.arange(x.shape[0]), y] = 1.0
    counts = onehot.sum(axis=0)
    means = (onehot.T @ x) / np.maximum(counts, 1.0)[:, None]
    peaks = means.max(axis=1, keepdims=True) if x.shape[1] else np.zeros((num_classes, 1))
    return np.divide(means, peaks, out=np.zeros_like(means), where=peaks > 0)


def linear_cka(x: Any, y: Any) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019).

    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred features. Equals 1
    for identical inputs and is invariant to orthogonal transforms and isotropic scaling.

    Args:
        x: Features of the first model ``(N, D1)``.
        y: Features of the second model on the same samples ``(N, D2)``.

    Returns:
        CKA in [0, 1]; NaN when either input is constant over samples (no variance, so the
        similarity is undefined).

    Raises:
        ConfigError: On non-2-D inputs or different numbers of rows.
    """
    a = check_array(x, "x", ndim=2, shape_hint="(N, D1)")
    b = check_array(y, "y", ndim=2, shape_hint="(N, D2)")
    if a.shape[0] != b.shape[0]:
        raise fail("y", f"an array with the same number of rows as `x` ({a.shape[0]})", describe(b))
    return _centred_cka(_centre(a), _centre(b))


def _centre(features: np.ndarray) -> np.ndarray:
    return features - features.mean(axis=0)


def _centred_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA of column-centred features; NaN when either has no variance."""
    norm_a = float(np.linalg.norm(a.T @ a))
    norm_b = float(np.linalg.norm(b.T @ b))
    if norm_a == 0.0 or norm_b == 0.0:
        return math.nan
    cross = float(np.linalg.norm(b.T @ a) ** 2)
    return float(np.clip(cross / (norm_a * norm_b), 0.0, 1.0))


def linear_cka_interval(
    x: Any, y: Any, *, n_resamples: int = 200, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Linear CKA with a seeded bootstrap interval over the samples (rows).

    Rows are resampled in pairs (the two models' features of one sample stay together) and the
    CKA of each resample computed; the interval is ``CKA +- z * standard error`` of those
    (:func:`~unlearn_audit.functional.stats.bootstrap_standard_error`), clipped to [0, 1]. Not
    the percentiles of the resamples: linear CKA is biased upwards on few samples, more so on a
    resample whose rows repeat, so with fewer samples than features the resamples sit above
    the estimate (on 98 samples of 128 noisy features, all of them). The interval is the sample
    noise of the estimate; two models trained with different seeds differ by more than that
    (see the null audit).

    With fewer samples than features, each resample's CKA comes from the linear kernels of the
    whole sample, ``K = X X^T`` and ``L = Y Y^T``: the resample's are ``K[r][:, r]``, and
    ``CKA = <HKH, HLH> / (||HKH|| ||HLH||)`` (``H`` centres), equal to :func:`linear_cka` on
    the resampled rows without a product of features per resample.

    Args:
        x: Features of the first model ``(N, D1)``.
        y: Features of the second model on the same samples ``(N, D2)``.
        n_resamples: Number of bootstrap resamples.
        confidence: Confidence level in (0, 1).
        seed: Seed of the resampling generator.

    Returns:
        ``(cka, low, high)``; all NaN when the CKA is undefined.

    Raises:
        ConfigError: As :func:`linear_cka`, or on bad options.
    """
    value = linear_cka(x, y)
    level = check_confidence(confidence)
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if math.isnan(value) or a.shape[0] < 2:
        return value, value, value
    kernels = None
    if a.shape[0] < max(a.shape[1], b.shape[1]):
        kernels = _centre(a) @ _centre(a).T, _centre(b) @ _centre(b).T

    def on_rows(rows: np.ndarray) -> float:
        picked = rows.astype(np.int64)
        if kernels is None:
            cka = _centred_cka(_centre(a[picked]), _centre(b[picked]))
        else:
            k, m = (_centre(_centre(kernel[np.ix_(picked, picked)]).T) for kernel in kernels)
            norms = float(np.sqrt(np.sum(k * k) * np.sum(m * m)))
            cka = math.nan if norms == 0.0 else float(np.clip(np.sum(k * m) / norms, 0.0, 1.0))
        return value if math.isnan(cka) else cka  # NaN: a resample of one repeated row

    error = bootstrap_standard_error(
        on_rows, np.arange(a.shape[0], dtype=np.float64), n_resamples=n_resamples, seed=seed
    )
    half = float(special.ndtri(0.5 + level / 2)) * error
    return value, max(0.0, value - half), min(1.0, value + half)


def few_shot_probe(
    train_features: Any,
    train_labels: Any,
    test_features: Any,
    test_labels: Any,
    *,
    shots: int,
    draws: int = 5,
    seed: int = 0,
    classes: Any = None,
) -> dict[str, Any]:
    """Few-shot linear probe on frozen features: per-class recall averaged over draws.

    Each draw samples ``shots`` training examples per class without replacement (a class with
    fewer uses all of them) from ``np.random.default_rng(seed)``, fits
    ``StandardScaler -> LogisticRegression(max_iter=5000)`` and predicts the test set.

    Args:
        train_features: Pool to draw the shots from ``(N, D)``.
        train_labels: Its classes ``(N,)``; at least 2 classes.
        test_features: Held-out features ``(M, D)``.
        test_labels: Their classes ``(M,)``.
        shots: Examples per class in each draw.
        draws: Number of independent draws.
        seed: Seed of the draws.
        classes: Classes to report recall for; default all classes in train or test.

    Returns:
        ``{"recall": {class: mean}, "recall_std": {class: std}, "accuracy": mean,
        "recall_draws": {class: [one value per draw]}, "accuracy_draws": [...]}``; the std
        is over draws (ddof=0). The recall of a class without test samples is NaN.

    Raises:
        ConfigError: On mismatched shapes, fewer than 2 training classes or bad options.
    """
    x_train = check_array(train_features, "train_features", ndim=2, shape_hint="(N, D)")
    x_test = check_array(test_features, "test_features", ndim=2, shape_hint="(M, D)", min_rows=1)
    if x_test.shape[1] != x_train.shape[1]:
        raise fail("test_features", f"an array of shape (M, {x_train.shape[1]})", describe(x_test))
    y_train = check_labels(train_labels, "train_labels", n=x_train.shape[0])
    y_test = check_labels(test_labels, "test_labels", n=x_test.shape[0])
    shots = check_count(shots, "shots", minimum=1)
    draws = check_count(draws, "draws", minimum=1)
    rng = np.random.default_rng(check_seed(seed))
    train_classes = np.unique(y_train)
    if train_classes.size < 2:
        raise fail("train_labels", "labels of at least 2 classes", train_classes.tolist())
    if classes is None:
        report = [int(c) for c in np.union1d(train_classes, np.unique(y_test))]
    else:
        wanted = np.atleast_1d(np.asarray(classes))
        report = [int(c) for c in check_labels(wanted, "classes", n=wanted.size)]

    recalls = np.zeros((draws, len(report)))
    accuracies = np.zeros(draws)
    for d in range(draws):
        chosen = np.concatenate(
            [
                rng.choice(pool, size=min(shots, pool.size), replace=False)
                for pool in (np.flatnonzero(y_train == c) for c in train_classes)
            ]
        )
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        predicted = probe.fit(x_train[chosen], y_train[chosen]).predict(x_test)
        accuracies[d] = np.mean(predicted == y_test)
        for j, c in enumerate(report):
            rows = y_test == c
            recalls[d, j] = np.mean(predicted[rows] == c) if rows.any() else math.nan
    return {
        "recall": {c: float(recalls[:, j].mean()) for j, c in enumerate(report)},
        "recall_std": {c: float(recalls[:, j].std()) for j, c in enumerate(report)},
        "accuracy": float(accuracies.mean()),
        "recall_draws": {c: recalls[:, j].tolist() for j, c in enumerate(report)},
        "accuracy_draws": accuracies.tolist(),
    }
