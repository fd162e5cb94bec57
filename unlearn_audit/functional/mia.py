"""Membership inference: ROC figures, Shokri shadow attack, offline LiRA and RMIA, loss
threshold.

Scores are always "higher = more member-like". Members are labelled 1, non-members 0.

References:
    Shokri et al. 2017, "Membership Inference Attacks Against Machine Learning Models".
    Carlini et al. 2022, "Membership Inference Attacks From First Principles" (LiRA).
    Zarifzadeh, Liu & Shokri 2024, "Low-Cost High-Power Membership Inference Attacks"
    (RMIA).
    Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the Connection to
    Overfitting".
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp
from scipy.special import softmax as _softmax
from scipy.stats import rankdata
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_curve

from unlearn_audit._validation import fail
from unlearn_audit.functional._checks import (
    check_array,
    check_count,
    check_labels,
    check_rate,
    check_seed,
    describe,
)
from unlearn_audit.functional.stats import clopper_pearson_interval

__all__ = [
    "BoostedTrees",
    "ShokriAttack",
    "TprAtFpr",
    "auc",
    "fit_shokri_attack",
    "lira_offline_scores",
    "logit_confidence",
    "loss_threshold_scores",
    "rmia_offline_scores",
    "roc",
    "shokri_features",
    "softmax",
    "tpr_at_fpr",
]


def _scores(member_scores: Any, nonmember_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    members = check_array(member_scores, "member_scores", ndim=1, shape_hint="(M,)", min_rows=1)
    nonmembers = check_array(
        nonmember_scores, "nonmember_scores", ndim=1, shape_hint="(N,)", min_rows=1
    )
    return members, nonmembers


def _labelled(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.concatenate([np.ones(members.size, np.int64), np.zeros(nonmembers.size, np.int64)])
    return y, np.concatenate([members, nonmembers])


def roc(member_scores: Any, nonmember_scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a membership attack (:func:`sklearn.metrics.roc_curve`).

    Args:
        member_scores: Attack scores of members ``(M,)``.
        nonmember_scores: Attack scores of non-members ``(N,)``.

    Returns:
        ``(fpr, tpr, thresholds)``; point ``i`` predicts "member" when
        ``score >= thresholds[i]``; ``thresholds[0]`` is ``inf`` (nothing predicted member).

    Raises:
        ConfigError: On empty, non-1-D or non-finite scores.
    """
    y, s = _labelled(*_scores(member_scores, nonmember_scores))
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thresholds


def auc(member_scores: Any, nonmember_scores: Any) -> float:
    """Area under the ROC curve; ties count one half.

    Computed as the Mann-Whitney U statistic over ``M * N`` from average ranks, which equals
    :func:`sklearn.metrics.roc_auc_score` (tested) at a fraction of its cost, so that
    bootstrap intervals over thousands of resamples stay cheap.

    Args:
        member_scores: Attack scores of members ``(M,)``.
        nonmember_scores: Attack scores of non-members ``(N,)``.

    Returns:
        The probability that a random member scores above a random non-member; 0.5 is chance.
    """
    members, nonmembers = _scores(member_scores, nonmember_scores)
    return float(auc_along(members, nonmembers))


def auc_along(members: np.ndarray, nonmembers: np.ndarray, axis: int = -1) -> Any:
    """:func:`auc` of score arrays stacked along other axes (``(..., M)`` and ``(..., N)``),
    reducing ``axis``: the vectorised statistic of a bootstrap (unchecked; finite scores)."""
    members, nonmembers = np.moveaxis(members, axis, -1), np.moveaxis(nonmembers, axis, -1)
    m, n = members.shape[-1], nonmembers.shape[-1]
    ranks = rankdata(np.concatenate([members, nonmembers], axis=-1), axis=-1)
    u = ranks[..., :m].sum(axis=-1) - m * (m + 1) / 2
    return u / (m * n)


