"""What every registered check must do, like the conformance suite of the methods: declare its
evidence type and its needs as data, return evidence that round-trips through JSON and renders
(tables, figures, its report section), answer every measure it offers with gaps the policy can
grade, read no output it did not declare, and turn inputs it cannot use into N/A with a reason.

One standard audit of digits with every check (a backdoored original, a true retrain) feeds the
tests; its output reads are recorded per check.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections import defaultdict
from typing import Any

import pytest

import unlearn_audit.pipeline as pipeline
from tests.conftest import QUICK
from unlearn_audit.checks import CHECKS
from unlearn_audit.context import AuditContext
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.data.triggers import Trigger
from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import (
    CAUSES,
    CheckResult,
    Evidence,
    Gap,
    Needs,
    NoReference,
    Read,
    Table,
    Unmeasurable,
)
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.policy import grade
from unlearn_audit.report import render_html
from unlearn_audit.report.plots import figure_drawers, to_png_data_uri
from unlearn_audit.results import AuditResult
from unlearn_audit.store import Store
from unlearn_audit.train import train_classifier

NAMES = CHECKS.names()
TRIGGER = {"kind": "patch", "size": 2, "row": 0, "col": 0, "value": 1.0, "target": 0}

Recorded = dict[str, set[tuple[str, str, str]]]


class _Recorder:
    """Which (models, split, view) each check reads through ``AuditContext.outputs``."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.reads: Recorded = defaultdict(set)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        run_check, outputs = pipeline._run_check, AuditContext.outputs
        recorder = self

        def running(ctx: AuditContext, name: str) -> CheckResult:
            recorder.current = name
            try:
                return run_check(ctx, name)
            finally:
                recorder.current = None

        def reading(ctx: AuditContext, model: LoadedModel, split: str, view: Any = "clean") -> Any:
            if recorder.current is not None:
                audited = any(model is m for _, m in ctx.roles())
                kind = "original" if model is ctx.original else "audited" if audited else "shadows"
                recorder.reads[recorder.current].add((kind, split, view))
            return outputs(ctx, model, split, view)

        monkeypatch.setattr(pipeline, "_run_check", running)
        monkeypatch.setattr(AuditContext, "outputs", reading)


def _audit(
    digits: Dataset, request: ForgetRequest, store: Store, checks: list[str] | None = None
) -> tuple[AuditResult, Recorded, Splits]:
    splits = make_splits(digits, request)
    trigger = Trigger.from_dict(TRIGGER)
    original = train_classifier(
        digits,
        recipe=QUICK,
        member_ids=splits.members,
        trigger=trigger,
        poison_ids=splits.forget,
        progress=False,
        store=store,
    )
    retrained = train_classifier(
        digits, recipe=QUICK, member_ids=splits.retain, seed=7, progress=False, store=store
    )
    recorder = _Recorder()
    with pytest.MonkeyPatch.context() as monkeypatch:
        recorder.install(monkeypatch)
        result = pipeline.audit(
            original=original,
            unlearned=retrained,
            dataset=digits,
            request=splits,
            profile="standard",
            checks=checks,
            store=store,
        )
    return result, recorder.reads, splits


@pytest.fixture(scope="module")
def store(session_store: Store) -> Store:
    return session_store


@pytest.fixture(scope="module")
def live(digits: Dataset, store: Store) -> tuple[AuditResult, Recorded, Splits]:
    """A standard class-request audit with every registered check."""
    return _audit(digits, ForgetRequest.classes(3), store)


@pytest.fixture(scope="module")
def live_sample(digits: Dataset, store: Store) -> tuple[AuditResult, Recorded, Splits]:
    """A sample request, for the reads that depend on the request's kind."""
    return _audit(digits, ForgetRequest.random(0.05), store, checks=["accuracy", "membership"])


def _evidence(live: tuple[AuditResult, Recorded, Splits], name: str) -> Evidence:
    check = live[0].checks[name]
    assert check.status == "ok", f"{name} did not run in the conformance audit: {check.reason}"
    assert check.evidence is not None
    return check.evidence


@pytest.mark.parametrize("name", NAMES)
def test_declares_its_evidence_and_needs_as_data(name: str) -> None:
    check = CHECKS.get(name)
    assert check.name == name and check.description
    evidence = check.evidence
    assert issubclass(evidence, Evidence) and dataclasses.is_dataclass(evidence)
    assert evidence.TITLE, "a title for its report section"
    assert all(isinstance(m, str) and m for m in evidence.MEASURES)
    needs = check.needs
    assert isinstance(needs, Needs)
    flags = {f.name: getattr(needs, f.name) for f in dataclasses.fields(needs) if f.name != "reads"}
    assert all(isinstance(v, bool) for v in flags.values())
    assert all(isinstance(read, Read) for read in needs.reads)
    assert all(read.models in ("audited", "original", "shadows") for read in needs.reads)
    # the audit plans from the union of the selected checks' needs
    union = Needs.union([needs, Needs(shadows=True, reads=(Read("forget"),))])
    assert union.shadows and set(needs.reads) <= set(union.reads)
    assert all(getattr(union, key) for key, value in flags.items() if value)


@pytest.mark.parametrize("name", NAMES)
def test_evidence_round_trips_through_json(
    live: tuple[AuditResult, Recorded, Splits], name: str
) -> None:
    evidence = _evidence(live, name)
    assert isinstance(evidence, CHECKS.get(name).evidence)
    text = json.dumps(evidence.to_json(), allow_nan=False)
    again = type(evidence).from_json(json.loads(text))
    assert again == evidence
    loaded = AuditResult.from_dict(live[0].to_dict_json())
    assert loaded.checks[name].evidence == evidence


