from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from unlearn_audit.checks.base import CheckResult
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.policy import CLAIMS, Policy, judge


def _entry(value: float) -> dict[str, Any]:
    return {"value": value, "low": value - 0.02, "high": value + 0.02}


def _accuracy(forget: float, reference_forget: float) -> CheckResult:
    splits = ("forget", "retain", "test")
    table = {
        s: {"original": _entry(0.99), "unlearned": _entry(0.98), "reference": _entry(0.98)}
        for s in splits
    }
    table["forget"]["unlearned"] = _entry(forget)
    table["forget"]["reference"] = _entry(reference_forget)
    return CheckResult(
        name="accuracy",
        metrics={
            "accuracy": table,
            "reference_mean": {s: table[s]["reference"]["value"] for s in splits},
        },
    )


def test_default_policy_loads() -> None:
    policy = Policy.load()
    assert set(policy.thresholds) == set(CLAIMS)
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
    digits: Dataset, forget: float, status: str, words: str
) -> None:
    splits = make_splits(digits, ForgetRequest.random(0.05))
    verdicts = {
        v.claim: v for v in judge({"accuracy": _accuracy(forget, 0.97)}, splits, Policy.load())
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


def test_under_forgetting_is_flagged(digits: Dataset) -> None:
    splits = make_splits(digits, ForgetRequest.random(0.05))
    verdict = judge({"accuracy": _accuracy(1.0, 0.80)}, splits, Policy.load())[0]
    assert verdict.status == "FAIL" and "under-forgetting" in verdict.evidence


def test_membership_over_forgetting_warns(digits: Dataset) -> None:
    splits = make_splits(digits, ForgetRequest.random(0.05))
    membership = CheckResult(
        name="membership",
        metrics={"lira": {"unlearned": {"auc": _entry(0.30)}}, "reference_auc": {"lira": 0.52}},
    )
    verdict = {v.claim: v for v in judge({"membership": membership}, splits, Policy.load())}
    assert verdict["no_membership_leak"].status == "WARN"
    assert "over-forgetting" in verdict["no_membership_leak"].evidence


def test_membership_gap_within_overlapping_intervals_is_inconclusive(digits: Dataset) -> None:
    splits = make_splits(digits, ForgetRequest.random(0.05))

    def membership(unlearned: dict[str, float], reference: dict[str, float]) -> CheckResult:
        return CheckResult(
            name="membership",
            metrics={
                "lira": {"unlearned": {"auc": unlearned}, "reference": {"auc": reference}},
                "reference_auc": {"lira": reference["value"]},
            },
        )

    wide = membership(
        {"value": 0.45, "low": 0.36, "high": 0.55}, {"value": 0.29, "low": 0.20, "high": 0.38}
    )
    apart = membership(
        {"value": 0.65, "low": 0.60, "high": 0.70}, {"value": 0.47, "low": 0.43, "high": 0.51}
    )
    close = membership(
        {"value": 0.50, "low": 0.45, "high": 0.55}, {"value": 0.48, "low": 0.43, "high": 0.53}
    )
    statuses = [
        {v.claim: v.status for v in judge({"membership": m}, splits, Policy.load())}[
            "no_membership_leak"
        ]
        for m in (wide, apart, close)
    ]
    # a 0.16 point gap whose intervals overlap cannot be called a leak; a clear one can
    assert statuses == ["WARN", "FAIL", "PASS"]