def auc_interval(
    member_scores: Any,
    nonmember_scores: Any,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Seeded percentile bootstrap interval of :func:`auc` (members and non-members resampled
    independently), exactly :func:`~unlearn_audit.functional.stats.bootstrap_interval` of
    ``auc`` with the same seed, in linear time per resample.

    Each score is replaced by its place among the distinct scores (a code); a resample's AUC is
    then read from a histogram of its non-members' codes (how many lie below and at each code)
    instead of ranking the resample again. The resampling draws the same positions whatever the
    values, so the interval is the one of the plain statistic, to the last bit.

    Args:
        member_scores: Attack scores of members ``(M,)``.
        nonmember_scores: Attack scores of non-members ``(N,)``.
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the resampling generator.
        confidence: Confidence level in (0, 1).

    Returns:
        ``(low, high)``.
    """
    from unlearn_audit.functional.stats import bootstrap_interval

    members, nonmembers = _scores(member_scores, nonmember_scores)
    distinct, codes = np.unique(np.concatenate([members, nonmembers]), return_inverse=True)
    statistic = functools.partial(_auc_of_codes, distinct=len(distinct))
    return bootstrap_interval(
        statistic,
        codes[: len(members)],
        codes[len(members) :],
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
        vectorized=True,
    )


_CODE_ROWS = 64  # resamples whose histograms are built at once (bounds memory)


def _auc_of_codes(
    members: np.ndarray, nonmembers: np.ndarray, axis: int = -1, *, distinct: int
) -> Any:
    """AUC of coded scores (integers in ``[0, distinct)``, order kept) stacked along other axes:
    member codes scored against the count of non-member codes below (ties count half)."""
    members, nonmembers = np.moveaxis(members, axis, -1), np.moveaxis(nonmembers, axis, -1)
    lead = np.broadcast_shapes(members.shape[:-1], nonmembers.shape[:-1])
    m, n = members.shape[-1], nonmembers.shape[-1]
    # (the bootstrap hands the codes over as floats)
    members = np.broadcast_to(members, (*lead, m)).reshape(-1, m).astype(np.intp)
    nonmembers = np.broadcast_to(nonmembers, (*lead, n)).reshape(-1, n).astype(np.intp)
    u = np.empty(len(members))
    for start in range(0, len(members), _CODE_ROWS):
        rows = slice(start, start + _CODE_ROWS)
        count = len(members[rows])
        offsets = np.arange(count)[:, None] * distinct
        at = np.bincount((nonmembers[rows] + offsets).ravel(), minlength=count * distinct)
        at = at.reshape(count, distinct)  # non-members at each code, per resample
        below = np.cumsum(at, axis=1) - at  # non-members below each code
        picked = np.take_along_axis(below, members[rows], 1) + 0.5 * np.take_along_axis(
            at, members[rows], 1
        )
        u[rows] = picked.sum(axis=1)
    return (u / (m * n)).reshape(lead)


@dataclass(frozen=True)
class TprAtFpr:
    """True-positive rate of an attack at a target false-positive rate.

    Attributes:
        target_fpr: The FPR asked for.
        tpr: Highest TPR whose realised FPR is <= ``target_fpr``.
        realised_fpr: FPR actually reached at ``threshold`` (never above the target).
        threshold: Score cut; "member" when ``score >= threshold`` (``inf``: nothing called
            member).
        true_positives: Members at or above the threshold.
        members: Number of members.
        false_positives: Non-members at or above the threshold.
        nonmembers: Number of non-members.
        resolvable: False when ``nonmembers * target_fpr < 1``: the sample cannot resolve the
            rate, and the TPR says nothing about it.
        tpr_low: Clopper-Pearson 95% lower bound of the TPR.
        tpr_high: Clopper-Pearson 95% upper bound of the TPR.
    """

    target_fpr: float
    tpr: float
    realised_fpr: float
    threshold: float
    true_positives: int
    members: int
    false_positives: int
    nonmembers: int
    resolvable: bool
    tpr_low: float
    tpr_high: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)


def tpr_at_fpr(member_scores: Any, nonmember_scores: Any, fpr: float) -> TprAtFpr:
    """TPR at a target FPR (Carlini et al. 2022: report the low-FPR regime).

    Thresholds run over the distinct observed scores, so a threshold admits every tied score;
    the chosen one gives the highest TPR among those whose realised FPR is <= ``fpr``.

    Args:
        member_scores: Attack scores of members ``(M,)``.
        nonmember_scores: Attack scores of non-members ``(N,)``.
        fpr: Target false-positive rate in (0, 1].

    Returns:
        A :class:`TprAtFpr` with counts and a Clopper-Pearson interval of the TPR.

    Raises:
        ConfigError: On empty or non-finite scores, or ``fpr`` outside (0, 1].
    """
    target = check_rate(fpr, "fpr")
    members, nonmembers = _scores(member_scores, nonmember_scores)
    fprs, _, thresholds = roc(members, nonmembers)
    # compare counts, not floats: k / n <= target exactly when k <= target * n
    false_counts = np.rint(fprs * nonmembers.size)
    index = int(np.flatnonzero(false_counts <= target * nonmembers.size + 1e-9)[-1])
    threshold = float(thresholds[index])
    tp = int(np.count_nonzero(members >= threshold))
    fp = int(np.count_nonzero(nonmembers >= threshold))
    low, high = clopper_pearson_interval(tp, members.size)
    return TprAtFpr(
        target_fpr=target,
        tpr=tp / members.size,
        realised_fpr=fp / nonmembers.size,
        threshold=threshold,
        true_positives=tp,
        members=int(members.size),
        false_positives=fp,
        nonmembers=int(nonmembers.size),
        resolvable=nonmembers.size * target >= 1.0,
        tpr_low=low,
        tpr_high=high,
    )


def softmax(logits: Any) -> np.ndarray:
    """Numerically stable softmax over classes (:func:`scipy.special.softmax`).

    Args:
        logits: ``(N, C)``.

    Returns:
        Probabilities ``(N, C)``, each row summing to 1.
    """
    z = check_array(logits, "logits", ndim=2, shape_hint="(N, C)")
    return np.asarray(_softmax(z, axis=1))


def _logits_and_labels(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    z = check_array(logits, "logits", ndim=2, shape_hint="(N, C)")
    if z.shape[1] < 2:
        raise fail("logits", "an array with at least 2 classes (N, C >= 2)", describe(z))
    return z, check_labels(labels, "labels", n=z.shape[0], num_classes=z.shape[1])


def logit_confidence(logits: Any, labels: Any) -> np.ndarray:
    """Logit-scaled confidence ``log p_y - log(1 - p_y)`` (Carlini et al. 2022).

    Computed from the logits as ``z_y - logsumexp(z without y)``, which is exact and stays
    finite when ``p_y`` rounds to 0 or 1 (e.g. logits 1000 vs 0 give 1000).

    Args:
        logits: ``(N, C)`` with ``C >= 2``.
        labels: True classes ``(N,)``.

    Returns:
        ``(N,)`` confidences; higher means more confident in the true class.
    """
    z, y = _logits_and_labels(logits, labels)
    rows = np.arange(z.shape[0])
    others = z.copy()
    others[rows, y] = -np.inf
    return np.asarray(z[rows, y] - logsumexp(others, axis=1))


def shokri_features(probs: Any, labels: Any) -> np.ndarray:
    """Attack features of Shokri et al. 2017: the sorted softmax vector and ``p_y``.

    Args:
        probs: Softmax outputs ``(N, C)``.
        labels: True classes ``(N,)``.

    Returns:
        ``(N, C + 1)``: probabilities sorted in descending order, then the true-class one.
    """
    p = check_array(probs, "probs", ndim=2, shape_hint="(N, C)")
    y = check_labels(labels, "labels", n=p.shape[0], num_classes=p.shape[1])
    ranked = -np.sort(-p, axis=1)
    return np.concatenate([ranked, p[np.arange(p.shape[0]), y][:, None]], axis=1)


def _attack_model(seed: int) -> GradientBoostingClassifier:
    # shallow boosted trees: nonlinear in the confidence features and exact on values crowded
    # near 1. The classic (not histogram) booster runs single-threaded, so it does not fight
    # torch's OpenMP threads, and with subsample=1 it is deterministic.
    return GradientBoostingClassifier(
        n_estimators=100,
        learning_rate=0.1,
        max_depth=3,
        min_samples_leaf=20,
        subsample=1.0,
        random_state=seed,
    )


_TREE_FIELDS = ("feature", "threshold", "left", "right", "value")


@dataclass(frozen=True)
class BoostedTrees:
    """A fitted binary :class:`~sklearn.ensemble.GradientBoostingClassifier` as plain arrays:
    it scores like the fitted model and is kept in the store without pickling.

    Attributes:
        init: Raw score (log-odds) of the prior every row starts from.
        learning_rate: Weight of each tree's leaf values.
        feature, threshold, left, right, value: ``(trees, nodes)`` node arrays (sklearn's
            ``tree_`` fields, padded); a leaf has ``left == -1`` and its value in ``value``.
    """

    init: float
    learning_rate: float
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    @classmethod
    def from_sklearn(cls, model: GradientBoostingClassifier) -> BoostedTrees:
        trees = [estimator[0].tree_ for estimator in model.estimators_]
        nodes = max(tree.node_count for tree in trees)

        def padded(name: str, fill: float, dtype: Any) -> np.ndarray:
            out = np.full((len(trees), nodes), fill, dtype=dtype)
            for t, tree in enumerate(trees):
                values = tree.value[:, 0, 0] if name == "value" else getattr(tree, name)
                out[t, : tree.node_count] = values
            return out

        prior = float(model.init_.class_prior_[1])
        return cls(
            init=math.log(prior / (1.0 - prior)),
            learning_rate=float(model.learning_rate),
            feature=padded("feature", 0, np.int64),
            threshold=padded("threshold", 0.0, np.float64),
            left=padded("children_left", -1, np.int64),
            right=padded("children_right", -1, np.int64),
            value=padded("value", 0.0, np.float64),
        )

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Member probability of each row of ``x`` (sklearn compares features as float32)."""
        from scipy.special import expit

        x = np.asarray(x, dtype=np.float32)
        trees, rows = np.arange(len(self.feature))[:, None], np.arange(len(x))[None, :]
        node = np.zeros((len(self.feature), len(x)), dtype=np.int64)
        while True:
            inner = self.left[trees, node] >= 0
            if not inner.any():
                break
            goes_left = x[rows, self.feature[trees, node]] <= self.threshold[trees, node]
            step = np.where(goes_left, self.left[trees, node], self.right[trees, node])
            node = np.where(inner, step, node)
        raw = self.init + self.learning_rate * self.value[trees, node].sum(axis=0)
        return np.asarray(expit(raw), dtype=np.float64)


@dataclass(frozen=True)
class ShokriAttack:
    """Fitted per-class attack models of Shokri et al. 2017.

    Attributes:
        models: One fitted classifier per class; a class in ``fallback_classes`` holds the
            global model trained on all rows.
        num_classes: Number of classes ``C``.
        fallback_classes: Classes whose shadow rows lacked "in" or "out" examples.
    """

    models: tuple[BoostedTrees, ...]
    num_classes: int
    fallback_classes: tuple[int, ...]

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """The attack as arrays and notes (see :meth:`from_arrays`), for the store."""
        arrays = {
            f"{c}.{name}": getattr(model, name)
            for c, model in enumerate(self.models)
            for name in _TREE_FIELDS
        }
        arrays["init"] = np.array([m.init for m in self.models])
        arrays["learning_rate"] = np.array([m.learning_rate for m in self.models])
        arrays["fallback_classes"] = np.array(self.fallback_classes, dtype=np.int64)
        return arrays, {}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ShokriAttack:
        num_classes = len(arrays["init"])
        models = tuple(
            BoostedTrees(
                init=float(arrays["init"][c]),
                learning_rate=float(arrays["learning_rate"][c]),
                **{name: arrays[f"{c}.{name}"] for name in _TREE_FIELDS},
            )
            for c in range(num_classes)
        )
        fallback = tuple(int(c) for c in arrays["fallback_classes"])
        return cls(models=models, num_classes=num_classes, fallback_classes=fallback)

    def score(self, features: Any, labels: Any) -> np.ndarray:
        """Member probability of each row.

        Args:
            features: :func:`shokri_features` of the audited model ``(N, C + 1)``.
            labels: True classes ``(N,)``.

        Returns:
            ``(N,)`` probabilities of "member".
        """
        x = _features(features, "features", self.num_classes)
        y = check_labels(labels, "labels", n=x.shape[0], num_classes=self.num_classes)
        scores = np.zeros(x.shape[0], dtype=np.float64)
        for c in np.unique(y):
            rows = y == c
            scores[rows] = self.models[int(c)].predict_proba(x[rows])
        return scores


def _features(value: Any, param: str, num_classes: int, *, min_rows: int = 0) -> np.ndarray:
    x = check_array(value, param, ndim=2, shape_hint="(N, C + 1)", min_rows=min_rows)
    if x.shape[1] != num_classes + 1:
        raise fail(param, f"an array of shape (N, {num_classes + 1})", describe(x))
    return x


def fit_shokri_attack(
    in_features: Any,
    in_labels: Any,
    out_features: Any,
    out_labels: Any,
    *,
    num_classes: int,
    seed: int = 0,
) -> ShokriAttack:
    """Fit one attack classifier per class on shadow-model outputs (Shokri et al. 2017).

    Each class gets a :class:`~sklearn.ensemble.GradientBoostingClassifier` (100 trees of
    depth 3, learning rate 0.1, ``min_samples_leaf=20``, ``random_state=seed``) trained on the
    shadow "in" rows of that class (label 1) against its "out" rows (label 0). The paper used
    small neural networks; boosted trees suit these few tabular features, need no scaling,
    are deterministic and run single-threaded (about a second per 5,000 rows). A class
    without "in" or without "out" rows uses a single global model trained on all rows.

    Args:
        in_features: :func:`shokri_features` of shadow members ``(N_in, C + 1)``.
        in_labels: Their classes ``(N_in,)``.
        out_features: :func:`shokri_features` of shadow non-members ``(N_out, C + 1)``.
        out_labels: Their classes ``(N_out,)``.
        num_classes: Number of classes ``C``.
        seed: ``random_state`` of every attack model.

    Returns:
        A fitted :class:`ShokriAttack`.

    Raises:
        ConfigError: On mismatched shapes, labels outside ``[0, C)`` or an empty side.
    """
    num_classes = check_count(num_classes, "num_classes", minimum=2)
    seed = check_seed(seed)
    x_in = _features(in_features, "in_features", num_classes, min_rows=1)
    x_out = _features(out_features, "out_features", num_classes, min_rows=1)
    y_in = check_labels(in_labels, "in_labels", n=x_in.shape[0], num_classes=num_classes)
    y_out = check_labels(out_labels, "out_labels", n=x_out.shape[0], num_classes=num_classes)
    x = np.concatenate([x_in, x_out])
    classes = np.concatenate([y_in, y_out])
    member = np.concatenate([np.ones(len(y_in), np.int64), np.zeros(len(y_out), np.int64)])

    models: list[BoostedTrees] = []
    fallback: list[int] = []
    global_model: BoostedTrees | None = None
    for c in range(num_classes):
        rows = classes == c
        if np.unique(member[rows]).size < 2:
            if global_model is None:
                global_model = BoostedTrees.from_sklearn(_attack_model(seed).fit(x, member))
            models.append(global_model)
            fallback.append(c)
        else:
            fitted = _attack_model(seed).fit(x[rows], member[rows])
            models.append(BoostedTrees.from_sklearn(fitted))
    return ShokriAttack(
        models=tuple(models), num_classes=num_classes, fallback_classes=tuple(fallback)
    )


def lira_offline_scores(
    target_confidence: Any,
    out_confidences: Any,
    *,
    global_variance: bool | None = None,
    min_std: float = 1e-6,
) -> np.ndarray:
    """Offline LiRA score as a z-score (Carlini et al. 2022, one-sided offline test).

    Fits a Gaussian ``N(mu_i, sigma_i^2)`` to the out-model confidences of each sample ``i``
    and scores ``(target_i - mu_i) / sigma_i``. The paper's offline statistic
    ``1 - Pr[Z > target_i]`` is a monotone function of this z-score, so rankings, ROC and
    TPR at FPR are identical; the z-score is easier to read.

    Variance rule: ``global_variance=True`` pools one within-sample variance over all samples
    (``sum_i sum_k (x_ki - mu_i)^2 / (N (K - 1))``), ``False`` uses each sample's own variance
    (ddof=1), ``None`` pools when ``K < 8`` and goes per-sample otherwise. With ``K = 1`` there
    is no within-sample spread, so the global std is that of all out values (the paper's
    ``fix_variance`` code). The std is floored at ``min_std``.

    Args:
        target_confidence: :func:`logit_confidence` of the audited model ``(N,)``.
        out_confidences: The same for K models that never trained on any sample ``(K, N)``.
        global_variance: Variance rule, see above.
        min_std: Floor of the std.

    Returns:
        ``(N,)`` scores; higher = more member-like.

    Raises:
        ConfigError: On mismatched shapes, non-finite values, ``global_variance=False`` with
            ``K < 2``, or ``min_std <= 0``.
    """
    target = check_array(target_confidence, "target_confidence", ndim=1, shape_hint="(N,)")
    out = check_array(out_confidences, "out_confidences", ndim=2, shape_hint="(K, N)", min_rows=1)
    if out.shape[1] != target.shape[0]:
        raise fail("out_confidences", f"an array of shape (K, {target.shape[0]})", describe(out))
    if global_variance not in (None, True, False):
        raise fail("global_variance", "True, False or None", global_variance)
    if not (isinstance(min_std, (int, float)) and math.isfinite(min_std) and min_std > 0):
        raise fail("min_std", "a positive number", min_std)
    k = out.shape[0]
    pooled = k < 8 if global_variance is None else global_variance
    if not pooled and k < 2:
        raise fail("out_confidences", "at least 2 rows for per-sample variance", describe(out))
    mean = out.mean(axis=0)
    if not pooled:
        std = out.std(axis=0, ddof=1)
    elif k == 1:
        std = np.full_like(mean, out.std())
    else:
        std = np.full_like(
            mean, math.sqrt(float(((out - mean) ** 2).sum()) / (out.size - out.shape[1]))
        )
    return np.asarray((target - mean) / np.maximum(std, min_std))


def rmia_offline_scores(
    target_x: Any,
    out_x: Any,
    target_z: Any,
    out_z: Any,
    *,
    a: float = 0.3,
    gamma: float = 1.0,
) -> np.ndarray:
    """Offline RMIA score (Zarifzadeh, Liu & Shokri, ICML 2024): the share of population
    samples ``z`` that the target sample ``x`` dominates.

    With ``p(x|theta)`` the audited model's probability of the true label, ``p(x)`` is
    approximated from models that never trained on ``x`` as
    ``((1 + a) * mean_out(x) + (1 - a)) / 2`` (the paper's offline correction: in models
    would raise the average). The likelihood ratio of ``x`` against ``z`` is
    ``(p(x|theta) / p(x)) / (p(z|theta) / p(z))``, and the score of ``x`` is the fraction of
    ``z`` with a ratio above ``gamma``. The defaults ``a = 0.3``, ``gamma = 1`` are those of
    the authors' code (privacytrustlab/ml_privacy_meter).

    Args:
        target_x: The audited model's true-class probabilities of the targets ``(N,)``.
        out_x: The same for K models that never trained on them ``(K, N)``.
        target_z: The audited model's true-class probabilities of the population ``(M,)``.
        out_z: The same for the out models ``(K', M)``; NaN where a model trained on that
            ``z`` (its mean is then over the others; each ``z`` needs one finite value).
        a: Offline correction in ``[0, 1]`` (1: the out mean is ``p(x)``).
        gamma: Threshold of the ratio, ``> 0``.

    Returns:
        ``(N,)`` scores in ``[0, 1]``; higher = more member-like.

    Raises:
        ConfigError: On mismatched shapes, probabilities outside ``[0, 1]``, a ``z`` without
            an out value, or ``a`` / ``gamma`` out of range.
    """
    tx = check_array(target_x, "target_x", ndim=1, shape_hint="(N,)")
    ox = check_array(out_x, "out_x", ndim=2, shape_hint="(K, N)", min_rows=1)
    tz = check_array(target_z, "target_z", ndim=1, shape_hint="(M,)", min_rows=1)
    oz = check_array(out_z, "out_z", ndim=2, shape_hint="(K', M)", finite=False, min_rows=1)
    if ox.shape[1] != tx.shape[0]:
        raise fail("out_x", f"an array of shape (K, {tx.shape[0]})", describe(ox))
    if oz.shape[1] != tz.shape[0]:
        raise fail("out_z", f"an array of shape (K', {tz.shape[0]})", describe(oz))
    finite = np.isfinite(oz)
    if not finite.any(axis=0).all():
        raise fail("out_z", "a finite value (an out model) for every population sample", "NaN")
    for name, values in (("target_x", tx), ("out_x", ox), ("target_z", tz), ("out_z", oz)):
        if np.any((values[np.isfinite(values)] < 0) | (values[np.isfinite(values)] > 1)):
            raise fail(name, "probabilities in [0, 1]", describe(values))
    if not (isinstance(a, (int, float)) and 0.0 <= a <= 1.0):
        raise fail("a", "a number in [0, 1]", a)
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma > 0):
        raise fail("gamma", "a positive number", gamma)

    def prior(mean_out: np.ndarray) -> np.ndarray:
        return ((1.0 + a) * mean_out + (1.0 - a)) / 2.0

    tiny = np.finfo(np.float64).tiny
    ratio_x = tx / np.maximum(prior(ox.mean(axis=0)), tiny)
    mean_z = np.where(finite, oz, 0.0).sum(axis=0) / finite.sum(axis=0)
    ratio_z = np.sort(tz / np.maximum(prior(mean_z), tiny))
    # ratio_x / ratio_z > gamma  <=>  ratio_z < ratio_x / gamma (ratios are >= 0)
    dominated = np.searchsorted(ratio_z, ratio_x / gamma, side="left")
    return np.asarray(dominated / len(ratio_z), dtype=np.float64)


def loss_threshold_scores(losses: Any) -> np.ndarray:
    """Loss-threshold attack scores (Yeom et al. 2018): the floor any attack must beat.

    Args:
        losses: Per-sample cross-entropy losses ``(N,)``.

    Returns:
        ``-losses`` ``(N,)``; a low loss looks like a member.
    """
    return -check_array(losses, "losses", ndim=1, shape_hint="(N,)")
