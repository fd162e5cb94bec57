"""Hand-built typed evidence for the policy and pytest-helper tests: a few numbers in, the
check's own evidence dataclasses out (so the tests spell no field the checks do not own)."""

from __future__ import annotations

from unlearn_audit.checks.accuracy import AccuracyEvidence
from unlearn_audit.checks.backdoor import BackdoorEvidence
from unlearn_audit.checks.membership import AttackResult, MembershipEvidence, Roc, TprAtFpr
from unlearn_audit.checks.representation import RepresentationEvidence
from unlearn_audit.evidence import CheckResult, Estimate

Triple = tuple[float | None, float | None, float | None]


def rate(value: float | None, low: float | None, high: float | None, total: int = 100) -> Estimate:
    count = None if value is None else round(value * total)
    return Estimate(value, low, high, count, total)


def accuracy(tables: dict[str, dict[str, Estimate]]) -> CheckResult:
    """An accuracy result from ``split -> role -> estimate``."""
    evidence = AccuracyEvidence(
        accuracy=tables, per_class={}, tta_forget={}, chance=0.1, classes=[]
    )
    return CheckResult("accuracy", evidence=evidence)


def tpr(rate_at: float, high: float, fpr: float, nonmembers: int = 400) -> TprAtFpr:
    return TprAtFpr(
        target_fpr=fpr,
        tpr=rate_at,
        realised_fpr=fpr / 2,
        threshold=1.0,
        true_positives=round(rate_at * 100),
        members=100,
        false_positives=1,
        nonmembers=nonmembers,
        resolvable=nonmembers * fpr >= 1,
        tpr_low=0.0,
        tpr_high=high,
    )


def attack(
    auc: Triple, rate_at: float = 0.0, high: float = 0.05, nonmembers: int = 400
) -> AttackResult:
    return AttackResult(
        auc=Estimate(*auc),
        tpr_at={f"{f:g}": tpr(rate_at, high, f, nonmembers) for f in (0.01, 0.001)},
        roc=Roc([0.0, 1.0], [0.0, 1.0]),
    )


def membership(roles: dict[str, AttackResult]) -> CheckResult:
    evidence = MembershipEvidence(attacks={"lira": roles}, nonmembers="test", shadows=4)
    return CheckResult("membership", evidence=evidence)


def backdoor(success: dict[str, Estimate]) -> CheckResult:
    clean = {role: Estimate(0.95) for role in success}
    evidence = BackdoorEvidence(attack_success=success, clean_accuracy=clean, trigger={})
    return CheckResult("backdoor", evidence=evidence)


def representation(probe: dict[str, float], cka: dict[str, dict[str, float]]) -> CheckResult:
    evidence = RepresentationEvidence(
        cka=cka, probe=probe, probe_shots={}, probe_measure="forget-class recall"
    )
    return CheckResult("representation", evidence=evidence)
