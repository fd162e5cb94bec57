from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import evidence_builders as build
from unlearn_audit.checks.representation import RepresentationEvidence
from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import CheckResult, Estimate
from unlearn_audit.policy import Policy, default_claims, judge

CLAIMS = default_claims()


def _entry(value: float) -> Estimate:
    return Estimate(value, value - 0.02, value + 0.02)


def _accuracy(forget: float, reference_forget: float) -> CheckResult:
    splits = ("forget", "retain", "test")
    table = {
        s: {"original": _entry(0.99), "unlearned": _entry(0.98), "reference": _entry(0.98)}
        for s in splits
    }
    table["forget"]["unlearned"] = _entry(forget)
    table["forget"]["reference"] = _entry(reference_forget)
    return build.accuracy(table)


def test_default_policy_loads() -> None:
    policy = Policy.load()
    assert (
        set(policy.thresholds)
        == set(CLAIMS)
        == {
            "forgotten",
            "utility_kept",
            "no_membership_leak",
            "backdoor_removed",
            "knowledge_removed",
        }
    )
    assert policy.thresholds["forgotten"] == {"pass": 0.05, "warn": 0.10}
    assert policy.source == "default"


def test_user_policy_overrides(tmp_path: Path) -> None:
    path = tmp_path / "strict.toml"
    path.write_text("[forgotten]\npass = 0.01\n")
    policy = Policy.load(path)
    assert policy.thresholds["forgotten"] == {"pass": 0.01, "warn": 0.10}
    assert policy.source == "strict.toml"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[forgoten]\npass = 0.1\n", "unknown claim"),
        ("[forgotten]\npas = 0.1\n", "unknown keys"),
        ("[forgotten]\npass = 'high'\n", "numbers >= 0"),
        ("[forgotten]\npass = 0.5\nwarn = 0.1\n", "`pass` must be <= `warn`"),
        ("forgotten = [", "not valid TOML"),
    ],
)
def test_bad_policies(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Policy.load(path)


@pytest.mark.parametrize(
    ("forget", "status", "words"),
    [
        (0.97, "PASS", "within the tolerance"),
        (0.90, "WARN", "over-forgetting"),
        (0.10, "FAIL", "over-forgetting"),
        (1.00, "PASS", "within the tolerance"),
    ],
)
def test_random_requests_flag_under_and_over_forgetting(
    forget: float, status: str, words: str
) -> None:
    verdicts = {
        v.claim: v for v in judge({"accuracy": _accuracy(forget, 0.97)}, "random", Policy.load())
    }
    assert verdicts["forgotten"].status == status
    assert words in verdicts["forgotten"].evidence
    assert verdicts["forgotten"].reference == pytest.approx(0.97)
    assert verdicts["forgotten"].interval == [
        pytest.approx(forget - 0.02),
        pytest.approx(forget + 0.02),
    ]
    assert verdicts["no_membership_leak"].status == "N/A"
    assert verdicts["knowledge_removed"].status == "N/A"


def test_under_forgetting_is_flagged() -> None:
    verdict = judge({"accuracy": _accuracy(1.0, 0.80)}, "random", Policy.load())[0]
    assert verdict.status == "FAIL" and "under-forgetting" in verdict.evidence


def test_membership_over_forgetting_warns() -> None:
    membership = build.membership(
        {
            "unlearned": build.attack((0.30, 0.28, 0.32)),
            "reference": build.attack((0.52, None, None)),
        }
    )
    verdict = {v.claim: v for v in judge({"membership": membership}, "random", Policy.load())}
    assert verdict["no_membership_leak"].status == "WARN"
    assert "over-forgetting" in verdict["no_membership_leak"].evidence


def test_membership_gap_within_overlapping_intervals_is_inconclusive() -> None:
    def membership(unlearned: build.Triple, reference: build.Triple) -> CheckResult:
        return build.membership(
            {"unlearned": build.attack(unlearned), "reference": build.attack(reference)}
        )

    wide = membership((0.45, 0.36, 0.55), (0.29, 0.20, 0.38))
    apart = membership((0.65, 0.60, 0.70), (0.47, 0.43, 0.51))
    close = membership((0.50, 0.45, 0.55), (0.48, 0.43, 0.53))
    statuses = [
        {v.claim: v.status for v in judge({"membership": m}, "random", Policy.load())}[
            "no_membership_leak"
        ]
        for m in (wide, apart, close)
    ]
    # a 0.16 point gap whose intervals overlap cannot be called a leak; a clear one can
    assert statuses == ["WARN", "FAIL", "PASS"]


def test_knowledge_is_judged_with_intervals_against_every_reference() -> None:
    """Two retrained models differ in their CKA to the original by up to 0.13 (digits, class 3,
    seeds 0-3): with intervals such a gap warns; without them (results written before) it
    failed. The yardstick is the references' mean with the widest interval."""

    def knowledge(cka: dict[str, Estimate], bounded: bool = True) -> CheckResult:
        result = build.representation(
            {role: 0.5 for role in cka},
            {role: {"forget": e.value or 0.0} for role, e in cka.items()},
        )
        evidence = result.evidence
        assert isinstance(evidence, RepresentationEvidence)
        if bounded:
            evidence.knowledge = {
                role: {"probe": Estimate(0.5, 0.4, 0.6), "cka": e} for role, e in cka.items()
            }
        return result

    def verdict(result: CheckResult) -> str:
        found = {v.claim: v for v in judge({"representation": result}, "class", Policy.load())}
        return found["knowledge_removed"].status

    noisy = {"unlearned": Estimate(0.51, 0.42, 0.60), "reference": Estimate(0.38, 0.30, 0.46)}
    assert verdict(knowledge(noisy)) == "WARN"
    assert verdict(knowledge(noisy, bounded=False)) == "FAIL"
    # a fake that kept the features: intervals far apart
    kept = {"unlearned": Estimate(0.99, 0.98, 1.0), "reference": Estimate(0.38, 0.30, 0.46)}
    assert verdict(knowledge(kept)) == "FAIL"
    # two references: their mean and the widest interval
    both = {**noisy, "reference_2": Estimate(0.50, 0.41, 0.59)}
    evidence = knowledge(both).evidence
    assert evidence is not None
    cka_gap = evidence.gaps("knowledge", "class")[1]
    assert cka_gap.short == "CKA" and cka_gap.measured == noisy["unlearned"]
    assert cka_gap.yardstick == Estimate(pytest.approx(0.44), 0.30, 0.59)
    assert verdict(knowledge(both)) == "PASS"


def test_a_policy_names_the_attack_a_membership_claim_is_judged_on(tmp_path: Path) -> None:
    from dataclasses import replace

    from unlearn_audit.checks.membership import MembershipEvidence

    path = tmp_path / "rmia.toml"
    path.write_text(
        '[no_membership_leak]\nmeasure = "rmia.auc"\n'
        '[shokri_leak]\nstatement = "Shokri cannot tell."\ncheck = "membership"\n'
        'measure = "shokri.auc"\npass = 0.05\nwarn = 0.10\n'
    )
    policy = Policy.load(path)
    leaky = {
        "unlearned": build.attack((0.70, 0.65, 0.75)),
        "reference": build.attack((0.50, 0.45, 0.55)),
    }
    alike = {
        "unlearned": build.attack((0.51, 0.46, 0.56)),
        "reference": build.attack((0.50, 0.45, 0.55)),
    }
    # LiRA alike, RMIA leaky: the claim follows RMIA, as the policy says
    membership = build.membership(alike)
    evidence = membership.evidence
    assert isinstance(evidence, MembershipEvidence)
    membership = replace(
        membership, evidence=replace(evidence, attacks={"lira": alike, "rmia": leaky})
    )
    verdicts = {v.claim: v for v in judge({"membership": membership}, "class", policy)}
    assert verdicts["no_membership_leak"].status == "FAIL"
    assert "RMIA AUC" in verdicts["no_membership_leak"].evidence
    assert verdicts["no_membership_leak"].measured == pytest.approx(0.70)
    # a result without the named attack cannot be judged on it, and says why
    assert verdicts["shokri_leak"].status == "INCONCLUSIVE"
    assert "holds no Shokri attack" in verdicts["shokri_leak"].evidence
    default = {v.claim: v for v in judge({"membership": membership}, "class", Policy.load())}
    assert default["no_membership_leak"].status == "PASS", "LiRA by default"
    path.write_text('[no_membership_leak]\nmeasure = "rmia.nope"\n')
    with pytest.raises(ConfigError, match=r"rmia\.nope"):
        Policy.load(path)


def test_a_policy_file_declares_a_claim_on_a_check_and_measure(tmp_path: Path) -> None:
    path = tmp_path / "tpr.toml"
    path.write_text(
        '[low_fpr_leak]\nstatement = "Few forget samples are caught at 1% FPR."\n'
        'check = "membership"\nmeasure = "tpr@0.01"\npass = 0.02\nwarn = 0.05\n'
    )
    policy = Policy.load(path)
    assert list(policy.claims)[-1] == "low_fpr_leak"
    membership = build.membership(
        {
            "unlearned": build.attack((0.5, 0.45, 0.55), rate_at=0.09, high=0.15),
            "reference": build.attack((0.5, 0.45, 0.55), rate_at=0.01, high=0.05),
        }
    )
    verdicts = {v.claim: v for v in judge({"membership": membership}, "class", policy)}
    # a 0.08 gap over the pass threshold, but the intervals [0, 0.15] and [0, 0.05] overlap
    assert verdicts["low_fpr_leak"].status == "WARN"
    assert verdicts["low_fpr_leak"].measured == pytest.approx(0.09)
    assert verdicts["low_fpr_leak"].reference == pytest.approx(0.01)
    assert verdicts["low_fpr_leak"].statement == "Few forget samples are caught at 1% FPR."
    assert "LiRA TPR at 1.0% FPR" in verdicts["low_fpr_leak"].evidence
    # the same claim on an audit without the check is N/A, saying which check is missing
    none = {v.claim: v for v in judge({}, "class", policy)}["low_fpr_leak"]
    assert none.status == "N/A" and "membership check was not run" in none.evidence


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[x]\nstatement = "s"\ncheck = "membership"\npass = 0.1\nwarn = 0.2\n', "`measure`"),
        (
            '[x]\nstatement = "s"\ncheck = "membrship"\nmeasure = "auc"\npass = 0.1\nwarn = 0.2\n',
            "check 'membrship', which is not installed; known: accuracy",
        ),
        (
            '[x]\nstatement = "s"\ncheck = "membership"\nmeasure = "f1"\npass = 0.1\nwarn = 0.2\n',
            "measure 'f1'; the membership check has: auc, tpr@0.01, tpr@0.001",
        ),
        ('[x]\nstatement = "s"\ncheck = "accuracy"\nmeasure = "utility"\npass = 0.1\n', "`warn`"),
        ('[forgotten]\nrequests = ["all"]\n', "`requests` must name"),
    ],
)
def test_bad_declared_claims(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(match)):
        Policy.load(path)


