"""divergence (seed 001): activation distance and JS divergence to the reference.

Activation distance: mean over samples of the L2 distance between two models' softmax
vectors. JS divergence: mean over samples of JS(p, q) with natural log (each term in
[0, ln 2]), per sample, never averaged over N x C elements. Reported on forget, retain and test
for unlearned vs reference, with original vs reference and reference vs a second reference seed
as yardsticks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

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
        from unlearn_audit.functional.divergence import activation_distance, js_divergence
        from unlearn_audit.functional.stats import mean_with_interval

        reference = ctx.references[0]
        pairs: list[tuple[str, LoadedModel, LoadedModel]] = [
            ("unlearned_vs_reference", ctx.unlearned, reference),
            ("original_vs_reference", ctx.original, reference),
            ("unlearned_vs_original", ctx.unlearned, ctx.original),
        ]
        if len(ctx.references) >= 2:
            pairs.append(("reference_vs_reference_2", reference, ctx.references[1]))
        evidence = DivergenceEvidence(js={}, activation_distance={})
        for split in SPLITS:
            evidence.js[split], evidence.activation_distance[split] = {}, {}
            for pair, a, b in pairs:
                p, q = ctx.outputs(a, split).probs, ctx.outputs(b, split).probs
                js, dist = js_divergence(p, q), activation_distance(p, q)
                seed = ctx.config.seed
                evidence.js[split][pair] = Estimate.of(*mean_with_interval(js, seed=seed))
                evidence.activation_distance[split][pair] = Estimate.of(
                    *mean_with_interval(dist, seed=seed)
                )
                if split == "forget" and pair == "unlearned_vs_reference":
                    evidence.forget_js_to_reference = PerSample(
                        ctx.splits.forget.tolist(), js.tolist()
                    )
        notes = []
        if len(ctx.references) < 2:
            notes.append("one reference seed: the seed-to-seed yardstick needs --references 2")
        return CheckResult(name=self.name, evidence=evidence, notes=notes)
