"""unlearn_audit.functional.mia: ROC figures, Shokri attack, offline LiRA, loss threshold."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.mia import (
    ShokriAttack,
    TprAtFpr,
    auc,
    auc_along,
    auc_interval,
    fit_shokri_attack,
    lira_offline_scores,
    logit_confidence,
    loss_threshold_scores,
    rmia_offline_scores,
    roc,
    shokri_features,
    softmax,
    tpr_at_fpr,
)


def _pair_count_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    wins = sum(
        1.0 if m > n else 0.5 if m == n else 0.0 for m, n in itertools.product(members, nonmembers)
    )
    return wins / (members.size * nonmembers.size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_brute_force_pair_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # rounded scores: plenty of ties between and within the groups
    members = np.round(rng.normal(0.5, 1.0, 40), 1)
    nonmembers = np.round(rng.normal(0.0, 1.0, 55), 1)
    assert auc(members, nonmembers) == pytest.approx(
        _pair_count_auc(members, nonmembers), abs=1e-12
    )


def test_auc_along_an_axis_and_its_bootstrap_equal_the_plain_ones() -> None:
    from unlearn_audit.functional.stats import bootstrap_interval

    rng = np.random.default_rng(3)
    members = np.round(rng.normal(0.4, 1.0, size=(4, 57)), 1)  # ties
    nonmembers = np.round(rng.normal(0.0, 1.0, size=(4, 41)), 1)
    assert auc_along(members, nonmembers) == pytest.approx(
        [auc(m, n) for m, n in zip(members, nonmembers, strict=True)], abs=1e-12
    )
    assert auc_along(members.T, nonmembers.T, axis=0) == pytest.approx(
        auc_along(members, nonmembers), abs=1e-12
    )
    plain = bootstrap_interval(auc, members[0], nonmembers[0], n_resamples=150, seed=4)
    fast = bootstrap_interval(
        auc_along, members[0], nonmembers[0], n_resamples=150, seed=4, vectorized=True
    )
    assert fast == pytest.approx(plain, abs=1e-12) and fast[0] < fast[1]
    # coded scores and histograms, more resamples than one block of histograms
    coded = auc_interval(members[0], nonmembers[0], n_resamples=150, seed=4)
    assert coded == pytest.approx(plain, abs=1e-12)
    for seed in range(3):  # also continuous scores (no ties) and other seeds
        x, y = rng.normal(0.3, 1, 90), rng.normal(0, 1, 70)
        expected = bootstrap_interval(auc, x, y, n_resamples=200, seed=seed)
        assert auc_interval(x, y, n_resamples=200, seed=seed) == pytest.approx(expected, abs=1e-12)
    # a statement about the sample that could fail: identical groups straddle chance
    same = rng.normal(0, 1, 300)
    low, high = auc_interval(same, same.copy(), n_resamples=300, seed=0)
    assert low < 0.5 < high


def test_auc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    members, nonmembers = np.round(rng.normal(0.3, 1, 300), 2), np.round(rng.normal(0, 1, 500), 2)
    labels = np.r_[np.ones(300), np.zeros(500)]
    expected = roc_auc_score(labels, np.r_[members, nonmembers])
    assert auc(members, nonmembers) == pytest.approx(expected, abs=1e-12)


def test_auc_hand_computed_and_chance() -> None:
    assert auc([3.0, 2.0], [1.0, 0.0]) == 1.0
    assert auc([0.0], [1.0]) == 0.0
    assert auc([1.0, 0.0], [1.0, 0.0]) == 0.5
    rng = np.random.default_rng(0)
    same = auc(rng.normal(size=5000), rng.normal(size=5000))
    assert same == pytest.approx(0.5, abs=0.02)


def test_roc_labels_members_as_positive() -> None:
    fpr, tpr, thresholds = roc([0.9, 0.8], [0.1, 0.8])
    assert math.isinf(thresholds[0]) and fpr[0] == 0 and tpr[0] == 0
    assert fpr[-1] == 1 and tpr[-1] == 1
    # the 0.8 cut admits both tied scores
    index = int(np.flatnonzero(thresholds == 0.8)[0])
    assert (fpr[index], tpr[index]) == (0.5, 1.0)


def test_tpr_at_fpr_hand_computed() -> None:
    members = [0.9, 0.8, 0.7, 0.3]
    nonmembers = [0.85, 0.6, 0.5, 0.2, 0.1]
    # 1 false positive allowed at 20%: cut 0.7 gives TP 3, FP 1
    result = tpr_at_fpr(members, nonmembers, 0.2)
    assert isinstance(result, TprAtFpr)
    assert (result.threshold, result.true_positives, result.false_positives) == (0.7, 3, 1)
    assert result.tpr == 0.75 and result.realised_fpr == 0.2
    assert (result.members, result.nonmembers, result.resolvable) == (4, 5, True)
    assert (result.tpr_low, result.tpr_high) == pytest.approx(
        (stats.beta.ppf(0.025, 3, 2), stats.beta.ppf(0.975, 4, 1))
    )
    # below 1 / 5 no false positive is allowed: only 0.9 clears 0.85
    strict = tpr_at_fpr(members, nonmembers, 0.1)
    assert (strict.threshold, strict.true_positives, strict.false_positives) == (0.9, 1, 0)
    assert strict.resolvable is False
    assert strict.to_dict()["tpr"] == 0.25


def test_tpr_at_fpr_ties_are_admitted_together() -> None:
    # a cut at 0.5 admits both tied non-members: FPR 2/4 > 1/4, so it must stop above 0.5
    result = tpr_at_fpr([0.9, 0.5, 0.5], [0.5, 0.5, 0.1, 0.0], 0.25)
    assert result.threshold == 0.9
    assert (result.true_positives, result.false_positives) == (1, 0)
    loose = tpr_at_fpr([0.9, 0.5, 0.5], [0.5, 0.5, 0.1, 0.0], 0.5)
    assert (loose.threshold, loose.true_positives, loose.false_positives) == (0.5, 3, 2)


def test_tpr_at_fpr_nothing_called_member() -> None:
    result = tpr_at_fpr([1.0, 2.0], [5.0, 6.0], 0.4)
    assert math.isinf(result.threshold)
    assert result.tpr == 0.0 and result.realised_fpr == 0.0


@pytest.mark.parametrize("target", [0.001, 0.01, 0.05, 0.3, 1.0])
def test_tpr_at_fpr_never_exceeds_target_and_is_best(target: float) -> None:
    rng = np.random.default_rng(5)
    members = np.round(rng.normal(1.0, 1.0, 700), 2)
    nonmembers = np.round(rng.normal(0.0, 1.0, 1000), 2)
    result = tpr_at_fpr(members, nonmembers, target)
    assert result.realised_fpr <= target
    assert result.false_positives == np.count_nonzero(nonmembers >= result.threshold)
    # any lower observed cut would break the FPR budget
    lower = np.unique(np.concatenate([members, nonmembers]))
    lower = lower[lower < result.threshold]
    if lower.size:
        assert np.mean(nonmembers >= lower.max()) > target
    assert result.resolvable == (1000 * target >= 1)


@pytest.mark.parametrize("fpr", [0.0, -0.1, 1.5, float("nan"), "0.1"])
def test_tpr_at_fpr_rejects_bad_rate(fpr: object) -> None:
    with pytest.raises(ConfigError, match=r"`fpr` must be a number in \(0, 1\]"):
        tpr_at_fpr([1.0], [0.0], fpr)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("members", "nonmembers", "message"),
    [
        ([], [0.0], "`member_scores` must be an array with at least 1 rows"),
        ([1.0], [], "`nonmember_scores` must be an array with at least 1 rows"),
        ([[1.0]], [0.0], "`member_scores` must be a 1-D array"),
        ([1.0, float("nan")], [0.0], "`member_scores` must be finite"),
    ],
)
def test_score_validation(members: list, nonmembers: list, message: str) -> None:
    for function in (auc, roc):
        with pytest.raises(ConfigError, match=message):
            function(members, nonmembers)


def test_softmax_and_logit_confidence_match_naive_formula() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, (50, 7))
    labels = rng.integers(0, 7, 50)
    naive = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = softmax(logits)
    assert probs == pytest.approx(naive, abs=1e-12)
    p_y = naive[np.arange(50), labels]
    expected = np.log(p_y) - np.log(1 - p_y)
    assert logit_confidence(logits, labels) == pytest.approx(expected, abs=1e-9)


def test_logit_confidence_stays_finite_for_extreme_logits() -> None:
    logits = np.array([[1000.0, 0.0], [0.0, 1000.0], [1000.0, 1000.0], [-800.0, 900.0]])
    confidence = logit_confidence(logits, np.array([0, 0, 0, 1]))
    assert np.all(np.isfinite(confidence))
    assert confidence == pytest.approx([1000.0, -1000.0, 0.0, 1700.0])
    assert np.all(np.isfinite(softmax(logits)))


def test_logit_confidence_hand_computed() -> None:
    # p = (1/2, 1/4, 1/4): log(1/2) - log(1/2) = 0 for class 0, log(1/4) - log(3/4) for class 1
    logits = np.log([[2.0, 1.0, 1.0]])
    assert logit_confidence(logits, [0])[0] == pytest.approx(0.0, abs=1e-12)
    assert logit_confidence(logits, [1])[0] == pytest.approx(-math.log(3.0))


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        ([[1.0], [2.0]], [0, 0], "at least 2 classes"),
        ([[1.0, 2.0]], [2], "`labels` must be class labels below `num_classes` = 2; got 2."),
        ([[1.0, 2.0]], [-1], "`labels` must be non-negative class labels; got -1."),
        ([[1.0, 2.0]], [0.0], "`labels` must be an array of integer class labels"),
        ([[1.0, 2.0]], [0, 1], "`labels` must be a 1-D array of 1 labels"),
        ([1.0, 2.0], [0], r"`logits` must be a 2-D array of shape \(N, C\)"),
    ],
)
def test_logit_confidence_validation(logits: list, labels: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        logit_confidence(logits, labels)


def test_shokri_features_hand_computed() -> None:
    features = shokri_features([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], [2, 1])
    assert features == pytest.approx(np.array([[0.5, 0.3, 0.2, 0.3], [0.6, 0.3, 0.1, 0.1]]))


def _shadow_rows(rng: np.random.Generator, n: int, member: bool, classes: int) -> tuple:
    labels = rng.integers(0, classes, n)
    # members are more confident in their true class
    logits = rng.normal(0.0, 1.0, (n, classes))
    logits[np.arange(n), labels] += 3.0 if member else 1.0
    return shokri_features(softmax(logits), labels), labels


def test_shokri_attack_separates_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    x_in, y_in = _shadow_rows(rng, 400, True, 3)
    x_out, y_out = _shadow_rows(rng, 400, False, 3)
    attack = fit_shokri_attack(x_in, y_in, x_out, y_out, num_classes=3, seed=1)
    assert isinstance(attack, ShokriAttack)
    assert len(attack.models) == 3 and attack.fallback_classes == ()
    t_in, l_in = _shadow_rows(rng, 300, True, 3)
    t_out, l_out = _shadow_rows(rng, 300, False, 3)
    member_scores, nonmember_scores = attack.score(t_in, l_in), attack.score(t_out, l_out)
    assert np.all((member_scores >= 0) & (member_scores <= 1))
    assert auc(member_scores, nonmember_scores) > 0.75
    again = fit_shokri_attack(x_in, y_in, x_out, y_out, num_classes=3, seed=1)
    assert np.array_equal(again.score(t_in, l_in), member_scores)


def test_boosted_trees_score_exactly_like_the_fitted_sklearn_model() -> None:
    """The array form of a fitted booster gives its probabilities, on features crowded near 1
    (where float32 comparison matters) and on rows it never saw; it survives the store's
    arrays and notes unchanged."""
    from sklearn.ensemble import GradientBoostingClassifier

    from unlearn_audit.functional.mia import BoostedTrees

    rng = np.random.default_rng(3)
    x_in, y_in = _shadow_rows(rng, 600, True, 3)
    x_out, y_out = _shadow_rows(rng, 600, False, 3)
    x, member = np.concatenate([x_in, x_out]), np.repeat([1, 0], 600)
    x[:200, 0] = 1.0 - rng.random(200) * 1e-6  # confidences crowded near 1
    fitted = GradientBoostingClassifier(
        n_estimators=30, max_depth=3, min_samples_leaf=20, random_state=0
    ).fit(x, member)
    trees = BoostedTrees.from_sklearn(fitted)
    test = np.concatenate([x, _shadow_rows(rng, 300, True, 3)[0]])
    expected = fitted.predict_proba(test)[:, 1]
    np.testing.assert_allclose(trees.predict_proba(test), expected, rtol=0, atol=1e-12)
    attack = fit_shokri_attack(x_in, y_in, x_out, y_out, num_classes=3, seed=1)
    arrays, notes = attack.to_arrays()
    again = ShokriAttack.from_arrays(arrays)
    labels = rng.integers(0, 3, len(test))
    assert np.array_equal(again.score(test, labels), attack.score(test, labels))
    assert again.fallback_classes == attack.fallback_classes == () and notes == {}


def test_shokri_attack_falls_back_to_global_model() -> None:
    rng = np.random.default_rng(1)
    x_in, y_in = _shadow_rows(rng, 200, True, 3)
    x_out, y_out = _shadow_rows(rng, 200, False, 3)
    keep = y_in != 2  # class 2 has no "in" rows
    attack = fit_shokri_attack(x_in[keep], y_in[keep], x_out, y_out, num_classes=3)
    assert attack.fallback_classes == (2,)
    assert attack.models[2] is not attack.models[0]
    scores = attack.score(x_out[y_out == 2], y_out[y_out == 2])
    assert scores.shape == (int(np.sum(y_out == 2)),)


def test_shokri_attack_validation() -> None:
    features, labels = np.full((4, 4), 0.25), np.array([0, 1, 2, 0])
    with pytest.raises(ConfigError, match=r"`in_features` must be an array of shape \(N, 3\)"):
        fit_shokri_attack(features, labels, features, labels, num_classes=2)
    with pytest.raises(ConfigError, match="`out_features` must be an array with at least 1 rows"):
        fit_shokri_attack(features, labels, np.zeros((0, 4)), [], num_classes=3)
    with pytest.raises(ConfigError, match="`out_labels` must be class labels below"):
        fit_shokri_attack(features, labels, features, labels + 1, num_classes=3)
    with pytest.raises(ConfigError, match="`num_classes` must be an integer >= 2"):
        fit_shokri_attack(features, labels, features, labels, num_classes=1)
    attack = fit_shokri_attack(features, labels, features, labels, num_classes=3)
    with pytest.raises(ConfigError, match="`labels` must be a 1-D array of 4 labels"):
        attack.score(features, labels[:2])


def test_lira_hand_computed_pooled_and_per_sample() -> None:
    out = np.array([[0.0, 10.0], [2.0, 14.0]])  # means 1, 12; per-sample var 2, 8
    target = np.array([3.0, 12.0])
    pooled = lira_offline_scores(target, out)  # K = 2 < 8: pooled var (2 + 8) / 2 = 5
    assert pooled == pytest.approx([2.0 / math.sqrt(5.0), 0.0])
    per_sample = lira_offline_scores(target, out, global_variance=False)
    assert per_sample == pytest.approx([2.0 / math.sqrt(2.0), 0.0])
    single = lira_offline_scores(target, out[:1])  # K = 1: std of all out values (5)
    assert single == pytest.approx([3.0 / 5.0, 2.0 / 5.0])


def test_lira_auto_switches_to_per_sample_at_eight_models() -> None:
    rng = np.random.default_rng(0)
    out = rng.normal(0.0, 1.0, (8, 20)) * np.linspace(0.5, 3.0, 20)
    target = rng.normal(size=20)
    assert np.array_equal(
        lira_offline_scores(target, out), lira_offline_scores(target, out, global_variance=False)
    )
    assert np.array_equal(
        lira_offline_scores(target, out[:7]),
        lira_offline_scores(target, out[:7], global_variance=True),
    )


def test_lira_floors_std_and_separates_members() -> None:
    scores = lira_offline_scores([1.0, 1.0], np.ones((3, 2)), min_std=0.5)
    assert scores == pytest.approx([0.0, 0.0])
    assert np.all(np.isfinite(lira_offline_scores([2.0], np.ones((9, 1)))))
    rng = np.random.default_rng(3)
    out = rng.normal(0.0, 1.0, (16, 400)) + np.linspace(-5, 5, 400)
    shift = np.where(np.arange(400) < 200, 2.0, 0.0)  # first half are members
    target = np.linspace(-5, 5, 400) + rng.normal(0.0, 1.0, 400) + shift
    scores = lira_offline_scores(target, out)
    assert auc(scores[:200], scores[200:]) > 0.8


def test_lira_validation() -> None:
    with pytest.raises(ConfigError, match=r"`out_confidences` must be an array of shape \(K, 2\)"):
        lira_offline_scores([1.0, 2.0], np.zeros((3, 4)))
    with pytest.raises(ConfigError, match="at least 2 rows for per-sample variance"):
        lira_offline_scores([1.0], np.zeros((1, 1)), global_variance=False)
    with pytest.raises(ConfigError, match="`min_std` must be a positive number"):
        lira_offline_scores([1.0], np.zeros((2, 1)), min_std=0.0)
    with pytest.raises(ConfigError, match="`global_variance` must be True, False or None"):
        lira_offline_scores([1.0], np.zeros((2, 1)), global_variance="yes")  # type: ignore[arg-type]


def test_rmia_hand_computed() -> None:
    # a = 1: p(x) is the out mean. Ratios of x: 0.8 / 0.4 = 2 and 0.3 / 0.6 = 0.5
    target_x, out_x = np.array([0.8, 0.3]), np.array([[0.2, 0.5], [0.6, 0.7]])
    # ratios of z: 0.5 / 0.5 = 1, 0.9 / 0.3 = 3 (the NaN model trained on z[1]), 0.2 / 0.4
    target_z = np.array([0.5, 0.9, 0.2])
    out_z = np.array([[0.5, np.nan, 0.4], [0.5, 0.3, 0.4]])
    scores = rmia_offline_scores(target_x, out_x, target_z, out_z, a=1.0)
    assert scores == pytest.approx([2 / 3, 0.0])  # 2 > 1, 0.5; 0.5 > nothing (strict)
    # gamma 2.5: 2 / 2.5 = 0.8 is above one ratio of z
    assert rmia_offline_scores(target_x, out_x, target_z, out_z, a=1.0, gamma=2.5) == (
        pytest.approx([1 / 3, 0.0])
    )
    # a = 0: p(.) = (mean_out + 1) / 2, the paper's offline correction
    corrected = rmia_offline_scores([0.8], [[0.2]], [0.5, 0.1], [[0.5, 0.9]], a=0.0)
    assert corrected == pytest.approx([1.0])  # 0.8 / 0.6 = 1.33 beats 0.5 / 0.75, 0.1 / 0.95


def test_rmia_properties() -> None:
    rng = np.random.default_rng(0)
    out = rng.uniform(0.05, 0.95, (4, 600))
    # a model like the out models: members and non-members look alike (AUC about 0.5)
    alike = np.clip(out.mean(axis=0) + rng.normal(0, 0.05, 600), 0, 1)
    scores = rmia_offline_scores(alike[:400], out[:, :400], alike[400:], out[:, 400:])
    assert abs(auc(scores[:200], scores[200:400]) - 0.5) < 0.1
    assert np.all((scores >= 0) & (scores <= 1))
    # a model more confident on its members separates them
    member = np.clip(alike[:200] + 0.3, 0, 1)
    scores = rmia_offline_scores(
        np.concatenate([member, alike[200:400]]), out[:, :400], alike[400:], out[:, 400:]
    )
    assert auc(scores[:200], scores[200:400]) > 0.9
    # the score is monotone in the target's probability
    grid = np.linspace(0.0, 1.0, 11)
    ranked = rmia_offline_scores(grid, np.full((2, 11), 0.5), alike[400:], out[:, 400:])
    assert np.all(np.diff(ranked) >= 0)


def test_rmia_validation() -> None:
    ok = {"target_x": [0.5], "out_x": [[0.5]], "target_z": [0.5], "out_z": [[0.5]]}
    with pytest.raises(ConfigError, match=r"`out_x` must be an array of shape \(K, 1\)"):
        rmia_offline_scores(**(ok | {"out_x": [[0.5, 0.5]]}))
    with pytest.raises(ConfigError, match=r"`out_z` must be an array of shape \(K', 1\)"):
        rmia_offline_scores(**(ok | {"out_z": [[0.5, 0.5]]}))
    with pytest.raises(ConfigError, match="`out_z` must be a finite value"):
        rmia_offline_scores(**(ok | {"out_z": [[np.nan]]}))
    with pytest.raises(ConfigError, match="`target_x` must be probabilities in"):
        rmia_offline_scores(**(ok | {"target_x": [1.5]}))
    with pytest.raises(ConfigError, match="`a` must be a number in"):
        rmia_offline_scores(**ok, a=2.0)
    with pytest.raises(ConfigError, match="`gamma` must be a positive number"):
        rmia_offline_scores(**ok, gamma=0.0)


def test_loss_threshold_scores() -> None:
    assert loss_threshold_scores([0.1, 2.0]) == pytest.approx([-0.1, -2.0])
    assert auc(loss_threshold_scores([0.1, 0.2]), loss_threshold_scores([1.0, 0.15])) == 0.75
    with pytest.raises(ConfigError, match="`losses` must be a 1-D array"):
        loss_threshold_scores([[0.1]])
