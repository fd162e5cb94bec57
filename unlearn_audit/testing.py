"""pytest support: assertion helpers on audit results, and fixtures for a tiny digits setup.

    from unlearn_audit.testing import assert_forgotten, assert_utility_kept

    def test_my_method(unlearn_audit_setup, unlearn_audit_run):
        unlearned = my_unlearning(unlearn_audit_setup.original, unlearn_audit_setup.splits)
        result = unlearn_audit_run(unlearned, checks=["accuracy"])
        assert_forgotten(result)
        assert_utility_kept(result)

Every helper judges the conservative end of the 95% interval, not the point estimate: a model
passes only if the worst case the evidence allows is within the tolerance. The helpers ask the
audited check's evidence for the same gaps the policy judges, and grade them with the policy's
own :func:`~unlearn_audit.policy.grade` in its strict mode: one judge, two strictnesses.

On a small sample that worst case can exceed a tight tolerance even for a perfectly retrained
model; the failure message then says so. A helper whose evidence is missing (check not run,
N/A, no reference) fails and says why; it never passes silently. Failures are
``AssertionError`` whose message is a fixed-width table (claim | measured | interval |
reference | threshold | verdict) and one line of evidence per failed row; the helpers' own
frames are hidden from tracebacks. A failing helper also writes the audit's ``result.json`` and
``report.html`` into a new folder under pytest's temporary path (a system temporary folder
outside pytest), and its message's last line says where. Every threshold defaults to the
``pass`` threshold of the policy the audit recorded.

The module is also a pytest plugin (``pytest11`` entry point ``unlearn_audit.testing``, or
``-p unlearn_audit.testing``) with the fixtures ``unlearn_audit_digits``,
``unlearn_audit_store``, ``unlearn_audit_setup`` and ``unlearn_audit_run``, all prefixed so that
they never collide with a project's own fixtures. Torch and the audit load on first use, so the
plugin adds nothing to the start-up of test suites that do not use it.

PYTEST_DONT_REWRITE: the helpers raise ``AssertionError`` themselves and hold no ``assert``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

import pytest

from unlearn_audit._validation import fail

if TYPE_CHECKING:
    from typing import TypeAlias

    from unlearn_audit.data.datasets import Dataset
    from unlearn_audit.data.splits import Splits
    from unlearn_audit.evidence import CheckResult, Gap
    from unlearn_audit.models.checkpoints import LoadedModel
    from unlearn_audit.results import AuditResult, Verdict
    from unlearn_audit.store import Store

    ResultLike: TypeAlias = AuditResult | str | os.PathLike[str] | Mapping[str, Any]

__all__ = [
    "UnlearnSetup",
    "assert_backdoor_removed",
    "assert_forgotten",
    "assert_knowledge_removed",
    "assert_no_membership_leak",
    "assert_passed",
    "assert_utility_kept",
    "make_unlearn_setup",
]

HEADER = ("claim", "measured", "interval", "reference", "threshold", "verdict")
FPRS = (0.01, 0.001)
P = ParamSpec("P")

# The configs of the running pytest sessions, innermost last (pytester runs sessions inside a
# session): a failing helper writes its evidence under the innermost one's temporary path.
# Filled and emptied by the plugin hooks below; empty outside pytest.
_SESSIONS: list[pytest.Config] = []


# --- the data of a judgement, and its rendering ------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One judged quantity: a row of the failure table."""

    claim: str
    measured: float | None
    interval: tuple[float | None, float | None] | None
    reference: float | None
    threshold: str
    verdict: str
    evidence: str


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(pair: tuple[float | None, float | None] | None) -> str:
    return "-" if pair is None else f"[{_number(pair[0])}, {_number(pair[1])}]"


def _render_table(rows: list[_Row]) -> str:
    """The fixed-width table of ``rows``: claim | measured | interval | reference | threshold |
    verdict."""
    cells = [HEADER] + [
        (
            row.claim,
            _number(row.measured),
            _interval(row.interval),
            _number(row.reference),
            row.threshold,
            row.verdict,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    numeric = {1, 3}

    def line(values: tuple[str, ...]) -> str:
        parts = [
            value.rjust(width) if i in numeric and values is not HEADER else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(values) for values in cells[1:])])


