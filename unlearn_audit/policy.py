"""The written policy: its claims (TOML) and the one judge of every claim.

A claim names a check, one of the measures of that check's evidence, and thresholds: the
evidence answers with :class:`~unlearn_audit.evidence.Gap` objects (the unlearned model against
its yardstick, normally the references: "like the reference", not zero or chance, METRICS.md)
and :func:`grade` turns each gap into PASS, WARN or FAIL. The claims and their thresholds come
from ``default_policy.toml`` beside this module; a user file changes the numbers and may declare
new claims on any registered check, a plug-in's included. The pytest helpers
(:mod:`unlearn_audit.testing`) grade with the same function in its strict mode.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import CheckResult, Gap, NoReference, Unmeasurable, Verdict

# rounding error at a boundary passes
_EPSILON = 1e-9
_TEXT_KEYS = {"statement", "check", "measure", "requests", "elsewhere", "support"}
_REQUEST_KINDS = ("class", "random", "ids")


@dataclass(frozen=True)
class Claim:
    """One claim of a policy.

    Attributes:
        name: The claim's name (its TOML table).
        statement: The claim in plain words.
        check: The check whose evidence judges it.
        measure: The measure of that evidence (see its ``MEASURES``).
        thresholds: ``pass`` and ``warn`` (and any extra number the grading reads, such as
            ``overforget``).
        requests: The request kinds it applies to (else N/A).
        elsewhere: Why it does not apply to other requests, and where to look instead.
        support: Checks whose one-line summary is quoted as supporting evidence.
    """

    name: str
    statement: str
    check: str
    measure: str
    thresholds: dict[str, float]
    requests: tuple[str, ...] = _REQUEST_KINDS
    elsewhere: str = ""
    support: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The claims, their thresholds, and where they came from."""

    claims: dict[str, Claim]
    source: str = "default"
    text: str = ""

    @property
    def thresholds(self) -> dict[str, dict[str, float]]:
        """``claim -> {"pass": ..., "warn": ...}``."""
        return {name: dict(claim.thresholds) for name, claim in self.claims.items()}

    @property
    def sha256(self) -> str:
        """Hash of the policy text (the user's file, or the built-in default)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """The default policy, with the values and claims of ``path`` (a TOML file) on top.

        Raises:
            ConfigError: The file is missing or not TOML, names an unknown claim without
                declaring it (``statement``, ``check``, ``measure``), an unknown key, a check
                that is not installed or a measure its evidence lacks, or `pass` > `warn`.
        """
        text = resources.files("unlearn_audit").joinpath("default_policy.toml").read_text()
        claims = {
            name: _claim(name, values, None, "default policy")
            for name, values in _tables(tomllib.loads(text), "default policy").items()
        }
        if path is None:
            return cls(claims, text=text)
        try:
            user_text = Path(path).read_text()
            user = tomllib.loads(user_text)
        except FileNotFoundError:
            raise ConfigError(f"policy file {str(path)!r} does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"policy file {str(path)!r} is not valid TOML ({exc}).") from None
        built_in = set(claims)
        for name, values in _tables(user, str(path)).items():
            claims[name] = _claim(name, values, claims.get(name), f"policy file {path}")
            if name not in built_in or {"check", "measure"} & set(values):
                _check_exists(claims[name], f"policy file {path}")
        return cls(claims, source=Path(path).name, text=user_text)


def _tables(data: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{name}] must be a table of a claim, like `pass = 0.05`.")
    return data


def _claim(name: str, values: dict[str, Any], base: Claim | None, where: str) -> Claim:
    """A claim from its TOML table, on top of the claim it overrides (if any)."""
    numbers = {k: v for k, v in values.items() if k not in _TEXT_KEYS}
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in numbers.values()
    ):
        raise ConfigError(f"{where}: [{name}] must hold numbers >= 0 like `pass = 0.05`.")
    if base is None:
        missing = [k for k in ("statement", "check", "measure") if k not in values]
        if missing:
            raise ConfigError(
                f"{where}: unknown claim [{name}]; to declare a new claim give it "
                f"{', '.join(f'`{k}`' for k in missing)} (and `pass`, `warn`)."
            )
        thresholds: dict[str, float] = {}
    else:
        unknown = sorted(set(numbers) - set(base.thresholds))
        if unknown:
            raise ConfigError(
                f"{where}: [{name}] has unknown keys {unknown}; known: {sorted(base.thresholds)}."
            )
        thresholds = dict(base.thresholds)
    thresholds |= {k: float(v) for k, v in numbers.items()}
    for key in ("pass", "warn"):
        if key not in thresholds:
            raise ConfigError(f"{where}: [{name}] needs `{key}`, a number >= 0.")
    if thresholds["pass"] > thresholds["warn"]:
        raise ConfigError(f"policy [{name}]: `pass` must be <= `warn`; got {thresholds}.")
    requests = tuple(values.get("requests", base.requests if base else _REQUEST_KINDS))
    bad = sorted(set(requests) - set(_REQUEST_KINDS))
    if bad:
        raise ConfigError(f"{where}: [{name}] `requests` must name {_REQUEST_KINDS}; got {bad}.")
    return Claim(
        name=name,
        statement=str(values.get("statement", base.statement if base else "")),
        check=str(values.get("check", base.check if base else "")),
        measure=str(values.get("measure", base.measure if base else "")),
        thresholds=thresholds,
        requests=requests,
        elsewhere=str(values.get("elsewhere", base.elsewhere if base else "")),
        support=tuple(values.get("support", base.support if base else ())),
    )


def _check_exists(claim: Claim, where: str) -> None:
    from unlearn_audit.checks import CHECKS

    if claim.check not in CHECKS:
        raise ConfigError(
            f"{where}: [{claim.name}] names check {claim.check!r}, which is not installed; "
            f"known: {', '.join(CHECKS.names())}."
        )
    measures = CHECKS.get(claim.check).evidence.MEASURES
    if claim.measure not in measures:
        raise ConfigError(
            f"{where}: [{claim.name}] names measure {claim.measure!r}; the {claim.check} check "
            f"has: {', '.join(measures) or 'none'}."
        )


# --- grading -----------------------------------------------------------------------------------


def excess(gap: Gap) -> float:
    """How much worse than its yardstick the point estimate is (negative: better)."""
    difference = (gap.measured.value or 0.0) - (gap.yardstick.value or 0.0)
    if gap.worse == "above":
        return difference
    if gap.worse == "below":
        return -difference
    return abs(difference)


def excess_at_best(gap: Gap) -> float | None:
    """The gap between the most favourable ends of the two 95% intervals (``None`` without
    intervals): how much worse the model is even if the intervals are read in its favour."""
    mine, theirs = gap.measured, gap.yardstick
    if not (mine.bounded and theirs.bounded):
        return None
    assert mine.low is not None and mine.high is not None
    assert theirs.low is not None and theirs.high is not None
    above = mine.low - theirs.high
    below = theirs.low - mine.high
    if gap.worse == "above":
        return above
    if gap.worse == "below":
        return below
    return above if (mine.value or 0.0) > (theirs.value or 0.0) else below


def excess_at_worst(gap: Gap) -> float:
    """The gap between the least favourable end of the model's 95% interval and the
    yardstick's point value (the point gap when there is no interval)."""
    mine, theirs = gap.measured, gap.yardstick.value or 0.0
    if not mine.bounded:
        return excess(gap)
    assert mine.low is not None and mine.high is not None
    if gap.worse == "above":
        return mine.high - theirs
    if gap.worse == "below":
        return theirs - mine.low
    return max(mine.high - theirs, theirs - mine.low)


