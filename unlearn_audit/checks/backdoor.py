"""backdoor (seed 004; BadNets, Gu et al. 2017): does the trigger planted through the forget set
still fire?

Attack success rate: the share of triggered test inputs from classes other than the target that
the model predicts as the target; clean accuracy on the same inputs beside it; for the original,
the unlearned model and the references, with Wilson intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from unlearn_audit.checks.base import Check, CheckResult, Needs, rate, register_check
from unlearn_audit.evidence import (
    Estimate,
    Evidence,
    Gap,
    NoReference,
    Read,
    Table,
    is_reference,
    ordered_roles,
)
from unlearn_audit.figures import colour, error_bars, new_figure

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext


@dataclass
class BackdoorEvidence(Evidence):
    """The trigger's effect on every model.

    Attributes:
        attack_success: model role -> share of triggered non-target inputs called the target.
        clean_accuracy: model role -> accuracy on the same inputs without the trigger.
        trigger: The trigger's settings (as :meth:`Trigger.to_dict` writes them).
    """

    TITLE: ClassVar[str] = "Backdoor trigger"

    attack_success: dict[str, Estimate]
    clean_accuracy: dict[str, Estimate]
    trigger: dict[str, Any]

    MEASURES: ClassVar[tuple[str, ...]] = ("success", "success_absolute")

    def gaps(self, measure: str, request: str) -> list[Gap]:
        success = self.attack_success["unlearned"]
        if measure == "success_absolute":
            return [Gap("trigger attack success", success, Estimate(0.0), yardstick_name="limit")]
        if measure != "success":
            return super().gaps(measure, request)
        references = [e for role, e in self.attack_success.items() if is_reference(role)]
        if not references:
            raise NoReference
        return [Gap("trigger attack success", success, Estimate.pooled(references))]

    def summary(self) -> str:
        return f"trigger attack success {self.attack_success['original'].text()} before unlearning"

    def tables(self) -> list[Table]:
        return [
            Table(
                "Trigger attack success and clean accuracy",
                ["model", "attack success", "clean accuracy"],
                [
                    [r, self.attack_success[r].text(), self.clean_accuracy[r].text()]
                    for r in ordered_roles(self.attack_success)
                ],
            )
        ]

    def figures(self) -> dict[str, Callable[[], Any]]:
        return {"success": self._success_figure}

    def _success_figure(self) -> Any:
        """Attack success rate of the trigger per model, with intervals."""
        roles = ordered_roles(self.attack_success)
        figure = new_figure(4, 2.5)
        axes = figure.add_subplot()
        values, errors = error_bars([self.attack_success[r] for r in roles])
        axes.bar(roles, values, yerr=errors, capsize=3, color=[colour(r) for r in roles])
        axes.set_ylim(0, 1.05)
        axes.set_ylabel("attack success rate")
        return figure

    def key_numbers(self) -> dict[str, float | None]:
        return {"trigger success": self.attack_success["unlearned"].value}


@register_check
class BackdoorCheck(Check):
    name = "backdoor"
    description = "attack success rate of the backdoor trigger planted through the forget set"
    needs = Needs(trigger=True, compare=True, reads=(Read("test"), Read("test", "trigger")))
    evidence = BackdoorEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        trigger = ctx.trigger
        assert trigger is not None
        success: dict[str, Estimate] = {}
        clean: dict[str, Estimate] = {}
        for role, model in ctx.roles():
            triggered, plain = ctx.outputs(model, "test", "trigger"), ctx.outputs(model, "test")
            other = triggered.labels != trigger.target
            success[role] = rate(triggered.predictions[other] == trigger.target)
            clean[role] = rate(plain.correct[other])
        notes = []
        if not ctx.forget_triggered:
            notes.append(
                "the original's backdoor was planted on other samples than this request's "
                "forget set, so unlearning the request need not remove it"
            )
        evidence = BackdoorEvidence(success, clean, trigger.to_dict())
        return CheckResult(name=self.name, evidence=evidence, notes=notes)
