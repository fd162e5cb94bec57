"""backdoor (seed 004; BadNets, Gu et al. 2017): does the trigger planted through the forget set
still fire?

Attack success rate: the share of triggered test inputs from classes other than the target that
the model predicts as the target; clean accuracy on the same inputs beside it; for the original,
the unlearned model and the references, with Wilson intervals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, rate, register_check

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext


@register_check
class BackdoorCheck(Check):
    name = "backdoor"
    description = "attack success rate of the backdoor trigger planted through the forget set"
    needs = Needs(trigger=True, compare=True)

    def run(self, ctx: AuditContext) -> CheckResult:
        trigger = ctx.trigger
        assert trigger is not None
        success: dict[str, Any] = {}
        clean: dict[str, Any] = {}
        for role, model in ctx.roles():
            triggered, plain = ctx.outputs(model, "test", "trigger"), ctx.outputs(model, "test")
            other = triggered.labels != trigger.target
            success[role] = rate(triggered.predictions[other] == trigger.target)
            clean[role] = rate(plain.correct[other])
        refs = [role for role in success if role.startswith("reference")]
        metrics = {
            "attack_success": success,
            "clean_accuracy": clean,
            "reference_mean": float(np.mean([success[r]["value"] for r in refs])) if refs else None,
            "trigger": trigger.to_dict(),
        }
        notes = []
        poisoned = ctx.original.info.extra.get("poisoned")
        if poisoned and poisoned.get("fingerprint") != _forget_fingerprint(ctx):
            notes.append(
                "the original's backdoor was planted on other samples than this request's "
                "forget set, so unlearning the request need not remove it"
            )
        return CheckResult(
            name=self.name, metrics=metrics, notes=notes, figures={"attack_success": success}
        )


def _forget_fingerprint(ctx: AuditContext) -> str:
    from unlearn_audit._hashing import fingerprint_ids

    return fingerprint_ids(ctx.splits.forget)
