"""efficiency: what unlearning cost against retraining from scratch.

Wall time of the unlearning run (recorded by the bundled methods in the unlearned checkpoint)
and of retraining (the reference's recorded training time, when the toolkit trained it), and the
speed-up.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check
from unlearn_audit.evidence import Evidence, Table, label

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext


def _seconds(extra: dict[str, Any], *keys: str) -> float | None:
    value: Any = extra
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


@dataclass
class EfficiencyEvidence(Evidence):
    """Wall times in seconds (``None``: not recorded) and the speed-up of unlearning over
    retraining."""

    TITLE: ClassVar[str] = "Cost"

    unlearning_seconds: float | None
    retraining_seconds: float | None
    original_training_seconds: float | None
    speedup: float | None

    def tables(self) -> list[Table]:
        rows = []
        for f in fields(self):
            value = getattr(self, f.name)
            rows.append([label(f.name), "—" if value is None else f"{value:.2f}"])
        return [Table("Wall time", ["quantity", "value"], rows)]

    def key_numbers(self) -> dict[str, float | None]:
        return {"unlearning s": self.unlearning_seconds, "speed-up": self.speedup}


@register_check
class EfficiencyCheck(Check):
    name = "efficiency"
    description = "wall time of unlearning and of retraining, and the speed-up"
    needs = Needs()
    evidence = EfficiencyEvidence

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
        notes = [] if unlearning is not None else ["the unlearned checkpoint records no time"]
        evidence = EfficiencyEvidence(unlearning, retrain, original, speedup)
        return CheckResult(name=self.name, evidence=evidence, notes=notes)