def _message(helper: str, summary: str, rows: list[_Row], hints: list[str]) -> str:
    evidence = [f"evidence: {row.evidence}" for row in rows if row.verdict == "FAIL"]
    return "\n".join([f"{helper}: {summary}", _render_table(rows), *evidence, *hints])


def _raise_if_failed(helper: str, summary: str, rows: list[_Row], hints: list[str]) -> None:
    __tracebackhide__ = True
    if any(row.verdict == "FAIL" for row in rows):
        raise AssertionError(_message(helper, summary, rows, hints))


def _missing(helper: str, why: str) -> AssertionError:
    return AssertionError(f"{helper}: missing evidence: {why}")


# --- the evidence of a failure, on disk --------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Plugin hook: remember the session, whose temporary path receives the evidence."""
    _SESSIONS.append(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Plugin hook: forget the session."""
    if config in _SESSIONS:
        _SESSIONS.remove(config)


def _evidence_folder(helper: str) -> Path:
    """A new folder named after the running test and ``helper``, under pytest's temporary path
    when a session is running (else a system temporary folder)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0].rpartition("::")[2]
    name = re.sub(r"\W", "_", test)[:30] + f"-{helper}" if test else helper
    factory = getattr(_SESSIONS[-1], "_tmp_path_factory", None) if _SESSIONS else None
    if isinstance(factory, pytest.TempPathFactory):
        return factory.mktemp(name)
    return Path(tempfile.mkdtemp(prefix=f"{name}-"))


def _write_evidence(result: AuditResult, helper: str) -> str:
    """Write ``result.json`` and ``report.html`` of ``result``; the line that says where.

    Never raises: the assertion is the failure to report, the files only help to read it.
    """
    from unlearn_audit.report import write_report

    try:
        json_path = result.save(_evidence_folder(helper) / "result.json")
    except Exception as exc:
        return f"evidence not written ({_first_line(exc)})"
    try:
        html_path = write_report(result, json_path.parent, pdf=False).html
    except Exception as exc:  # a partial result (no figures, no models) may not render
        return f"evidence written to {json_path}; report.html not rendered ({_first_line(exc)})"
    return f"evidence written to {json_path} and {html_path}"


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _evidence_on_failure(helper: Callable[P, None]) -> Callable[P, None]:
    """Make ``helper`` write the audit's files when it fails, and say where in its message."""

    @functools.wraps(helper)
    def judged(*args: P.args, **kwargs: P.kwargs) -> None:
        __tracebackhide__ = True
        try:
            helper(*args, **kwargs)
        except AssertionError as failure:
            result = _load(args[0] if args else kwargs["result"])  # type: ignore[arg-type]
            where = _write_evidence(result, helper.__name__)
            raise AssertionError(f"{failure}\n{where}") from None

    return judged


# --- reading the evidence ----------------------------------------------------------------------


def _load(result: ResultLike) -> AuditResult:
    from unlearn_audit.results import AuditResult

    if isinstance(result, AuditResult):
        return result
    if isinstance(result, str | os.PathLike):
        return AuditResult.load(os.fspath(result))
    if isinstance(result, Mapping):
        return AuditResult.from_dict(dict(result))
    raise fail(
        "result",
        "an AuditResult, its dict or the path to its result.json",
        type(result).__name__,
    )


def _check(result: AuditResult, name: str, helper: str) -> CheckResult:
    __tracebackhide__ = True
    check = result.checks.get(name)
    if check is None:
        ran = ", ".join(result.checks) or "none"
        raise _missing(
            helper, f"the {name} check was not run (this audit ran: {ran}); add {name!r} to checks."
        )
    if check.status != "ok" or check.evidence is None:
        raise _missing(helper, f"the {name} check is N/A: {check.reason or 'no reason given'}.")
    return check


def _no_reference(result: AuditResult, helper: str, name: str) -> AssertionError:
    profile = result.config.get("profile", "?")
    return _missing(
        helper,
        f"the {name} check had no reference model to compare with (profile {profile!r}); give "
        "references=[...] or use a profile that trains one (standard).",
    )


def _request(result: AuditResult) -> str:
    """The request's kind; anything but a class request is judged as a sample request."""
    kind = result.request.get("request", {}).get("kind")
    if kind is None:
        return "class" if result.request.get("forget_classes") else "ids"
    return kind if kind in ("class", "random", "ids") else "ids"


