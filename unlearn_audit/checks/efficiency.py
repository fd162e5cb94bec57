"""efficiency: what unlearning cost against retraining from scratch.

Wall time of the unlearning run (recorded by the bundled methods in the unlearned checkpoint)
and of retraining (the reference's recorded training time, when the toolkit trained it), and the
speed-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext


def _seconds(extra: dict[str, Any], *keys: str) -> float | None:
    value: Any = extra
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


@register_check
class EfficiencyCheck(Check):
    name = "efficiency"
    description = "wall time of unlearning and of retraining, and the speed-up"
    needs = Needs()

    def run(self, ctx: AuditContext) -> CheckResult:
        unlearning = _seconds(ctx.unlearned.info.extra, "unlearning", "seconds")
        retraining = [
            s
            for r in ctx.references
            if (s := _seconds(r.info.extra, "history", "seconds")) is not None
        ]
        original = _seconds(ctx.original.info.extra, "history", "seconds")
        if unlearning is None and not retraining:
            return CheckResult.not_applicable(
                self.name,
                "no recorded times: the unlearned checkpoint records no unlearning time and no "
                "reference was trained by the toolkit",
            )
        retrain = sum(retraining) / len(retraining) if retraining else None
        speedup = retrain / unlearning if retrain and unlearning else None
        metrics = {
            "unlearning_seconds": unlearning,
            "retraining_seconds": retrain,
            "original_training_seconds": original,
            "speedup": speedup,
        }
        notes = [] if unlearning is not None else ["the unlearned checkpoint records no time"]
        return CheckResult(name=self.name, metrics=metrics, notes=notes)
