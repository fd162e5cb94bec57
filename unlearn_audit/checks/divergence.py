"""divergence (seed 001): activation distance and JS divergence to the reference.

Activation distance: mean over samples of the L2 distance between two models' softmax
vectors. JS divergence: mean over samples of JS(p, q) with natural log (each term in
[0, ln 2]), per sample, never averaged over N x C elements. Reported on forget, retain and test
for unlearned vs reference, with original vs reference and reference vs a second reference seed
as yardsticks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check
from unlearn_audit.evidence import Estimate, Evidence, Read, Table, label

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel

SPLITS = ("forget", "retain", "test")


@dataclass(frozen=True)
class PerSample:
    """One value per sample, by sample id."""

    ids: list[int]
    values: list[float]


@dataclass
class DivergenceEvidence(Evidence):
    """Distances between pairs of models' softmax outputs.

    Attributes:
        js: split -> pair (``unlearned_vs_reference``, ...) -> mean JS divergence (interval).
        activation_distance: split -> pair -> mean L2 distance of softmax vectors (interval).
        forget_js_to_reference: Each forget sample's JS divergence, unlearned vs reference.
    """

    TITLE: ClassVar[str] = "Divergence from the reference"

    js: dict[str, dict[str, Estimate]]
    activation_distance: dict[str, dict[str, Estimate]]
    forget_js_to_reference: PerSample | None = field(default=None)

    def tables(self) -> list[Table]:
        tables = []
        for title, per_split in (
            ("JS divergence (natural log)", self.js),
            ("Activation distance", self.activation_distance),
        ):
            pairs = list(next(iter(per_split.values())))
            tables.append(
                Table(
                    title,
                    ["split", *(label(p) for p in pairs)],
                    [[s, *(per_split[s][p].text() for p in pairs)] for s in per_split],
                )
            )
        return tables


@register_check
class DivergenceCheck(Check):
    name = "divergence"
    description = "activation distance and JS divergence of softmax outputs to the reference"
    needs = Needs(references=True, reads=tuple(Read(split) for split in SPLITS))
    evidence = DivergenceEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        from unlearn_audit._codec import from_json
        from unlearn_audit._hashing import code_fingerprint
        from unlearn_audit.functional import divergence, stats

        reference = ctx.references[0]
        pairs: list[tuple[str, LoadedModel, LoadedModel]] = [
            ("unlearned_vs_reference", ctx.unlearned, reference),
            ("original_vs_reference", ctx.original, reference),
            ("unlearned_vs_original", ctx.unlearned, ctx.original),
        ]
        if len(ctx.references) >= 2:
            pairs.append(("reference_vs_reference_2", reference, ctx.references[1]))
        evidence = DivergenceEvidence(js={}, activation_distance={})
        for pair, a, b in pairs:
            found = ctx.kept(
                "divergences",
                [a, b],
                [(split, "clean") for split in SPLITS],
                partial(_divergences, ctx, a, b),
                code=code_fingerprint(__file__, divergence.__file__, stats.__file__),
            )
            for split in SPLITS:
                for field_name, measure in (("js", "js"), ("activation_distance", "distance")):
                    per_pair = getattr(evidence, field_name).setdefault(split, {})
                    per_pair[pair] = from_json(Estimate, found[split][measure])
            if pair == "unlearned_vs_reference":
                evidence.forget_js_to_reference = PerSample(
                    ctx.splits.forget.tolist(), found["forget_js"]
                )
        notes = []
        if len(ctx.references) < 2:
            notes.append("one reference seed: the seed-to-seed yardstick needs --references 2")
        return CheckResult(name=self.name, evidence=evidence, notes=notes)


def _divergences(ctx: AuditContext, a: LoadedModel, b: LoadedModel) -> dict[str, Any]:
    """JS divergence and activation distance of ``a`` and ``b`` on each split (mean with its
    interval), and each forget sample's JS divergence, as JSON."""
    from unlearn_audit._codec import to_json
    from unlearn_audit.functional.divergence import activation_distance, js_divergence
    from unlearn_audit.functional.stats import mean_with_interval

    found: dict[str, Any] = {}
    for split in SPLITS:
        p, q = ctx.outputs(a, split).probs, ctx.outputs(b, split).probs
        js, distance = js_divergence(p, q), activation_distance(p, q)
        found[split] = {
            name: to_json(Estimate.of(*mean_with_interval(values, seed=ctx.config.seed)))
            for name, values in (("js", js), ("distance", distance))
        }
        if split == "forget":
            found["forget_js"] = js.tolist()
    return found