@dataclass(frozen=True)
class Graded:
    """A gap with its status, and the excess the status was decided on."""

    gap: Gap
    status: str
    excess: float
    limits: dict[str, float] = field(default_factory=dict)


def grade(gap: Gap, limits: Mapping[str, float], *, strict: bool = False) -> Graded:
    """PASS, WARN or FAIL for ``gap`` under ``limits`` (``pass``, ``warn``).

    The default reads the intervals in the model's favour before it fails anything: a gap
    within ``pass`` passes; one that exceeds ``pass`` even at the favourable ends, or exceeds
    ``warn`` with the intervals apart, fails; anything else (the intervals cannot tell) warns.
    ``strict`` judges the least favourable end of the model's interval instead, and knows only
    PASS and FAIL: what a CI assertion needs. A gap the sample cannot resolve fails in strict
    mode and warns otherwise.
    """
    bounds = dict(limits)
    if gap.unresolved:
        return Graded(gap, "FAIL" if strict else "WARN", excess(gap), bounds)
    if strict:
        worst = excess_at_worst(gap)
        return Graded(gap, "PASS" if worst <= bounds["pass"] + _EPSILON else "FAIL", worst, bounds)
    point = excess(gap)
    at_best = excess_at_best(gap)
    if at_best is None:
        at_best = point
    if point <= bounds["pass"] + _EPSILON:
        status = "PASS"
    elif at_best > bounds["pass"] or (point > bounds["warn"] and at_best > 0):
        status = "FAIL"
    else:
        status = "WARN"
    return Graded(gap, status, point, bounds)


_RANK = {"PASS": 0, "WARN": 1, "FAIL": 2}


def worst(graded: list[Graded]) -> Graded:
    """The gap that decides a claim: the worst status, then the largest excess."""
    return max(graded, key=lambda g: (_RANK[g.status], g.excess))


