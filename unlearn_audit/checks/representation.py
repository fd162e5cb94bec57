"""representation (seed 000 and beyond): is the forgotten knowledge still in the features?

- ERM mask metrics (seed 000): CSI and L1-density of the real mask matrix G for models trained
  with the entanglement-reduced mask layer.
- Class-channel relevance (any CNN): the mean ReLU activation of each last-conv channel per class
  on test samples, each row scaled to max 1, summarised by CSI (seed 000's sum over ordered
  pairs of different classes of row cosine similarities, and its mean over pairs) and
  L1-density ||G||_1 / (C K); before (original) and after (unlearned), with the reference.
- Linear CKA between each model's penultimate features and the original's, on forget and on
  retain samples. A retrained model keeps a high CKA on retain but a clearly lower one on a
  forgotten class; an output-level method (head retrained or masked) keeps CKA = 1.0.
- Few-shot linear probe: logistic regression on frozen features with k = 2 and 5 labelled
  examples per class (several draws) from the population, scored on test: recall of the
  forgotten classes (class requests) or overall accuracy (sample requests). Few-shot on
  purpose: with thousands of examples even a retrained model's features separate an easy class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check
from unlearn_audit.functional.representation import (
    class_channel_relevance,
    csi,
    few_shot_probe,
    l1_density,
    linear_cka,
)
from unlearn_audit.models.erm import erm_mask

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext

SHOTS = (2, 5)
DRAWS = 5
_ROLE_REMEDY = {
    "unlearned": "the unlearned model (--unlearned-arch)",
    "original": "the original (--arch)",
    "reference": "the reference (--reference-arch)",
}
MAX_CKA_SAMPLES = 1000


@register_check
class RepresentationCheck(Check):
    name = "representation"
    description = "class-channel relevance (CSI, L1-density), CKA to the original, few-shot probe"
    needs = Needs(features=True, compare=True)

    def run(self, ctx: AuditContext) -> CheckResult:
        roles = [(r, m) for r, m in ctx.roles() if r in ("original", "unlearned", "reference")]
        missing = [
            role
            for role, model in roles
            for split in ("forget", "retain", "population", "test")
            if ctx.outputs(model, split).features is None
        ]
        if missing:
            missing = list(dict.fromkeys(missing))
            why = "; ".join(
                f"no penultimate features for the {role}: {ctx.unreadable_reason(model)}"
                for role, model in roles
                if role in missing
            )
            return CheckResult.not_applicable(
                self.name,
                why,
                remedy="give "
                + " and ".join(_ROLE_REMEDY.get(role, f"the {role}") for role in missing)
                + " as a state_dict with its architecture",
            )
        outs = {role: ctx.outputs(model, "test") for role, model in roles}
        metrics: dict[str, Any] = {}
        figures: dict[str, Any] = {}
        notes: list[str] = []
        if all(out.channels is not None for out in outs.values()):
            metrics["relevance"], figures["relevance"] = {}, {}
            for role, out in outs.items():
                matrix = class_channel_relevance(
                    out.channels, out.labels, num_classes=ctx.dataset.num_classes
                )
                total, mean = csi(matrix)
                metrics["relevance"][role] = {
                    "csi": total,
                    "csi_mean": mean,
                    "l1_density": l1_density(matrix),
                }
                figures["relevance"][role] = matrix.tolist()
        else:
            notes.append("no convolution: class-channel relevance skipped")
        masks = {role: erm_mask(model) for role, model in roles}
        if any(mask is not None for mask in masks.values()):
            metrics["erm"], figures["erm"] = {}, {}
            for role, mask in masks.items():
                if mask is None:
                    continue
                total, mean = csi(mask)
                metrics["erm"][role] = {
                    "csi": total,
                    "csi_mean": mean,
                    "l1_density": l1_density(mask),
                }
                figures["erm"][role] = mask.tolist()
        else:
            notes.append("no ERM mask layer: CSI and L1-density come from channel relevance")
        metrics["cka"] = self._cka(ctx, roles)
        metrics["probe"], metrics["probe_detail"] = self._probe(ctx, roles)
        return CheckResult(name=self.name, metrics=metrics, figures=figures, notes=notes)

    def _cka(self, ctx: AuditContext, roles: list[tuple[str, Any]]) -> dict[str, Any]:
        rng = np.random.default_rng(ctx.config.seed)
        result: dict[str, Any] = {}
        for split in ("forget", "retain"):
            base = ctx.outputs(ctx.original, split).features
            assert base is not None
            keep = np.arange(len(base))
            if len(keep) > MAX_CKA_SAMPLES:
                keep = np.sort(rng.choice(keep, size=MAX_CKA_SAMPLES, replace=False))
            for role, model in roles:
                if role == "original":
                    continue
                features = ctx.outputs(model, split).features
                assert features is not None
                result.setdefault(role, {})[split] = linear_cka(features[keep], base[keep])
        return result

    def _probe(
        self, ctx: AuditContext, roles: list[tuple[str, Any]]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        classes = list(ctx.splits.forget_classes)
        summary: dict[str, float] = {}
        detail: dict[str, Any] = {}
        for role, model in roles:
            pool, test = ctx.outputs(model, "population"), ctx.outputs(model, "test")
            assert pool.features is not None and test.features is not None
            scores = []
            for shots in SHOTS:
                probe = few_shot_probe(
                    pool.features,
                    pool.labels,
                    test.features,
                    test.labels,
                    shots=shots,
                    draws=DRAWS,
                    seed=ctx.config.seed,
                    classes=classes or None,
                )
                if classes:
                    value = float(np.mean([probe["recall"][c] for c in classes]))
                else:
                    value = float(probe["accuracy"])
                detail.setdefault(role, {})[f"k{shots}"] = value
                scores.append(value)
            summary[role] = float(np.mean(scores))
        detail["measure"] = "forget-class recall" if classes else "accuracy"
        return summary, detail