@pytest.mark.parametrize("name", NAMES)
def test_a_damaged_field_of_its_evidence_is_named(
    live: tuple[AuditResult, Recorded, Splits], name: str
) -> None:
    """result.json with a wrong or missing field inside the evidence: one error naming the
    field by its dotted path (from the check's own dataclass), never a deep crash."""
    evidence = _evidence(live, name)
    hints = typing.get_type_hints(type(evidence))
    fields = [f for f in dataclasses.fields(evidence) if hints[f.name] not in (bool, Any)]
    wrong, required = fields[0], next(f for f in fields if f.default is dataclasses.MISSING)
    data = live[0].to_dict_json()
    data["checks"][name]["evidence"][wrong.name] = True  # no field but a flag takes a flag
    with pytest.raises(ConfigError, match=rf"`checks\.{name}\.evidence\.{wrong.name}` must be"):
        AuditResult.from_dict(data)
    data = live[0].to_dict_json()
    del data["checks"][name]["evidence"][required.name]
    with pytest.raises(
        ConfigError, match=rf"`checks\.{name}\.evidence\.{required.name}` is missing"
    ):
        AuditResult.from_dict(data)


@pytest.mark.parametrize("name", NAMES)
def test_evidence_renders(live: tuple[AuditResult, Recorded, Splits], name: str) -> None:
    evidence = _evidence(live, name)
    tables = evidence.tables()
    assert tables, "at least one table"
    for table in tables:
        assert isinstance(table, Table) and table.title and table.rows
        assert all(len(row) == len(table.header) for row in table.rows)
        assert all(isinstance(cell, str) for row in table.rows for cell in row)
    result = live[0]
    drawers = {k: d for k, d in figure_drawers(result).items() if k.split(".")[0] == name}
    assert set(drawers) == {f"{name}.{key}" for key in evidence.figures()}
    for draw in drawers.values():
        assert to_png_data_uri(draw()).startswith("data:image/png;base64,")
    html = render_html(result, figures=lambda r: {})
    section = html.split(f'id="check-{name}"')[1].split("</section>")[0]
    assert evidence.TITLE in section
    for table in tables:
        assert table.title.replace("'", "&#39;") in section


@pytest.mark.parametrize("name", NAMES)
def test_every_measure_gives_gaps_the_policy_grades(
    live: tuple[AuditResult, Recorded, Splits], name: str
) -> None:
    evidence = _evidence(live, name)
    for measure in evidence.MEASURES:
        try:
            gaps = evidence.gaps(measure, "class")
        except (NoReference, Unmeasurable) as exc:  # pragma: no cover - names the failure
            pytest.fail(f"{name}.{measure} has a reference in this audit, got {exc!r}")
        assert gaps and all(isinstance(gap, Gap) for gap in gaps)
        for gap in gaps:
            assert gap.quantity and gap.measured.value is not None
            assert grade(gap, {"pass": 0.05, "warn": 0.1}).status in ("PASS", "WARN", "FAIL")
    with pytest.raises(Unmeasurable, match="has no measure 'no-such-measure'"):
        evidence.gaps("no-such-measure", "class")


@pytest.mark.parametrize("name", NAMES)
def test_reads_only_what_it_declares(
    live: tuple[AuditResult, Recorded, Splits],
    live_sample: tuple[AuditResult, Recorded, Splits],
    name: str,
) -> None:
    declared = CHECKS.get(name).needs.reads
    for result, reads, splits in (live, live_sample):
        if name not in result.checks:
            continue
        kind = splits.request.kind
        # "audited" covers the original too
        allowed = {
            (models, split, read.view)
            for read in declared
            for models in (("audited", "original") if read.models == "audited" else (read.models,))
            for split in read.splits(splits.names(), kind)
        }
        undeclared = reads.get(name, set()) - allowed
        assert not undeclared, f"{name} read outputs it did not declare: {sorted(undeclared)}"
        if declared:
            assert reads.get(name), f"{name} declares reads but read nothing"


@pytest.mark.parametrize("name", NAMES)
def test_inputs_it_cannot_use_give_na_with_a_reason(
    digits: Dataset, quick_model: LoadedModel, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quick audit whose outputs and samples cannot be read: the check is N/A with a reason
    and a cause (its needs unmet, or the error it met), never a crash or a result."""
    outputs, load = AuditContext.outputs, Dataset.load
    run_check = pipeline._run_check

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("these inputs cannot be read (conformance test)")

    def broken(ctx: AuditContext, name: str) -> CheckResult:
        monkeypatch.setattr(AuditContext, "outputs", unreadable)
        monkeypatch.setattr(Dataset, "load", unreadable)
        try:
            return run_check(ctx, name)
        finally:
            monkeypatch.setattr(AuditContext, "outputs", outputs)
            monkeypatch.setattr(Dataset, "load", load)

    monkeypatch.setattr(pipeline, "_run_check", broken)
    result = pipeline.audit(
        original=quick_model,
        unlearned=quick_model,
        dataset=digits,
        request=ForgetRequest.classes(3),
        profile="quick",
        checks=[name],
    )
    check = result.checks[name]
    assert check.status == "na" and check.evidence is None
    assert check.reason and check.cause in CAUSES
    for verdict in result.verdicts:
        assert verdict.status in ("N/A", "INCONCLUSIVE"), verdict


def test_the_golden_result_holds_every_registered_check() -> None:
    """So that the schema tests and the golden report cover each check's evidence."""
    from pathlib import Path

    golden = Path(__file__).resolve().parent / "golden" / "result_class.json"
    assert set(json.loads(golden.read_text())["checks"]) == set(NAMES)
