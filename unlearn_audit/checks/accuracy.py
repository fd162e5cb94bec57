"""accuracy: forget, retain and test accuracy, per class, and under test-time augmentation.

Counted over samples (never a mean of per-batch means), each with a Wilson interval; deltas
against the original and the reference; chance level 1/C. Test-time augmentation on the forget
set follows seed 002: horizontal flip, vertical flip, centre crop of 90% resized back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, rate, register_check
from unlearn_audit.functional.stats import reference_position
from unlearn_audit.outputs import TTA_VIEWS

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext


@register_check
class AccuracyCheck(Check):
    name = "accuracy"
    description = "accuracy on every split, per class and under test-time augmentation"
    needs = Needs(compare=True)

    def run(self, ctx: AuditContext) -> CheckResult:
        roles = ctx.roles()
        splits = ctx.splits.names()
        table: dict[str, dict[str, Any]] = {split: {} for split in splits}
        per_class: dict[str, list[float | None]] = {}
        tta: dict[str, dict[str, Any]] = {view: {} for view in TTA_VIEWS}
        for role, model in roles:
            for split in splits:
                table[split][role] = rate(ctx.outputs(model, split).correct)
            test = ctx.outputs(model, "test")
            per_class[role] = [
                float(test.correct[test.labels == c].mean()) if np.any(test.labels == c) else None
                for c in range(ctx.dataset.num_classes)
            ]
            for view in TTA_VIEWS:
                tta[view][role] = rate(ctx.outputs(model, "forget", view).correct)
        refs = [role for role, _ in roles if role.startswith("reference")]
        reference_mean = {
            split: float(np.mean([table[split][r]["value"] for r in refs])) if refs else None
            for split in splits
        }
        deltas = {
            split: {
                "unlearned_vs_original": table[split]["unlearned"]["value"]
                - table[split]["original"]["value"],
                "unlearned_vs_reference": None
                if reference_mean[split] is None
                else table[split]["unlearned"]["value"] - reference_mean[split],
            }
            for split in splits
        }
        metrics: dict[str, Any] = {
            "accuracy": table,
            "reference_mean": reference_mean,
            "deltas": deltas,
            "per_class": per_class,
            "tta_forget": tta,
            "chance": 1.0 / ctx.dataset.num_classes,
            "classes": list(ctx.dataset.classes),
        }
        if len(refs) >= 2:
            metrics["reference_position"] = {
                split: reference_position(
                    table[split]["unlearned"]["value"], [table[split][r]["value"] for r in refs]
                )
                for split in splits
            }
        figure = {role: {split: table[split][role] for split in splits} for role, _ in roles}
        return CheckResult(name=self.name, metrics=metrics, figures={"bars": figure})