def describe(graded: Graded) -> str:
    """The evidence of one graded gap in words."""
    gap = graded.gap
    mine, theirs = gap.measured.value or 0.0, gap.yardstick.value or 0.0
    name = gap.yardstick_name
    text = f"{gap.quantity} {mine:.3f} (unlearned) vs {theirs:.3f} ({name}): "
    difference = mine - theirs
    if gap.worse == "either":
        if abs(difference) <= graded.limits.get("pass", 0.0) + _EPSILON:
            text += f"{abs(difference):.3f} away, within the tolerance of the {name}"
        elif difference > 0:
            text += f"{difference:.3f} above the {name} (under-forgetting)"
        else:
            text += f"{-difference:.3f} below the {name} (over-forgetting)"
    elif gap.worse == "above":
        text += f"{abs(difference):.3f} {'above' if difference > 0 else 'at or below'} the {name}"
    else:
        text += f"a drop of {round(-difference, 3) + 0.0:+.3f} against the {name}"
    if gap.unresolved:
        text += f"; {gap.unresolved}"
    return text


# --- the judge ---------------------------------------------------------------------------------


def _na(claim: Claim, why: str, cause: str = "not_run", remedy: str = "") -> Verdict:
    """A claim without a verdict: N/A when nobody asked for the evidence or there is nothing to
    judge, INCONCLUSIVE when it applies but these models could not be judged."""
    status = "INCONCLUSIVE" if cause == "unjudgeable" else "N/A"
    return Verdict(
        claim=claim.name,
        status=status,
        statement=claim.statement,
        evidence=why,
        cause=cause,
        remedy=remedy,
        threshold=dict(claim.thresholds),
    )


def _no_reference(claim: Claim, missing: Mapping[str, Any]) -> Verdict:
    gap = missing.get("references")
    if gap is None:
        return _na(claim, f"the {claim.check} check gave no reference value", "unjudgeable")
    return _na(claim, gap.reason, gap.cause, gap.remedy)


def gaps_of(claim: Claim, results: Mapping[str, CheckResult], request: str) -> list[Gap] | Verdict:
    """The gaps ``claim`` is judged on, or the N/A (or INCONCLUSIVE) verdict that replaces
    them; :class:`NoReference` propagates, so that the caller can say why references lack."""
    if request not in claim.requests:
        why = claim.elsewhere or f"applies to {' and '.join(claim.requests)} requests only"
        return _na(claim, why, "not_applicable")
    check = results.get(claim.check)
    if check is None:
        return _na(claim, f"the {claim.check} check was not run", "not_run")
    if check.status != "ok" or check.evidence is None:
        return _na(
            claim,
            f"the {claim.check} check did not run ({check.reason})",
            check.cause or "unjudgeable",
            check.remedy,
        )
    try:
        return check.evidence.gaps(claim.measure, request)
    except Unmeasurable as exc:
        return _na(claim, exc.reason, exc.cause, exc.remedy)


def judge_claim(
    claim: Claim,
    results: Mapping[str, CheckResult],
    request: str,
    *,
    missing: Mapping[str, Any] | None = None,
) -> Verdict:
    """The verdict on one claim (see :func:`grade`)."""
    try:
        found = gaps_of(claim, results, request)
    except NoReference:
        return _no_reference(claim, missing or {})
    if isinstance(found, Verdict):
        return found
    graded = [grade(gap, claim.thresholds) for gap in found]
    decisive = worst(graded)
    gap = decisive.gap
    status = decisive.status
    evidence = "; ".join(describe(g) for g in graded)
    overforget = claim.thresholds.get("overforget")
    if overforget is not None and gap.worse == "above" and -excess(gap) > overforget:
        status = "WARN" if status == "PASS" else status
        evidence += "; clearly below the reference: over-forgetting can itself reveal the request"
    evidence_check = results[claim.check].evidence
    assert evidence_check is not None
    notes = [evidence_check.summary()]
    for name in claim.support:
        supporting = results.get(name)
        if supporting is not None and supporting.status == "ok" and supporting.evidence:
            notes.append(supporting.evidence.summary())
    evidence = "; ".join([evidence, *(note for note in notes if note)])
    measured = gap.measured
    interval = [measured.low, measured.high] if measured.bounded else None
    if any(g.gap.unresolved for g in graded):
        unresolved = next(g.gap.unresolved for g in graded if g.gap.unresolved)
        return _na(claim, unresolved, "unjudgeable", "use more unseen samples (--test-size)")
    return Verdict(
        claim.name,
        status,
        claim.statement,
        evidence,
        measured.value,
        interval,
        gap.yardstick.value,
        dict(claim.thresholds),
    )


def judge(
    results: Mapping[str, CheckResult],
    request: str,
    policy: Policy,
    *,
    missing: Mapping[str, Any] | None = None,
) -> list[Verdict]:
    """One :class:`Verdict` per claim of ``policy``, in its order.

    Args:
        results: The checks' results.
        request: The request's kind (``"class"``, ``"random"``, ``"ids"``).
        policy: The claims and thresholds.
        missing: Why references (``"references"``) are absent, as objects with ``cause``,
            ``reason`` and ``remedy``; a claim that lacks its reference for a cause other
            than the user's choice is INCONCLUSIVE.
    """
    return [
        judge_claim(claim, results, request, missing=missing) for claim in policy.claims.values()
    ]


def default_claims() -> dict[str, str]:
    """The default policy's claims: name -> statement."""
    return {name: claim.statement for name, claim in Policy.load().claims.items()}