def _gaps(result: AuditResult, claim: str, helper: str, measure: str | None = None) -> list[Gap]:
    """The gaps the policy judges ``claim`` on (or its check's ``measure``), as the audit's
    evidence gives them; missing evidence is an ``AssertionError`` that says what is missing."""
    __tracebackhide__ = True
    from unlearn_audit.evidence import NoReference, Unmeasurable
    from unlearn_audit.policy import Policy

    spec = Policy.load().claims[claim]
    evidence = _check(result, spec.check, helper).evidence
    assert evidence is not None
    request = _request(result)
    if request not in spec.requests:
        raise _missing(helper, f"{claim} is {spec.elsewhere or 'not judged on this request'}.")
    try:
        return evidence.gaps(measure or spec.measure, request)
    except NoReference:
        raise _no_reference(result, helper, spec.check) from None
    except Unmeasurable as exc:
        raise _missing(helper, f"{exc.reason}.") from None


def _limit(value: Any, param: str, *, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= upper:
        expected = "a number >= 0" if upper == math.inf else f"a number in [0, {upper:g}]"
        raise fail(param, expected, value)
    return float(value)


def _policy_pass(result: AuditResult, claim: str) -> float:
    """The ``pass`` threshold the audit's policy used for ``claim`` (else the default's)."""
    for verdict in result.verdicts:
        if verdict.claim == claim and "pass" in verdict.threshold:
            return float(verdict.threshold["pass"])
    from unlearn_audit.policy import Policy

    return Policy.load().thresholds[claim]["pass"]


def _row(label: str, gap: Gap, limit: float, word: str = "allowed") -> _Row:
    """``gap`` graded by the policy's strict grading (the worst end of the interval), as a row
    of the failure table with its evidence in words."""
    from unlearn_audit.policy import grade

    graded = grade(gap, {"pass": limit, "warn": limit}, strict=True)
    mine, name = gap.measured, gap.yardstick_name
    value, theirs = mine.value or 0.0, gap.yardstick.value or 0.0
    short = "orig" if name == "original" else "ref"
    size = "" if mine.total is None else f", n={mine.total}"
    if gap.unresolved:
        threshold = f"high - {short} <= {limit:.3f}"
        evidence = f"{gap.unresolved}; use more samples or a higher fpr."
    elif not mine.bounded:
        threshold = f"value - {short} <= {limit:.3f}"
        evidence = (
            f"{gap.quantity}: {value:.3f} (unlearned) vs {theirs:.3f} ({name}): "
            f"{graded.excess:+.3f}, {word} {limit:.3f} (no interval recorded: point estimate "
            "judged)"
        )
    elif gap.worse == "above" and name == "limit":
        threshold = f"high <= {limit:.3f}"
        evidence = (
            f"{gap.quantity} may be as high as {mine.high:.3f} (95% upper bound; point "
            f"{value:.3f}{size}), {word} {limit:.3f}"
        )
    elif gap.worse == "above":
        threshold = f"high - {short} <= {limit:.3f}"
        evidence = (
            f"{gap.quantity} of the unlearned model may be as high as {mine.high:.3f} (95% upper "
            f"bound; point {value:.3f}{size}) vs {theirs:.3f} for the {name}: "
            f"{graded.excess:+.3f}, {word} {limit:.3f}"
        )
    elif gap.worse == "below":
        threshold = f"{short} - low <= {limit:.3f}"
        evidence = (
            f"{gap.quantity} of the unlearned model may be as low as {mine.low:.3f} (95% lower "
            f"bound; point {value:.3f}{size}) vs {theirs:.3f} for the {name}: a drop of up to "
            f"{graded.excess:+.3f}, {word} {limit:.3f}"
        )
    else:
        threshold = f"|bound - {short}| <= {limit:.3f}"
        evidence = (
            f"{gap.quantity} of the unlearned model lies in [{mine.low:.3f}, {mine.high:.3f}] "
            f"(95%; point {value:.3f}{size}) vs {theirs:.3f} for the {name}: up to "
            f"{graded.excess:.3f} away, {word} {limit:.3f}"
        )
    interval = (mine.low, mine.high) if mine.bounded else None
    return _Row(
        label, mine.value, interval, gap.yardstick.value, threshold, graded.status, evidence
    )


def _half_width(gaps: list[Gap]) -> float:
    """How far the widest interval reaches beyond its point estimate on the judged side."""
    widths = [0.0]
    for gap in gaps:
        mine = gap.measured
        if mine.bounded:
            assert mine.value is not None and mine.low is not None and mine.high is not None
            up, down = mine.high - mine.value, mine.value - mine.low
            widths.append({"above": up, "below": down}.get(gap.worse, max(up, down)))
    return max(widths)


def _labelled(claim: str, gaps: list[Gap]) -> list[tuple[str, Gap]]:
    if len(gaps) == 1:
        return [(claim, gaps[0])]
    return [(f"{claim} ({gap.short})", gap) for gap in gaps]


# --- the helpers -------------------------------------------------------------------------------


@_evidence_on_failure
def assert_forgotten(result: ResultLike, *, tolerance: float | None = None) -> None:
    """Assert that the forget set is treated like the reference treats it.

    Judged on the forget accuracy of the unlearned model (forget-class test accuracy for class
    requests): for class requests the upper end of its 95% interval may exceed the reference's
    accuracy by at most ``tolerance``; for sample requests both ends must lie within
    ``tolerance`` of it (above is under-forgetting, below over-forgetting). The policy's
    grading in its strict mode (:func:`unlearn_audit.policy.grade`).

    Args:
        result: An :class:`~unlearn_audit.results.AuditResult` or the path to its JSON.
        tolerance: Largest allowed difference; default the policy's ``pass`` threshold of
            ``forgotten`` recorded in the result.

    Raises:
        AssertionError: The bound is outside the tolerance, or the accuracy check or its
            reference is missing.
    """
    __tracebackhide__ = True
    helper = "assert_forgotten"
    audit_result = _load(result)
    limit = None if tolerance is None else _limit(tolerance, "tolerance")
    gaps = _gaps(audit_result, "forgotten", helper)
    limit = _policy_pass(audit_result, "forgotten") if limit is None else limit
    rows = [_row(label, gap, limit, "tolerance") for label, gap in _labelled("forgotten", gaps)]
    _raise_if_failed(
        helper,
        "the interval's worst case is outside the tolerance.",
        rows,
        _small_sample_hint(_half_width(gaps), limit, "tolerance"),
    )


def _small_sample_hint(half_width: float, limit: float, param: str) -> list[str]:
    if half_width <= limit:
        return []
    return [
        f"hint: the interval alone reaches {half_width:.3f} beyond the point estimate, more than "
        f"{param} {limit:.3f}: the sample is too small to show this; use more samples or a "
        f"looser {param}."
    ]


@_evidence_on_failure
def assert_utility_kept(result: ResultLike, *, max_drop: float | None = None) -> None:
    """Assert that retain and test accuracy are kept against the original.

    Judged per split (retain, and test, or retain-class test for class requests) on the
    original's accuracy minus the lower end of the unlearned model's 95% interval.

    Args:
        result: An :class:`~unlearn_audit.results.AuditResult` or the path to its JSON.
        max_drop: Largest allowed drop; default the policy's ``pass`` threshold of
            ``utility_kept`` recorded in the result.

    Raises:
        AssertionError: A drop bound exceeds ``max_drop``, or the accuracy check is missing.
    """
    __tracebackhide__ = True
    helper = "assert_utility_kept"
    limit = None if max_drop is None else _limit(max_drop, "max_drop", upper=1.0)
    audit_result = _load(result)
    limit = _policy_pass(audit_result, "utility_kept") if limit is None else limit
    gaps = _gaps(audit_result, "utility_kept", helper)
    _raise_if_failed(
        helper,
        "the accuracy could have dropped more than max_drop (the reference column holds the "
        "original's accuracy).",
        [_row(label, gap, limit) for label, gap in _labelled("utility_kept", gaps)],
        _small_sample_hint(_half_width(gaps), limit, "max_drop"),
    )


@_evidence_on_failure
def assert_no_membership_leak(
    result: ResultLike,
    *,
    fpr: float = 0.01,
    max_tpr: float | None = None,
    max_auc_gap: float | None = None,
) -> None:
    """Assert that offline LiRA tells forget from unseen samples no better than on the reference.

    Two rows: the upper end of the attack AUC's 95% (bootstrap) interval may exceed the
    references' AUC by at most ``max_auc_gap``; the upper end of the Clopper-Pearson interval
    of its TPR at ``fpr`` may be at most ``max_tpr``. A TPR the sample cannot resolve (fewer
    than ``1 / fpr`` unseen samples) fails: it says nothing either way.

    Args:
        result: An :class:`~unlearn_audit.results.AuditResult` or the path to its JSON.
        fpr: False-positive rate of the TPR row: 0.01 or 0.001 (the rates the membership
            check records).
        max_tpr: Largest allowed TPR at ``fpr``; default the references' TPR at ``fpr`` plus
            ``max_auc_gap``.
        max_auc_gap: Largest allowed AUC excess over the references (and default TPR excess);
            default the policy's ``pass`` threshold of ``no_membership_leak`` recorded in the
            result.

    Raises:
        AssertionError: A bound is outside its limit, the TPR is unresolvable, or the
            membership check, its LiRA results or its reference are missing.
        ConfigError: ``fpr`` is not 0.01 or 0.001.
    """
    __tracebackhide__ = True
    helper = "assert_no_membership_leak"
    if fpr not in FPRS:
        raise fail("fpr", "0.01 or 0.001 (the rates the membership check records)", fpr)
    gap_limit = None if max_auc_gap is None else _limit(max_auc_gap, "max_auc_gap", upper=1.0)
    tpr_limit = None if max_tpr is None else _limit(max_tpr, "max_tpr", upper=1.0)
    audit_result = _load(result)
    if gap_limit is None:
        gap_limit = _policy_pass(audit_result, "no_membership_leak")
    (auc,) = _gaps(audit_result, "no_membership_leak", helper)
    (tpr,) = _gaps(audit_result, "no_membership_leak", helper, f"tpr@{fpr:g}")
    label = f"no_membership_leak ({tpr.short})"
    from unlearn_audit.evidence import Estimate

    if tpr_limit is None:  # relative to the references' rate
        tpr_row = _row(label, tpr, gap_limit)
    else:
        absolute = dataclasses.replace(tpr, yardstick=Estimate(0.0), yardstick_name="limit")
        tpr_row = _row(label, absolute, tpr_limit)
    rows = [_row(f"no_membership_leak ({auc.short})", auc, gap_limit), tpr_row]
    _raise_if_failed(helper, "the attack could do better than on the reference.", rows, [])


@_evidence_on_failure
def assert_backdoor_removed(
    result: ResultLike,
    *,
    max_success: float | None = None,
    max_gap: float | None = None,
    against_reference: bool = True,
) -> None:
    """Assert that the backdoor trigger no longer fires (beyond the reference).

    Judged on the upper end of the 95% interval of the trigger's attack success rate on the
    unlearned model: at most ``max_gap`` above the references' rate (unless
    ``against_reference`` is false), and at most ``max_success`` when given.

    Args:
        result: An :class:`~unlearn_audit.results.AuditResult` or the path to its JSON.
        max_success: Largest allowed attack success (absolute); not judged when ``None``.
        max_gap: Largest allowed excess over the references; default the policy's ``pass``
            threshold of ``backdoor_removed`` recorded in the result.
        against_reference: ``False`` judges ``max_success`` alone (then no reference is
            needed).

    Raises:
        AssertionError: A bound is outside its limit, or the backdoor check or the reference
            ``max_gap`` needs is missing.
        ConfigError: ``against_reference`` is false and ``max_success`` is ``None``, or
            ``max_gap`` is given too.
    """
    __tracebackhide__ = True
    helper = "assert_backdoor_removed"
    if not against_reference and max_success is None:
        raise fail("max_success", "a number in [0, 1] when against_reference is False", None)
    if not against_reference and max_gap is not None:
        raise fail("max_gap", "None when against_reference is False (no gap is judged)", max_gap)
    gap_limit = None if max_gap is None else _limit(max_gap, "max_gap", upper=1.0)
    success_limit = None if max_success is None else _limit(max_success, "max_success", upper=1.0)
    audit_result = _load(result)
    if against_reference and gap_limit is None:
        gap_limit = _policy_pass(audit_result, "backdoor_removed")
    rows = []
    if gap_limit is not None:
        (gap,) = _gaps(audit_result, "backdoor_removed", helper)
        rows.append(_row("backdoor_removed", gap, gap_limit))
    if success_limit is not None:
        (absolute,) = _gaps(audit_result, "backdoor_removed", helper, "success_absolute")
        rows.append(_row("backdoor_removed (absolute)", absolute, success_limit))
    _raise_if_failed(helper, "the trigger could still fire.", rows, [])


@_evidence_on_failure
def assert_knowledge_removed(result: ResultLike, *, max_gap: float | None = None) -> None:
    """Assert that the features carry the forgotten class no more than the reference's do.

    Class requests only. Two rows, each ``unlearned - reference`` at most ``max_gap``: the
    few-shot probe recall of the forgotten class, and the CKA of forget-class features to the
    original's. These measures carry no interval, so the point estimate is judged.

    Args:
        result: An :class:`~unlearn_audit.results.AuditResult` or the path to its JSON.
        max_gap: Largest allowed excess; default the policy's ``pass`` threshold of
            ``knowledge_removed`` recorded in the result.

    Raises:
        AssertionError: A gap exceeds ``max_gap``, the request is not a class request, or the
            representation check or its reference is missing.
    """
    __tracebackhide__ = True
    helper = "assert_knowledge_removed"
    limit = None if max_gap is None else _limit(max_gap, "max_gap")
    audit_result = _load(result)
    gaps = _gaps(audit_result, "knowledge_removed", helper)
    limit = _policy_pass(audit_result, "knowledge_removed") if limit is None else limit
    rows = [_row(label, gap, limit) for label, gap in _labelled("knowledge_removed", gaps)]
    _raise_if_failed(helper, "the features still carry the forgotten class.", rows, [])


def _verdict_row(verdict: Verdict) -> _Row:
    interval = None if verdict.interval is None else (verdict.interval[0], verdict.interval[1])
    limits = verdict.threshold
    threshold = (
        f"pass {limits['pass']:.3f} / warn {limits['warn']:.3f}"
        if "pass" in limits and "warn" in limits
        else "-"
    )
    return _Row(
        verdict.claim,
        verdict.measured,
        interval,
        verdict.reference,
        threshold,
        verdict.status,
        f"{verdict.claim}: {verdict.evidence}",
    )


@_evidence_on_failure
def assert_passed(result: ResultLike) -> None:
    """Assert that every claim that applies was judged and none FAILed, as the policy judged it.

    Unlike the other helpers this reads the policy's own verdicts, which FAIL only when the
    evidence is clear (a WARN passes here). Absence of evidence is not a pass: a claim that
    applies but could not be judged from the models (INCONCLUSIVE) fails, so does one the audit
    was set not to judge (a ``quick`` profile, a subset of checks: the outcome ``PARTIAL``;
    assert that claim's own helper instead when that is what the test means), and so does an
    audit that judged no claim at all (every verdict N/A).

    Args:
        result: An :class:`~unlearn_audit.results.AuditResult` or the path to its JSON.

    Raises:
        AssertionError: With the full verdict table, when a claim failed or none was judged.
    """
    __tracebackhide__ = True
    helper = "assert_passed"
    audit_result = _load(result)
    verdicts = audit_result.verdicts
    if all(verdict.status == "N/A" for verdict in verdicts):
        reasons = "; ".join(f"{v.claim}: {v.evidence}" for v in verdicts) or "no verdicts"
        raise _missing(helper, f"no claim was judged ({reasons}).")
    failed = [v.claim for v in verdicts if v.status == "FAIL"]
    inconclusive = [v for v in verdicts if v.status == "INCONCLUSIVE"]
    unjudged = audit_result.unjudged
    if not failed and not inconclusive and unjudged:
        summary = (
            f"{len(unjudged)} of the claims that apply "
            f"{'was' if len(unjudged) == 1 else 'were'} not judged, by the audit's settings "
            f"({', '.join(v.claim for v in unjudged)}): absence of evidence is not a pass."
        )
        hints = [f"remedy for {v.claim}: {v.remedy}" for v in unjudged if v.remedy]
        raise AssertionError(_message(helper, summary, [_verdict_row(v) for v in verdicts], hints))
    if not failed and not inconclusive:
        return
    summary = f"{len(failed)} of {len(verdicts)} claims failed ({', '.join(failed)})."
    if not failed:
        summary = "no claim failed, but the audit is inconclusive."
    if inconclusive:
        summary += (
            f" {len(inconclusive)} could not be judged "
            f"({', '.join(v.claim for v in inconclusive)}): absence of evidence is not a pass."
        )
    hints = [f"remedy for {v.claim}: {v.remedy}" for v in inconclusive if v.remedy]
    raise AssertionError(_message(helper, summary, [_verdict_row(v) for v in verdicts], hints))


# --- the plugin: a tiny cached digits setup ----------------------------------------------------


@dataclass(frozen=True)
class UnlearnSetup:
    """A small unlearning task for tests: forget class 3 of a dataset (digits by default).

    Attributes:
        dataset: The dataset.
        splits: The splits of the class-3 request.
        original: small-cnn trained on the dataset's training part (default recipe, seed 0).
        reference: small-cnn retrained on ``splits.retain`` (seed 0), stored under the key an
            audit's own reference gets, so a ``standard`` audit reuses it from the store.
        references: That reference and the second a ``standard`` audit trains (seed 1, the
            null audit's yardstick), both stored.
    """

    dataset: Dataset
    splits: Splits
    original: LoadedModel
    reference: LoadedModel
    references: tuple[LoadedModel, ...] = ()

    def audit(self, unlearned: LoadedModel | str | Path, **kwargs: Any) -> AuditResult:
        """Audit ``unlearned`` against this setup's original and request.

        Args:
            unlearned: The model under audit (or its checkpoint path).
            **kwargs: Further arguments of :func:`unlearn_audit.pipeline.audit` (``checks``,
                ``profile``, ``references``, ``store``, ...); they override the setup's.
        """
        from unlearn_audit.pipeline import audit as run_audit

        options: dict[str, Any] = {
            "original": self.original,
            "dataset": self.dataset,
            "request": self.splits,
            "progress": False,
        }
        return run_audit(unlearned=unlearned, **(options | kwargs))


def make_unlearn_setup(dataset: Dataset, *, store: Store | None = None) -> UnlearnSetup:
    """Train (or load from ``store``) the models of an :class:`UnlearnSetup` on ``dataset``.

    Args:
        dataset: The dataset, e.g. ``load_dataset("digits")`` (a few seconds per model on CPU).
        store: Where the three models are kept; ``None`` trains them on every call.
    """
    from unlearn_audit.data.splits import ForgetRequest, make_splits
    from unlearn_audit.train import train_classifier

    splits = make_splits(dataset, ForgetRequest.classes(3))
    original = train_classifier(dataset, arch="small-cnn", store=store, progress=False)
    references = tuple(
        train_classifier(
            dataset,
            arch="small-cnn",
            member_ids=splits.retain,
            seed=seed,
            store=store,
            role="reference",
            normalization=original.normalization,
            progress=False,
        )
        for seed in (0, 1)
    )
    return UnlearnSetup(
        dataset=dataset,
        splits=splits,
        original=original,
        reference=references[0],
        references=references,
    )


@pytest.fixture(scope="session")
def unlearn_audit_digits() -> Dataset:
    """The embedded digits dataset (8x8 images, 10 classes)."""
    from unlearn_audit.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def unlearn_audit_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A model store private to the session, or the default store when ``UNLEARN_AUDIT_CACHE``
    is set (models then persist across runs, e.g. in a CI cache)."""
    from unlearn_audit.store import ENV_VAR, Store

    if os.environ.get(ENV_VAR):
        return Store()
    return Store(tmp_path_factory.mktemp("unlearn-audit-store"))


@pytest.fixture(scope="session")
def unlearn_audit_setup(unlearn_audit_digits: Dataset, unlearn_audit_store: Store) -> UnlearnSetup:
    """Digits, the class-3 request, a small-cnn original and two references, through the
    store."""
    return make_unlearn_setup(unlearn_audit_digits, store=unlearn_audit_store)


@pytest.fixture
def unlearn_audit_run(
    unlearn_audit_setup: UnlearnSetup, unlearn_audit_store: Store
) -> Callable[..., AuditResult]:
    """``unlearn_audit_run(unlearned, **kwargs)``: audit ``unlearned`` against
    ``unlearn_audit_setup`` with ``unlearn_audit_store``; ``kwargs`` as for
    :meth:`UnlearnSetup.audit`."""

    def run(unlearned: LoadedModel | str | Path, **kwargs: Any) -> AuditResult:
        return unlearn_audit_setup.audit(unlearned, **({"store": unlearn_audit_store} | kwargs))

    return run
