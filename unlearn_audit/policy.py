"""The written policy: thresholds (TOML) and the verdict per claim.

Every claim is judged against the reference (models retrained without the forget set): the
ideal is "like the reference", not zero or chance (METRICS.md). Thresholds come from
``default_policy.toml`` beside this module, overridden by a user file.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import CheckResult, Verdict

CLAIMS: dict[str, str] = {
    "forgotten": "The forget set is treated like a model retrained without it treats it.",
    "utility_kept": "Accuracy on retained data and on unseen data is kept.",
    "no_membership_leak": "A membership attack cannot tell the forget set apart from unseen data "
    "better than it can on the retrained model.",
    "backdoor_removed": "The backdoor planted through the forget set no longer fires.",
    "knowledge_removed": "The features no longer carry the forgotten class (beyond what a "
    "retrained model's features do).",
}


@dataclass(frozen=True)
class Policy:
    """Thresholds per claim, and where they came from."""

    thresholds: dict[str, dict[str, float]]
    source: str = "default"
    text: str = ""

    @property
    def sha256(self) -> str:
        """Hash of the policy text (the user's file, or the built-in default)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """The default policy, with the values of ``path`` (a TOML file) on top."""
        text = resources.files("unlearn_audit").joinpath("default_policy.toml").read_text()
        thresholds = _numbers(tomllib.loads(text), "default policy")
        if path is None:
            return cls(thresholds, text=text)
        try:
            user_text = Path(path).read_text()
            user = tomllib.loads(user_text)
        except FileNotFoundError:
            raise ConfigError(f"policy file {str(path)!r} does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"policy file {str(path)!r} is not valid TOML ({exc}).") from None
        for claim, values in _numbers(user, str(path)).items():
            if claim not in thresholds:
                raise ConfigError(
                    f"policy file {path}: unknown claim [{claim}]; known: {', '.join(thresholds)}."
                )
            unknown = sorted(set(values) - set(thresholds[claim]))
            if unknown:
                raise ConfigError(
                    f"policy file {path}: [{claim}] has unknown keys {unknown}; known: "
                    f"{sorted(thresholds[claim])}."
                )
            thresholds[claim] = thresholds[claim] | values
        for claim, values in thresholds.items():
            if values["pass"] > values["warn"]:
                raise ConfigError(f"policy [{claim}]: `pass` must be <= `warn`; got {values}.")
        return cls(thresholds, source=Path(path).name, text=user_text)


def _numbers(data: dict[str, Any], where: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for claim, values in data.items():
        if not isinstance(values, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in values.values()
        ):
            raise ConfigError(f"{where}: [{claim}] must hold numbers >= 0 like `pass = 0.05`.")
        out[claim] = {k: float(v) for k, v in values.items()}
    return out


def _grade(excess: float, limits: dict[str, float], at_best: float | None = None) -> str:
    """PASS, WARN or FAIL for a gap ``excess`` (how much worse than the yardstick).

    ``at_best`` is the same gap taken between the most favourable ends of the two 95%
    intervals. A gap within ``pass`` passes; a gap that exceeds ``pass`` even at the best ends,
    or exceeds ``warn`` with the intervals apart, fails; anything else (the intervals cannot
    tell) warns. Without intervals the point gap is graded against ``pass`` and ``warn``.
    """
    if at_best is None:
        at_best = excess
    if excess <= limits["pass"]:
        return "PASS"
    if at_best > limits["pass"] or (excess > limits["warn"] and at_best > 0):
        return "FAIL"
    return "WARN"


def _bounds(entry: Any) -> tuple[float, float] | None:
    if not isinstance(entry, dict) or entry.get("low") is None or entry.get("high") is None:
        return None
    return float(entry["low"]), float(entry["high"])


def _reference_bounds(table: dict[str, Any], key: str | None = None) -> tuple[float, float] | None:
    """The widest interval over the reference seeds' entries of ``table``."""
    found = [_bounds(v[key] if key else v) for k, v in table.items() if k.startswith("reference")]
    pairs = [pair for pair in found if pair is not None]
    if not pairs:
        return None
    return min(low for low, _ in pairs), max(high for _, high in pairs)


def _excess_at_best(
    worse: tuple[float, float] | None, better: tuple[float, float] | None
) -> float | None:
    """Gap between the low end of the worse side and the high end of the better side."""
    if worse is None or better is None:
        return None
    return worse[0] - better[1]


def _na(claim: str, why: str, cause: str = "not_run", remedy: str = "") -> Verdict:
    """A claim without a verdict: N/A when nobody asked for the evidence or there is nothing to
    judge, INCONCLUSIVE when it applies but these models could not be judged."""
    status = "INCONCLUSIVE" if cause == "unjudgeable" else "N/A"
    return Verdict(
        claim=claim,
        status=status,
        statement=CLAIMS[claim],
        evidence=why,
        cause=cause,
        remedy=remedy,
    )


def _unjudged(
    claim: str, results: dict[str, CheckResult], name: str, missing: dict[str, Any]
) -> Verdict:
    """The N/A or INCONCLUSIVE verdict of ``claim`` when its check ``name`` gave nothing, or
    when it ran without the reference it needs."""
    check = results.get(name)
    if check is None:
        return _na(claim, f"the {name} check was not run", "not_run")
    if check.status != "ok":
        return _na(
            claim,
            f"the {name} check did not run ({check.reason})",
            check.cause or "unjudgeable",
            check.remedy,
        )
    gap = missing.get("references")
    if gap is None:
        return _na(claim, f"the {name} check gave no reference value", "unjudgeable")
    return _na(claim, gap.reason, gap.cause, gap.remedy)


def _value(entry: Any) -> float | None:
    return None if not isinstance(entry, dict) else entry.get("value")


def _pair(entry: Any) -> list[float | None] | None:
    return [entry.get("low"), entry.get("high")] if isinstance(entry, dict) else None


def _ok(results: dict[str, CheckResult], name: str) -> CheckResult | None:
    check = results.get(name)
    return check if check is not None and check.status == "ok" else None


def _forgotten(
    results: dict[str, CheckResult],
    splits: Splits,
    limits: dict[str, float],
    missing: dict[str, Any],
) -> Verdict:
    claim = "forgotten"
    accuracy = _ok(results, "accuracy")
    if accuracy is None or "reference" not in accuracy.metrics.get("accuracy", {}).get(
        "forget", {}
    ):
        return _unjudged(claim, results, "accuracy", missing)
    split = "test_forget_class" if splits.request.kind == "class" else "forget"
    table = accuracy.metrics["accuracy"][split]
    measured, reference = _value(table["unlearned"]), accuracy.metrics["reference_mean"][split]
    if measured is None or reference is None:
        return _na(
            claim,
            f"no {split} samples to measure",
            "unjudgeable",
            "hold out test samples of the forgotten classes (--test-size)",
        )
    difference = measured - reference
    mine, theirs = _bounds(table["unlearned"]), _reference_bounds(table)
    if splits.request.kind == "class":
        status = _grade(max(difference, 0.0), limits, _excess_at_best(mine, theirs))
        direction = "above" if difference > 0 else "at or below"
    else:
        worse, better = (mine, theirs) if difference > 0 else (theirs, mine)
        status = _grade(abs(difference), limits, _excess_at_best(worse, better))
        direction = "above (under-forgetting)" if difference > 0 else "below (over-forgetting)"
        if abs(difference) <= limits["pass"]:
            direction = "within the tolerance of"
    evidence = (
        f"{split} accuracy {measured:.3f} (unlearned) vs {reference:.3f} (reference): "
        f"{abs(difference):.3f} {direction} the reference"
    )
    return Verdict(
        claim,
        status,
        CLAIMS[claim],
        evidence,
        measured,
        _pair(table["unlearned"]),
        reference,
        limits,
    )


def _utility(results: dict[str, CheckResult], splits: Splits, limits: dict[str, float]) -> Verdict:
    claim = "utility_kept"
    accuracy = _ok(results, "accuracy")
    if accuracy is None:
        return _unjudged(claim, results, "accuracy", {})
    test_split = "test_retain_class" if splits.request.kind == "class" else "test"
    drops = {}
    for split in ("retain", test_split):
        table = accuracy.metrics["accuracy"][split]
        drops[split] = (_value(table["original"]) or 0.0) - (_value(table["unlearned"]) or 0.0)
    worst = max(drops, key=lambda k: drops[k])
    table = accuracy.metrics["accuracy"][worst]
    at_best = _excess_at_best(_bounds(table["original"]), _bounds(table["unlearned"]))
    evidence = "; ".join(f"{s} accuracy drop {d:+.3f} vs the original" for s, d in drops.items())
    return Verdict(
        claim,
        _grade(drops[worst], limits, at_best),
        CLAIMS[claim],
        evidence,
        _value(table["unlearned"]),
        _pair(table["unlearned"]),
        _value(table["original"]),
        limits,
    )


def _membership(
    results: dict[str, CheckResult], limits: dict[str, float], missing: dict[str, Any]
) -> Verdict:
    claim = "no_membership_leak"
    membership = _ok(results, "membership")
    if membership is None:
        return _unjudged(claim, results, "membership", missing)
    attack = "lira" if "lira" in membership.metrics else "shokri"
    aucs = membership.metrics[attack]
    measured, reference = (
        _value(aucs["unlearned"]["auc"]),
        membership.metrics["reference_auc"][attack],
    )
    if measured is None or reference is None:
        return _unjudged(claim, {"membership": CheckResult("membership")}, "membership", missing)
    difference = measured - reference
    at_best = _excess_at_best(_bounds(aucs["unlearned"]["auc"]), _reference_bounds(aucs, "auc"))
    status = _grade(difference, limits, at_best)
    evidence = (
        f"{attack} AUC on forget vs unseen samples: {measured:.3f} (unlearned) vs "
        f"{reference:.3f} (reference)"
    )
    if -difference > limits.get("overforget", float("inf")):
        status = "WARN" if status == "PASS" else status
        evidence += "; clearly below the reference: over-forgetting can itself reveal the request"
    return Verdict(
        claim,
        status,
        CLAIMS[claim],
        evidence,
        measured,
        _pair(aucs["unlearned"]["auc"]),
        reference,
        limits,
    )


def _backdoor(
    results: dict[str, CheckResult], limits: dict[str, float], missing: dict[str, Any]
) -> Verdict:
    claim = "backdoor_removed"
    backdoor = _ok(results, "backdoor")
    if backdoor is None or "reference" not in backdoor.metrics.get("attack_success", {}):
        return _unjudged(claim, results, "backdoor", missing)
    rates = backdoor.metrics["attack_success"]
    measured, reference = _value(rates["unlearned"]), backdoor.metrics["reference_mean"]
    evidence = (
        f"trigger attack success {measured:.3f} (unlearned) vs {reference:.3f} "
        f"(reference), {_value(rates['original']):.3f} before unlearning"
    )
    at_best = _excess_at_best(_bounds(rates["unlearned"]), _reference_bounds(rates))
    return Verdict(
        claim,
        _grade(measured - reference, limits, at_best),
        CLAIMS[claim],
        evidence,
        measured,
        _pair(rates["unlearned"]),
        reference,
        limits,
    )


def _knowledge(
    results: dict[str, CheckResult],
    splits: Splits,
    limits: dict[str, float],
    missing: dict[str, Any],
) -> Verdict:
    claim = "knowledge_removed"
    if splits.request.kind != "class":
        return _na(
            claim,
            "class-level evidence; for sample requests see no_membership_leak",
            "not_applicable",
        )
    rep = _ok(results, "representation")
    if rep is None or "reference" not in rep.metrics.get("probe", {}):
        return _unjudged(claim, results, "representation", missing)
    probe = rep.metrics["probe"]
    cka = rep.metrics["cka"]
    gaps = {
        "few-shot probe recall of the forgotten class": probe["unlearned"] - probe["reference"],
        "CKA to the original on the forgotten class": cka["unlearned"]["forget"]
        - cka["reference"]["forget"],
    }
    worst = max(gaps, key=lambda k: gaps[k])
    evidence = "; ".join(f"{name}: {gap:+.3f} vs the reference" for name, gap in gaps.items())
    relearn = _ok(results, "relearn")
    if relearn is not None and relearn.metrics.get("ratio") is not None:
        evidence += (
            f"; relearn takes {relearn.metrics['ratio']:.2f}x the reference's steps "
            "(supporting evidence only)"
        )
    measured = probe["unlearned"] if worst.startswith("few") else cka["unlearned"]["forget"]
    reference = probe["reference"] if worst.startswith("few") else cka["reference"]["forget"]
    return Verdict(
        claim,
        _grade(gaps[worst], limits),
        CLAIMS[claim],
        evidence,
        measured,
        None,
        reference,
        limits,
    )


def judge(
    results: dict[str, CheckResult],
    splits: Splits,
    policy: Policy,
    *,
    missing: dict[str, Any] | None = None,
) -> list[Verdict]:
    """One :class:`Verdict` per claim, in the order of :data:`CLAIMS`.

    Args:
        results: The checks' results.
        splits: The request's splits.
        policy: The thresholds.
        missing: Why references (``"references"``) are absent, as objects with ``cause``,
            ``reason`` and ``remedy``; a claim that lacks its reference for a cause other
            than the user's choice is INCONCLUSIVE.
    """
    limits = policy.thresholds
    gaps = missing or {}
    return [
        _forgotten(results, splits, limits["forgotten"], gaps),
        _utility(results, splits, limits["utility_kept"]),
        _membership(results, limits["no_membership_leak"], gaps),
        _backdoor(results, limits["backdoor_removed"], gaps),
        _knowledge(results, splits, limits["knowledge_removed"], gaps),
    ]
