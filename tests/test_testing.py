"""unlearn_audit.testing: assertion helpers on hand-built results, their failure output through
pytest itself, the fixtures, and one real audit of digits."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import evidence_builders as build
from unlearn_audit import testing
from unlearn_audit.checks.membership import AttackResult
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import CheckResult, Estimate
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.results import AuditResult, Verdict
from unlearn_audit.store import ENV_VAR, Store
from unlearn_audit.testing import (
    UnlearnSetup,
    assert_backdoor_removed,
    assert_forgotten,
    assert_knowledge_removed,
    assert_no_membership_leak,
    assert_passed,
    assert_utility_kept,
    make_unlearn_setup,
)
from unlearn_audit.train import train_classifier

pytest_plugins = ["pytester"]

GOLDEN_RESULT = Path(__file__).resolve().parent / "golden" / "result_class.json"

HEADER = re.compile(r"claim\s+\| measured \| interval\s+\| reference \| threshold\s+\| verdict")
POLICY = {
    "forgotten": {"pass": 0.05, "warn": 0.10},
    "utility_kept": {"pass": 0.02, "warn": 0.05},
    "knowledge_removed": {"pass": 0.10, "warn": 0.25},
}


# --- hand-built results ------------------------------------------------------------------------


def _rate(value: float, low: float | None, high: float | None, total: int = 100) -> Estimate:
    return build.rate(value, low, high, total)


def _accuracy(
    forget: tuple[float, float | None, float | None] = (0.0, 0.0, 0.03),
    *,
    reference: float | None = 0.0,
    test: tuple[float, float, float] = (0.98, 0.97, 0.99),
    original_test: float = 0.985,
    kind: str = "class",
) -> CheckResult:
    forget_split = "test_forget_class" if kind == "class" else "forget"
    test_split = "test_retain_class" if kind == "class" else "test"
    table = {
        forget_split: {"original": _rate(0.98, 0.9, 1.0), "unlearned": _rate(*forget)},
        "retain": {"original": _rate(1.0, 0.996, 1.0), "unlearned": _rate(1.0, 0.996, 1.0)},
        test_split: {"original": _rate(original_test, 0.97, 0.99), "unlearned": _rate(*test)},
    }
    if reference is not None:
        table[forget_split]["reference"] = Estimate(reference)
    return build.accuracy(table)


def _lira(
    auc: tuple[float, float, float], tpr: float, tpr_high: float, *, nonmembers: int = 400
) -> AttackResult:
    return build.attack(auc, tpr, tpr_high, nonmembers)


def _membership(unlearned: AttackResult, *, nonmembers: int = 400) -> CheckResult:
    reference = _lira((0.50, 0.45, 0.55), 0.01, 0.05, nonmembers=nonmembers)
    return build.membership({"unlearned": unlearned, "reference": reference})


def _backdoor(unlearned: tuple[float, float, float], reference: float | None = 0.02) -> CheckResult:
    rates = {"original": _rate(0.9, 0.85, 0.95), "unlearned": _rate(*unlearned)}
    if reference is not None:
        rates["reference"] = Estimate(reference)
    return build.backdoor(rates)


def _representation(probe: float, cka: float, *, reference: bool = True) -> CheckResult:
    probes = {"unlearned": probe} | ({"reference": 0.40} if reference else {})
    ckas = {"unlearned": {"forget": cka, "retain": 0.95}}
    if reference:
        ckas["reference"] = {"forget": 0.40, "retain": 0.93}
    return build.representation(probes, ckas)


def _result(
    *checks: CheckResult, kind: str = "class", verdicts: list[Verdict] | None = None
) -> AuditResult:
    return AuditResult(
        config={"profile": "standard"},
        dataset={"name": "digits"},
        request={"request": {"kind": kind}, "forget_classes": [3] if kind == "class" else []},
        models={},
        checks={check.name: check for check in checks},
        verdicts=verdicts if verdicts is not None else [],
        timings={},
        versions={},
        created="2026-01-01T00:00:00Z",
    )


def _verdict(claim: str, status: str, **fields: Any) -> Verdict:
    return Verdict(claim, status, f"the {claim} claim", threshold=POLICY.get(claim, {}), **fields)


def _failure(helper: Any, result: Any, **kwargs: Any) -> str:
    with pytest.raises(AssertionError) as info:
        helper(result, **kwargs)
    return str(info.value)


def _table_lines(message: str) -> list[str]:
    lines = message.splitlines()
    start = next(i for i, line in enumerate(lines) if HEADER.search(line))
    return [line for line in lines[start:] if "|" in line or set(line) <= set("-+")]


# --- forgotten ---------------------------------------------------------------------------------


def test_forgotten_passes_when_the_upper_bound_is_within_tolerance() -> None:
    assert_forgotten(_result(_accuracy((0.0, 0.0, 0.03))))


def test_forgotten_judges_the_bound_not_the_point_estimate() -> None:
    # the point (0.02) is within 0.05 of the reference, the upper bound (0.08) is not
    result = _result(_accuracy((0.02, 0.005, 0.08)), verdicts=[_verdict("forgotten", "PASS")])
    message = _failure(assert_forgotten, result)
    assert message.startswith("assert_forgotten: ")
    assert HEADER.search(message)
    assert re.search(
        r"forgotten \|\s+0\.020 \| \[0\.005, 0\.080\] \|\s+0\.000 \| high - ref", message
    )
    assert "high - ref <= 0.050 | FAIL" in message
    evidence = [line for line in message.splitlines() if line.startswith("evidence: ")]
    assert evidence == [
        "evidence: test_forget_class accuracy of the unlearned model may be as high as 0.080 "
        "(95% upper bound; point 0.020, n=100) vs 0.000 for the reference: +0.080, tolerance 0.050"
    ]
    assert "hint: the interval alone reaches 0.060" in message, "the sample is too small"
    assert_forgotten(result, tolerance=0.10)


def test_forgotten_tolerance_defaults_to_the_recorded_policy() -> None:
    accuracy = _accuracy((0.02, 0.005, 0.08))
    loose = Verdict("forgotten", "PASS", "", threshold={"pass": 0.10, "warn": 0.2})
    assert_forgotten(_result(accuracy, verdicts=[loose]))
    with pytest.raises(AssertionError, match=r"<= 0\.050"):  # no verdict: the default policy
        assert_forgotten(_result(accuracy))


def test_forgotten_on_sample_requests_flags_both_directions() -> None:
    under = _result(_accuracy((1.0, 0.97, 1.0), reference=0.97, kind="sample"), kind="sample")
    assert_forgotten(under)
    over = _result(_accuracy((0.90, 0.85, 0.94), reference=0.97, kind="sample"), kind="sample")
    message = _failure(assert_forgotten, over)
    assert "|bound - ref| <= 0.050 | FAIL" in message
    assert "forget accuracy of the unlearned model lies in [0.850, 0.940]" in message
    assert "up to 0.120 away" in message


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (_result(), "the accuracy check was not run (this audit ran: none); add 'accuracy'"),
        (
            _result(CheckResult.not_applicable("accuracy", "unlearned model failed to load")),
            "the accuracy check is N/A: unlearned model failed to load.",
        ),
        (_result(_accuracy(reference=None)), "the accuracy check had no reference model"),
        (_result(_accuracy((0.0, None, None))), "no test_forget_class samples to measure."),
    ],
)
def test_forgotten_fails_on_missing_evidence(result: AuditResult, expected: str) -> None:
    message = _failure(assert_forgotten, result)
    assert message.startswith("assert_forgotten: missing evidence: ")
    assert expected in message


# --- utility -----------------------------------------------------------------------------------


def test_utility_kept_judges_the_lower_bound() -> None:
    assert_utility_kept(_result(_accuracy(test=(0.98, 0.975, 0.99))))
    # point drop 0.005, lower-bound drop 0.045
    result = _result(_accuracy(test=(0.98, 0.94, 0.99)))
    message = _failure(assert_utility_kept, result)
    lines = _table_lines(message)
    assert re.search(r"utility_kept \(retain\)\s+\|.*\| PASS$", lines[2])
    assert re.search(
        r"utility_kept \(test_retain_class\) \|\s+0\.980 \| \[0\.940, 0\.990\]", lines[3]
    )
    assert lines[3].endswith("orig - low <= 0.020 | FAIL")
    assert "a drop of up to +0.045, allowed 0.020" in message
    assert_utility_kept(result, max_drop=0.05)


def test_utility_kept_checks_its_arguments_and_evidence() -> None:
    with pytest.raises(ConfigError, match=r"`max_drop` must be a number in \[0, 1\]; got -0.1"):
        assert_utility_kept(_result(_accuracy()), max_drop=-0.1)
    message = _failure(assert_utility_kept, _result(_representation(0.4, 0.4)))
    assert (
        "missing evidence: the accuracy check was not run (this audit ran: representation)"
        in message
    )


# --- membership --------------------------------------------------------------------------------


def test_no_membership_leak_pass_and_fail() -> None:
    assert_no_membership_leak(_result(_membership(_lira((0.51, 0.47, 0.54), 0.01, 0.04))))
    # AUC point 0.52 is fine, its upper bound 0.58 is not; TPR 0.10 exceeds 0.01 + 0.05
    leaky = _result(_membership(_lira((0.52, 0.46, 0.58), 0.10, 0.17)))
    message = _failure(assert_no_membership_leak, leaky)
    assert "no_membership_leak (AUC)" in message and "high - ref <= 0.050 | FAIL" in message
    assert "no_membership_leak (TPR@1.0% FPR)" in message
    assert re.search(r"TPR@1\.0% FPR\) \|\s+0\.100 .* high - ref <= 0\.050 \| FAIL", message)
    assert (
        "LiRA TPR at 1.0% FPR (realised 0.0050) of the unlearned model may be as high as 0.170 "
        "(95% upper bound; point 0.100, n=100) vs 0.010 for the reference: +0.160" in message
    )
    assert_no_membership_leak(leaky, max_auc_gap=0.1, max_tpr=0.2)


def test_no_membership_leak_fails_on_an_unresolvable_rate() -> None:
    result = _result(_membership(_lira((0.5, 0.45, 0.55), 0.0, 0.03, nonmembers=398)))
    assert_no_membership_leak(result, fpr=0.01)
    message = _failure(assert_no_membership_leak, result, fpr=0.001)
    assert "TPR@0.1% FPR" in message
    assert (
        "the sample is too small to resolve TPR at 0.1% FPR: 398 unseen samples, at least 1000"
        in message
    )
    with pytest.raises(ConfigError, match=r"`fpr` must be 0.01 or 0.001 .*; got 0.05"):
        assert_no_membership_leak(result, fpr=0.05)


def test_no_membership_leak_fails_on_missing_evidence() -> None:
    na = CheckResult.not_applicable("membership", "no shadow bank: the quick profile trains none")
    message = _failure(assert_no_membership_leak, _result(na))
    assert "membership check is N/A: no shadow bank: the quick profile trains none" in message
    no_reference = build.membership({"unlearned": _lira((0.5, 0.4, 0.6), 0.0, 0.03)})
    message = _failure(assert_no_membership_leak, _result(no_reference))
    assert "the membership check had no reference model" in message


# --- backdoor ----------------------------------------------------------------------------------


def test_backdoor_removed_against_the_reference_and_absolute() -> None:
    assert_backdoor_removed(_result(_backdoor((0.03, 0.02, 0.05))))
    fired = _result(_backdoor((0.05, 0.03, 0.09)))  # point within 0.05 of 0.02, bound not
    message = _failure(assert_backdoor_removed, fired)
    assert re.search(r"backdoor_removed \|\s+0\.050 \| \[0\.030, 0\.090\] \|\s+0\.020 \|", message)
    message = _failure(assert_backdoor_removed, fired, max_gap=0.1, max_success=0.08)
    assert "backdoor_removed (absolute)" in message
    assert re.search(r"high <= 0\.080\s+\| FAIL", message)
    no_reference = _result(_backdoor((0.05, 0.03, 0.09), reference=None))
    assert_backdoor_removed(no_reference, max_success=0.1, against_reference=False)
    message = _failure(assert_backdoor_removed, no_reference, max_success=0.08)
    assert "missing evidence: the backdoor check had no reference model" in message
    absolute = {"max_success": 0.08, "against_reference": False}
    message = _failure(assert_backdoor_removed, no_reference, **absolute)
    assert "backdoor_removed (absolute)" in message and "backdoor_removed |" not in message
    with pytest.raises(ConfigError, match=r"`max_success` must be a number in .* when against"):
        assert_backdoor_removed(fired, against_reference=False)
    with pytest.raises(ConfigError, match="`max_gap` must be None when against_reference"):
        assert_backdoor_removed(fired, max_success=0.1, max_gap=0.1, against_reference=False)


# --- knowledge ---------------------------------------------------------------------------------


def test_knowledge_removed_rows_and_missing_evidence() -> None:
    assert_knowledge_removed(_result(_representation(0.45, 0.48)))
    masked = _result(_representation(0.45, 0.99), verdicts=[_verdict("knowledge_removed", "FAIL")])
    message = _failure(assert_knowledge_removed, masked)
    lines = _table_lines(message)
    assert re.search(
        r"knowledge_removed \(probe\) \|\s+0\.450 \| -\s+\|\s+0\.400 .*\| PASS$", lines[2]
    )
    assert re.search(
        r"knowledge_removed \(CKA\)\s+\|\s+0\.990 \| -\s+\|\s+0\.400 .*\| FAIL$", lines[3]
    )
    assert "+0.590, allowed 0.100 (no interval recorded: point estimate judged)" in message
    assert_knowledge_removed(masked, max_gap=0.6)
    sample = _failure(assert_knowledge_removed, _result(_representation(0.4, 0.4), kind="sample"))
    assert "missing evidence: knowledge_removed is class-level evidence" in sample
    no_reference = _result(_representation(0.4, 0.4, reference=False))
    assert "had no reference model" in _failure(assert_knowledge_removed, no_reference)


# --- assert_passed, inputs, the table ----------------------------------------------------------


def test_assert_passed_shows_every_verdict() -> None:
    verdicts = [
        _verdict(
            "forgotten",
            "FAIL",
            evidence="0.978 above the reference",
            measured=0.978,
            interval=[0.884, 0.996],
            reference=0.0,
        ),
        _verdict(
            "utility_kept",
            "WARN",
            evidence="drop +0.030",
            measured=0.96,
            interval=[0.94, 0.97],
            reference=0.99,
        ),
        _verdict("no_membership_leak", "N/A", evidence="the membership check did not run"),
    ]
    assert_passed(_result(verdicts=verdicts[1:]))
    message = _failure(assert_passed, _result(verdicts=verdicts))
    assert message.startswith("assert_passed: 1 of 3 claims failed (forgotten).")
    lines = _table_lines(message)
    assert [line.split(" |")[0].strip() for line in lines[2:]] == [
        "forgotten",
        "utility_kept",
        "no_membership_leak",
    ]
    assert lines[2].endswith("pass 0.050 / warn 0.100 | FAIL")
    assert lines[3].endswith("pass 0.020 / warn 0.050 | WARN")
    assert re.fullmatch(r"no_membership_leak \|\s+- \| -\s+\|\s+- \| -\s+\| N/A", lines[4])
    assert "evidence: forgotten: 0.978 above the reference" in message
    assert "utility_kept: drop" not in message, "evidence only for the failed claims"
    empty = _failure(assert_passed, _result(verdicts=verdicts[2:]))
    assert "missing evidence: no claim was judged (no_membership_leak: the membership" in empty
    # a claim that applies but that the audit was set not to judge: never a pass
    skipped = _verdict(
        "no_membership_leak",
        "N/A",
        evidence="no shadow bank: the quick profile trains no shadow models",
        cause="not_run",
        remedy="give shadow models with --shadow and --shadow-members",
    )
    partial = _result(verdicts=[*verdicts[1:2], skipped])
    assert partial.outcome == "PARTIAL" and not partial.passed
    message = _failure(assert_passed, partial)
    assert message.startswith(
        "assert_passed: 1 of the claims that apply was not judged, by the audit's settings "
        "(no_membership_leak): absence of evidence is not a pass."
    )
    assert "remedy for no_membership_leak: give shadow models with --shadow" in message
    # one that does not apply (no trigger, a class-level claim on a sample request) is no gap
    inapplicable = _verdict("backdoor_removed", "N/A", cause="not_applicable")
    assert_passed(_result(verdicts=[*verdicts[1:2], inapplicable]))
    assert _result(verdicts=[*verdicts[1:2], inapplicable]).outcome == "WARN"


def test_table_columns_line_up() -> None:
    result = _result(_membership(_lira((0.52, 0.46, 0.58), 0.10, 0.17)))
    lines = _table_lines(_failure(assert_no_membership_leak, result))
    bars = {tuple(i for i, char in enumerate(line) if char in "|+") for line in lines}
    assert len(bars) == 1, "every row has its separators at the same columns"


def test_helpers_read_result_json(tmp_path: Path) -> None:
    failing = _result(_accuracy((0.5, 0.4, 0.6)))
    path = failing.save(tmp_path / "result.json")
    for given in (path, str(path), failing.to_dict_json()):
        with pytest.raises(AssertionError, match="forgotten"):
            assert_forgotten(given)
    with pytest.raises(ConfigError, match="`result` must be an AuditResult"):
        assert_forgotten(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="does not exist"):
        assert_forgotten(tmp_path / "none.json")


@pytest.mark.parametrize(
    ("helper", "claim", "check", "default"),
    [
        (assert_forgotten, "forgotten", _accuracy((0.02, 0.005, 0.08)), "high - ref <= 0.050"),
        (
            assert_utility_kept,
            "utility_kept",
            _accuracy(test=(0.98, 0.94, 0.99)),
            "orig - low <= 0.020",
        ),
        (
            assert_no_membership_leak,
            "no_membership_leak",
            _membership(_lira((0.52, 0.46, 0.58), 0.01, 0.04)),
            "high - ref <= 0.050",
        ),
        (assert_backdoor_removed, "backdoor_removed", _backdoor((0.05, 0.03, 0.09)), "<= 0.050"),
        (
            assert_knowledge_removed,
            "knowledge_removed",
            _representation(0.45, 0.65),
            "value - ref <= 0.100",
        ),
    ],
)
def test_every_default_threshold_is_the_recorded_policys(
    helper: Callable[..., None], claim: str, check: CheckResult, default: str
) -> None:
    # no verdict recorded: the default policy's pass threshold
    assert f"{default} | FAIL" in _failure(helper, _result(check))
    loose = Verdict(claim, "PASS", "", threshold={"pass": 0.30, "warn": 0.40})
    helper(_result(check, verdicts=[loose]))


# --- the evidence of a failure -----------------------------------------------------------------


def _evidence_folder(message: str) -> Path:
    last = message.splitlines()[-1]
    match = re.fullmatch(r"evidence written to (.+)/result\.json and \1/report\.html", last)
    assert match, f"the message ends with where the evidence is; got {last!r}"
    return Path(match[1])


def test_a_failure_writes_the_evidence_under_pytests_temporary_path(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = AuditResult.load(GOLDEN_RESULT)
    assert_utility_kept(result, max_drop=0.05)  # a pass writes nothing
    folder = _evidence_folder(_failure(assert_forgotten, result))
    assert folder.parent == tmp_path_factory.getbasetemp()
    assert re.fullmatch(r"test_a_failure_writes_the_evid-assert_forgotten\d+", folder.name)
    assert AuditResult.load(folder / "result.json").to_dict_json() == result.to_dict_json()
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "<html" in html and result.models["unlearned"]["fingerprint"] in html
    written = tmp_path_factory.getbasetemp().glob("test_a_failure_*")
    assert [p for p in written if not p.is_symlink()] == [folder], "none for the pass"
    assert _evidence_folder(_failure(assert_forgotten, str(GOLDEN_RESULT))) != folder


def test_outside_pytest_the_evidence_goes_to_a_system_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testing, "_SESSIONS", [])  # as when the plugin is not loaded
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = _evidence_folder(_failure(assert_no_membership_leak, GOLDEN_RESULT))
    assert folder.parent == tmp_path and folder.name.startswith("assert_no_membership_leak-")
    assert (folder / "result.json").is_file() and (folder / "report.html").is_file()


def test_a_report_that_cannot_be_rendered_leaves_the_failure_and_its_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("chance")

    monkeypatch.setattr("unlearn_audit.report.write_report", broken)
    message = _failure(assert_forgotten, _result(_accuracy((0.5, 0.4, 0.6))))
    assert message.startswith("assert_forgotten: the interval's worst case")
    last = message.splitlines()[-1]
    match = re.fullmatch(
        r"evidence written to (.+result\.json); report\.html not rendered \(KeyError: 'chance'\)",
        last,
    )
    assert match and AuditResult.load(match[1]).checks["accuracy"].status == "ok", last


# --- through pytest ----------------------------------------------------------------------------


@pytest.fixture()
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose runs load only this plugin (no installed entry points)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def test_failures_read_well_in_pytest_output(inner: pytest.Pytester) -> None:
    verdicts = [_verdict("forgotten", "FAIL", evidence="far above the reference", measured=0.98)]
    _result(_accuracy((0.98, 0.88, 0.996)), verdicts=verdicts).save(inner.path / "result.json")
    inner.makepyfile(
        test_ci="""
        from unlearn_audit.testing import assert_backdoor_removed, assert_forgotten, assert_passed

        def test_forgotten():
            assert_forgotten("result.json")

        def test_passed():
            assert_passed("result.json")

        def test_backdoor():
            assert_backdoor_removed("result.json")
        """
    )
    run = inner.runpytest("-p", "unlearn_audit.testing")
    run.assert_outcomes(failed=3)
    run.stdout.fnmatch_lines(
        [
            "E * assert_forgotten: the interval's worst case is outside the tolerance.",
            "E * claim * | measured | interval * | reference | threshold * | verdict",
            "E * forgotten |    0.980 | ?0.880, 0.996? |     0.000 | high - ref <= 0.050 | FAIL",
            "E * evidence: test_forget_class accuracy of the unlearned model may be as high as *",
            "E * assert_passed: 1 of 1 claims failed (forgotten).",
            "E * assert_backdoor_removed: missing evidence: the backdoor check was not run *",
        ]
    )
    output = run.stdout.str()
    assert not re.search(r"unlearn_audit[/\\]testing\.py", output), "helper frames are hidden"
    assert "raise AssertionError" not in output and "__tracebackhide__" not in output
    assert "test_ci.py:4: AssertionError" in output, "the user's line is where it failed"
    basetemp = inner.path.parent / "basetemp"
    assert output.count(f"E       evidence written to {basetemp}/test_forgotten-") == 1
    assert output.count(f"E       evidence written to {basetemp}/test_passed-") == 1


def test_every_fixture_is_prefixed(inner: pytest.Pytester) -> None:
    run = inner.runpytest("-p", "unlearn_audit.testing", "--fixtures")
    section = run.stdout.str().split("fixtures defined from unlearn_audit.testing")[1]
    names = re.findall(r"^(\w+)(?: \[\w+ scope\])? -- ", section, re.M)
    assert names == [
        "unlearn_audit_digits",
        "unlearn_audit_store",
        "unlearn_audit_setup",
        "unlearn_audit_run",
    ]


# --- the fixtures and a real audit -------------------------------------------------------------


@pytest.fixture(scope="module")
def store(session_store: Store) -> Store:
    return session_store


@pytest.fixture(scope="module")
def digits_setup(digits: Dataset, store: Store) -> UnlearnSetup:
    return make_unlearn_setup(digits, store=store)


@pytest.fixture(scope="module")
def second_reference(digits_setup: UnlearnSetup, store: Store) -> LoadedModel:
    """Another retrained model (seed 1): the audit's reference when the setup's is audited."""
    return train_classifier(
        digits_setup.dataset,
        arch="small-cnn",
        member_ids=digits_setup.splits.retain,
        seed=1,
        store=store,
        role="reference",
        progress=False,
    )


def test_helpers_pass_on_a_retrained_model_and_fail_on_the_original(
    digits_setup: UnlearnSetup, second_reference: LoadedModel, store: Store
) -> None:
    options: dict[str, Any] = {
        "checks": ["accuracy", "representation"],
        "profile": "quick",
        "references": [second_reference],
        "store": store,
    }
    retrained = digits_setup.audit(digits_setup.reference, **options)
    # 45 forget-class and 353 retain-class test samples: the intervals are a few points wide,
    # so a retrained model passes at the policy's WARN levels, not at its PASS levels
    assert_forgotten(retrained, tolerance=0.10)
    assert_utility_kept(retrained, max_drop=0.05)
    assert_knowledge_removed(retrained, max_gap=0.25)  # CKA differs by ~0.1 across seeds
    too_tight = _failure(assert_forgotten, retrained)
    assert "point 0.000, n=45" in too_tight and "hint: the interval alone reaches" in too_tight

    original = digits_setup.audit(digits_setup.original, **options)
    message = _failure(assert_forgotten, original, tolerance=0.10)
    assert HEADER.search(message) and re.search(r"forgotten \|\s+0\.9\d\d \|", message)
    assert "knowledge_removed (CKA)" in _failure(assert_knowledge_removed, original)
    assert "claims failed (forgotten, knowledge_removed)" in _failure(assert_passed, original)


def test_fixtures_in_a_users_test_suite(
    inner: pytest.Pytester,
    digits_setup: UnlearnSetup,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, str(store.root))  # the models trained above are reused
    inner.makepyfile(
        test_method="""
        from unlearn_audit.testing import UnlearnSetup, assert_forgotten

        def test_fixtures(unlearn_audit_digits, unlearn_audit_setup, unlearn_audit_store):
            assert isinstance(unlearn_audit_setup, UnlearnSetup)
            assert unlearn_audit_setup.dataset is unlearn_audit_digits
            assert unlearn_audit_setup.splits.forget_classes == (3,)
            assert unlearn_audit_store.misses == 0, "trained once, then from the cache"

        def test_original(unlearn_audit_setup, unlearn_audit_store, unlearn_audit_run):
            result = unlearn_audit_run(unlearn_audit_setup.original, checks=["accuracy"])
            # the standard profile's two references are the setup's, from the store
            built = result.config["models_built"]
            assert (built["trained"], built["reused"]) == (0, 2)
            assert unlearn_audit_store.misses == 0
            assert_forgotten(result)
        """
    )
    run = inner.runpytest("-p", "unlearn_audit.testing")
    run.assert_outcomes(passed=1, failed=1)
    run.stdout.fnmatch_lines(
        [
            "E * forgotten | *| FAIL",
            "E * evidence written to */test_original-assert_forgotten0/result.json and "
            "*/test_original-assert_forgotten0/report.html",
            "test_method.py:15: AssertionError",
        ]
    )
    basetemp = inner.path.parent / "basetemp"
    run.stdout.fnmatch_lines(
        [f"E * evidence written to {basetemp}/*/result.json and {basetemp}/*/report.html"]
    )
