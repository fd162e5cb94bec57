"""A check defined here, outside the core, registered like a plug-in: it runs in an audit, its
evidence round-trips through result.json as its own dataclass, the report renders its tables and
its template fragment, and a claim declared in a policy file is judged on it. No core file knows
it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from tests.conftest import QUICK
from unlearn_audit.checks import CHECKS, Check, CheckResult, Needs
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits
from unlearn_audit.evidence import Estimate, Evidence, Gap, NoReference, Table, is_reference
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.pipeline import audit
from unlearn_audit.report import render_html
from unlearn_audit.results import AuditResult
from unlearn_audit.train import train_classifier


@dataclass
class ConfidenceEvidence(Evidence):
    """Mean top-class probability on the forget set, per model role."""

    confidence: dict[str, Estimate]
    samples: int

    MEASURES: ClassVar[tuple[str, ...]] = ("confidence",)
    TITLE: ClassVar[str] = "Forget-set confidence (plug-in)"
    TEMPLATE: ClassVar[str] = (
        '<p class="plugin-note">Measured on {{ evidence.samples }} forget samples.</p>'
    )

    def gaps(self, measure: str, request: str) -> list[Gap]:
        if measure != "confidence":
            return super().gaps(measure, request)
        references = [e for role, e in self.confidence.items() if is_reference(role)]
        if not references:
            raise NoReference
        return [
            Gap(
                "mean forget confidence",
                self.confidence["unlearned"],
                Estimate.pooled(references),
                worse="above",
            )
        ]

    def tables(self) -> list[Table]:
        return [
            Table(
                "Mean top-class probability on the forget set",
                ["model", "confidence"],
                [[role, e.text()] for role, e in self.confidence.items()],
            )
        ]


class ConfidenceCheck(Check):
    name = "forget_confidence"
    description = "mean top-class probability on the forget set"
    needs = Needs(references=True)
    evidence = ConfidenceEvidence

    def run(self, ctx):  # type: ignore[no-untyped-def]
        confidence = {}
        for role, model in ctx.roles():
            top = ctx.outputs(model, "forget").probs.max(axis=1)
            spread = 1.96 * top.std(ddof=1) / np.sqrt(len(top))
            mean = float(top.mean())
            confidence[role] = Estimate(mean, mean - spread, mean + spread)
        evidence = ConfidenceEvidence(confidence, samples=len(ctx.splits.forget))
        return CheckResult(self.name, evidence=evidence)


POLICY = """
[forget_confidence_like_reference]
statement = "The unlearned model is no more confident on the forget set than a retrained one."
check = "forget_confidence"
measure = "confidence"
pass = 0.05
warn = 0.10
"""


@pytest.fixture()
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The check in the registry for this test only."""
    monkeypatch.setattr(CHECKS, "_entries", dict(CHECKS._entries))
    CHECKS.register(ConfidenceCheck.name, ConfidenceCheck)
    yield


def test_a_plug_in_check_renders_and_feeds_a_policy_claim(
    registered: None, digits: Dataset, quick_model: LoadedModel, tmp_path: Path
) -> None:
    splits = make_splits(digits, ForgetRequest.classes(3))
    references = [
        train_classifier(
            digits, recipe=QUICK, member_ids=splits.retain, seed=seed, role="reference"
        )
        for seed in (1, 2)
    ]
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)

    def run(unlearned: LoadedModel) -> AuditResult:
        return audit(
            original=quick_model,
            unlearned=unlearned,
            references=[references[1]],
            dataset=digits,
            request=splits,
            profile="quick",
            checks=["forget_confidence"],
            policy=policy,
        )

    retrained, untouched = run(references[0]), run(quick_model)
    verdicts = {
        name: {v.claim: v for v in result.verdicts}["forget_confidence_like_reference"]
        for name, result in (("retrained", retrained), ("untouched", untouched))
    }
    assert verdicts["retrained"].status == "PASS"
    # the original is sure of class 3; a model that never saw it is not
    assert verdicts["untouched"].status == "FAIL"
    assert verdicts["untouched"].measured > verdicts["untouched"].reference + 0.1
    assert "mean forget confidence" in verdicts["untouched"].evidence

    # result.json keeps the plug-in's own dataclass; the report renders it from the file
    path = untouched.save(tmp_path / "result.json")
    loaded = AuditResult.load(path)
    evidence = loaded.checks["forget_confidence"].evidence
    assert isinstance(evidence, ConfidenceEvidence)
    assert evidence == untouched.checks["forget_confidence"].evidence
    html = render_html(loaded, figures=lambda result: {})
    assert "Forget-set confidence (plug-in)" in html
    assert "Mean top-class probability on the forget set" in html
    assert f'<p class="plugin-note">Measured on {len(splits.forget)} forget samples.</p>' in html
    assert "forget_confidence_like_reference" in html and verdicts["untouched"].status in html


def test_without_the_plug_in_its_evidence_is_kept_raw_and_its_policy_refused(
    registered: None, digits: Dataset, quick_model: LoadedModel, tmp_path: Path
) -> None:
    """A result.json written with a plug-in that is not installed still loads and renders; a
    policy naming the missing check is refused at load time."""
    from unlearn_audit.errors import ConfigError
    from unlearn_audit.evidence import RawEvidence
    from unlearn_audit.policy import Policy

    splits = make_splits(digits, ForgetRequest.classes(3))
    reference = train_classifier(
        digits, recipe=QUICK, member_ids=splits.retain, seed=1, role="reference"
    )
    result = audit(
        original=quick_model,
        unlearned=quick_model,
        references=[reference],
        dataset=digits,
        request=splits,
        profile="quick",
        checks=["forget_confidence"],
    )
    data = result.to_dict_json()
    CHECKS._entries.pop(ConfidenceCheck.name)
    loaded = AuditResult.from_dict(data)
    raw = loaded.checks["forget_confidence"].evidence
    assert isinstance(raw, RawEvidence) and raw.data["samples"] == len(splits.forget)
    assert "confidence unlearned value" in render_html(loaded, figures=lambda r: {})
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with pytest.raises(ConfigError, match="'forget_confidence', which is not installed"):
        Policy.load(policy)