def test_strict_grading_judges_the_worst_end_of_the_interval() -> None:
    from unlearn_audit.evidence import Gap
    from unlearn_audit.policy import grade

    limits = {"pass": 0.05, "warn": 0.10}
    # point gap 0.02 passes; the interval's upper end (0.08) does not, in strict mode only
    gap = Gap("forget accuracy", Estimate(0.02, 0.005, 0.08), Estimate(0.0, 0.0, 0.01))
    assert grade(gap, limits).status == "PASS"
    strict = grade(gap, limits, strict=True)
    assert strict.status == "FAIL" and strict.excess == pytest.approx(0.08)
    # below: the drop is judged at the lower end; either: at the farther end
    drop = Gap("retain", Estimate(0.98, 0.94, 0.99), Estimate(0.985), worse="below")
    assert grade(drop, limits, strict=True).excess == pytest.approx(0.045)
    both = Gap("forget", Estimate(0.90, 0.85, 0.94), Estimate(0.97), worse="either")
    assert grade(both, limits, strict=True).excess == pytest.approx(0.12)
    # unresolvable: FAIL when strict, WARN otherwise
    unresolved = Gap("tpr", Estimate(0.0, 0.0, 0.03), Estimate(0.0), unresolved="too few")
    assert [grade(unresolved, limits, strict=s).status for s in (True, False)] == ["FAIL", "WARN"]
