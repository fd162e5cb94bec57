"""divergence (seed 001): activation distance and JS divergence to the reference.

Activation distance: mean over samples of the L2 distance between two models' softmax
vectors. JS divergence: mean over samples of JS(p, q) with natural log (each term in
[0, ln 2]), per sample, never averaged over N x C elements. Reported on forget, retain and test
for unlearned vs reference, with original vs reference and reference vs a second reference seed
as yardsticks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unlearn_audit.checks.base import Check, CheckResult, Needs, interval, register_check
from unlearn_audit.functional.divergence import activation_distance, js_divergence
from unlearn_audit.functional.stats import mean_with_interval

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel

SPLITS = ("forget", "retain", "test")


@register_check
class DivergenceCheck(Check):
    name = "divergence"
    description = "activation distance and JS divergence of softmax outputs to the reference"
    needs = Needs(references=True)

    def run(self, ctx: AuditContext) -> CheckResult:
        reference = ctx.references[0]
        pairs: list[tuple[str, LoadedModel, LoadedModel]] = [
            ("unlearned_vs_reference", ctx.unlearned, reference),
            ("original_vs_reference", ctx.original, reference),
            ("unlearned_vs_original", ctx.unlearned, ctx.original),
        ]
        if len(ctx.references) >= 2:
            pairs.append(("reference_vs_reference_2", reference, ctx.references[1]))
        metrics: dict[str, Any] = {"js": {}, "activation_distance": {}}
        per_sample: dict[str, Any] = {}
        for split in SPLITS:
            metrics["js"][split], metrics["activation_distance"][split] = {}, {}
            for pair, a, b in pairs:
                p, q = ctx.outputs(a, split).probs, ctx.outputs(b, split).probs
                js, dist = js_divergence(p, q), activation_distance(p, q)
                seed = ctx.config.seed
                metrics["js"][split][pair] = interval(*mean_with_interval(js, seed=seed))
                metrics["activation_distance"][split][pair] = interval(
                    *mean_with_interval(dist, seed=seed)
                )
                if split == "forget" and pair == "unlearned_vs_reference":
                    per_sample["forget_js_to_reference"] = {
                        "ids": ctx.splits.forget.tolist(),
                        "values": js.tolist(),
                    }
        notes = []
        if len(ctx.references) < 2:
            notes.append("one reference seed: the seed-to-seed yardstick needs --references 2")
        return CheckResult(name=self.name, metrics=metrics, per_sample=per_sample, notes=notes)
