"""accuracy: forget, retain and test accuracy, per class, and under test-time augmentation.

Counted over samples (never a mean of per-batch means), each with a Wilson interval; compared
with the original and the references; chance level 1/C. Test-time augmentation on the forget
set follows seed 002: horizontal flip, vertical flip, centre crop of 90% resized back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, rate, register_check
from unlearn_audit.evidence import (
    Estimate,
    Evidence,
    Gap,
    NoReference,
    Read,
    Table,
    Unmeasurable,
    is_reference,
    label,
    ordered_roles,
)
from unlearn_audit.figures import colour, error_bars, new_figure

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext

SPLIT_ORDER = ("forget", "retain", "test", "test_forget_class", "test_retain_class")


@dataclass(frozen=True)
class ReferencePosition:
    """Where the unlearned model's value sits among the reference seeds' values."""

    z: float | None
    percentile: float | None
    n: int


@dataclass
class AccuracyEvidence(Evidence):
    """Accuracy of every model on every split.

    Attributes:
        accuracy: split -> model role -> accuracy with its Wilson interval and counts.
        per_class: model role -> test accuracy of each class (``None``: no test sample).
        tta_forget: view -> model role -> forget accuracy under that test-time augmentation.
        chance: 1 / number of classes.
        classes: Class names.
        reference_position: split -> the unlearned model among the reference seeds (with two
            or more references).
        as_trained: When the original learned the forget set with a backdoor trigger and its
            target label: model role -> share of triggered forget samples (true label other
            than the target) predicted as the target, i.e. the forget set's accuracy in the
            form the original was trained on. ``forgotten`` is judged on it as well.
        trigger_target: That target class.
        tug_of_war: Tug-of-War (Zhao et al. 2024) against the first reference:
            ``(1 - |d forget|)(1 - |d retain|)(1 - |d test|)`` over the accuracy differences,
            with a bootstrap interval (samples resampled, pairs kept); 1 is a perfect match.
    """

    TITLE: ClassVar[str] = "Accuracy"

    accuracy: dict[str, dict[str, Estimate]]
    per_class: dict[str, list[float | None]]
    tta_forget: dict[str, dict[str, Estimate]]
    chance: float
    classes: list[str]
    reference_position: dict[str, ReferencePosition] | None = None
    as_trained: dict[str, Estimate] | None = None
    trigger_target: int | None = None
    tug_of_war: Estimate | None = None

    MEASURES: ClassVar[tuple[str, ...]] = ("forgotten", "utility")
    ORIGINAL_YARDSTICK: ClassVar[tuple[str, ...]] = ("utility",)

    def roles(self) -> list[str]:
        return ordered_roles(next(iter(self.accuracy.values()), {}))

    def reference_mean(self, split: str) -> float | None:
        """The references' mean accuracy on ``split`` (``None`` without references)."""
        values = [e.value for r, e in self.accuracy.get(split, {}).items() if is_reference(r)]
        known = [v for v in values if v is not None]
        return float(np.mean(known)) if known else None

    def gaps(self, measure: str, request: str) -> list[Gap]:
        if measure == "forgotten":
            return [self._forgotten(request), *self._forgotten_as_trained()]
        if measure == "utility":
            test = "test_retain_class" if request == "class" else "test"
            return [
                Gap(
                    f"{split} accuracy",
                    self.accuracy[split]["unlearned"],
                    self.accuracy[split]["original"],
                    worse="below",
                    yardstick_name="original",
                    short=split,
                )
                for split in ("retain", test)
            ]
        return super().gaps(measure, request)

    def _forgotten(self, request: str) -> Gap:
        # class requests: unseen samples of the forgotten classes (the forget set itself was
        # trained on by the original); sample requests: the forget set, in both directions
        split = "test_forget_class" if request == "class" else "forget"
        table = self.accuracy.get(split, {})
        references = [e for role, e in table.items() if is_reference(role)]
        if not references:
            raise NoReference
        # every rate with samples has its Wilson interval: no interval means no samples
        if not table["unlearned"].bounded or self.reference_mean(split) is None:
            raise Unmeasurable(
                f"no {split} samples to measure",
                "unjudgeable",
                "hold out test samples of the forgotten classes (--test-size)",
            )
        return Gap(
            f"{split} accuracy",
            table["unlearned"],
            Estimate.pooled(references),
            worse="above" if request == "class" else "either",
        )

    def _forgotten_as_trained(self) -> list[Gap]:
        """The forget set in the form the original learned it (triggered, target label): a
        model that still maps it to the target has not forgotten it, whatever its clean
        accuracy says."""
        if not self.as_trained:
            return []
        references = [e for role, e in self.as_trained.items() if is_reference(role)]
        if not references:
            raise NoReference
        return [
            Gap(
                f"forget accuracy as trained (triggered, target {self.trigger_target})",
                self.as_trained["unlearned"],
                Estimate.pooled(references),
                worse="above",
                short="forget as trained",
            )
        ]

    def tables(self) -> list[Table]:
        roles = self.roles()
        tables = [
            Table(
                "Accuracy with 95% Wilson intervals",
                ["split", *roles],
                [[label(s), *(self.accuracy[s][r].text() for r in roles)] for s in self.accuracy],
            )
        ]
        if self.tug_of_war is not None:
            tables.append(
                Table(
                    "Tug-of-War against the reference: (1 - |d forget|)(1 - |d retain|)"
                    "(1 - |d test|) of the accuracies, bootstrap interval",
                    ["model", "ToW"],
                    [["unlearned", self.tug_of_war.text()]],
                )
            )
        if self.as_trained:
            tables.append(
                Table(
                    "The forget set as the original learned it: triggered, labelled "
                    f"{self.trigger_target} (samples of other classes)",
                    ["split", *roles],
                    [["forget as trained", *(self.as_trained[r].text() for r in roles)]],
                )
            )
        if self.tta_forget:
            tables.append(
                Table(
                    "Forget accuracy under test-time augmentation",
                    ["view", *roles],
                    [[v, *(self.tta_forget[v][r].text() for r in roles)] for v in self.tta_forget],
                )
            )
        return tables

    def figures(self) -> dict[str, Callable[[], Any]]:
        return {"bars": self._bars}

    def _bars(self) -> Any:
        """Accuracy per split and model, with 95% intervals as error bars."""
        splits = [s for s in SPLIT_ORDER if s in self.accuracy]
        roles = self.roles()
        figure = new_figure(7, 3)
        axes = figure.add_subplot()
        width = 0.8 / len(roles)
        for i, role in enumerate(roles):
            values, errors = error_bars([self.accuracy[s][role] for s in splits])
            x = np.arange(len(splits)) + (i - (len(roles) - 1) / 2) * width
            axes.bar(x, values, width, yerr=errors, capsize=2, label=role, color=colour(role))
        axes.axhline(self.chance, color="black", linewidth=0.8, linestyle=":")
        axes.set_xticks(np.arange(len(splits)), [label(s) for s in splits])
        axes.set_ylabel("accuracy")
        axes.set_ylim(0, 1.05)
        axes.legend(loc="lower right", fontsize="small")
        return figure

    def key_numbers(self) -> dict[str, float | None]:
        return {
            "forget accuracy": self.accuracy["forget"]["unlearned"].value,
            "test accuracy": self.accuracy["test"]["unlearned"].value,
            "ToW": None if self.tug_of_war is None else self.tug_of_war.value,
        }

    @classmethod
    def comparison_figure(cls, evidence: Mapping[str, Self]) -> Any:
        """Forget, retain and test accuracy of every unlearned model, the reference and the
        original (those of the first audit)."""
        if not evidence:
            return None
        splits = ("forget", "retain", "test")
        first = next(iter(evidence.values())).accuracy
        rows = {"original": [first[s]["original"].value for s in splits]}
        if "reference" in first["forget"]:
            rows["reference"] = [first[s]["reference"].value for s in splits]
        for name, found in evidence.items():
            rows[name] = [found.accuracy[s]["unlearned"].value for s in splits]
        figure = new_figure(8, 3)
        axes = figure.add_subplot()
        width = 0.8 / len(rows)
        for i, (name, values) in enumerate(rows.items()):
            x = np.arange(len(splits)) + (i - (len(rows) - 1) / 2) * width
            axes.bar(x, [v or 0.0 for v in values], width, label=name)
        axes.set_xticks(np.arange(len(splits)), splits)
        axes.set_ylim(0, 1.05)
        axes.set_ylabel("accuracy")
        axes.legend(fontsize="x-small", ncols=2, loc="lower right")
        return figure


@register_check
class AccuracyCheck(Check):
    name = "accuracy"
    description = "accuracy on every split, per class and under test-time augmentation"
    needs = Needs(
        compare=True,
        reads=(
            Read("*"),
            *(Read("forget", view) for view in ("hflip", "vflip", "crop90")),
            Read("forget", "trigger"),  # the form the original learned it in, with a trigger
        ),
    )
    evidence = AccuracyEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        from unlearn_audit.functional.stats import reference_position
        from unlearn_audit.outputs import TTA_VIEWS

        roles = ctx.roles()
        splits = ctx.splits.names()
        table: dict[str, dict[str, Estimate]] = {split: {} for split in splits}
        per_class: dict[str, list[float | None]] = {}
        tta: dict[str, dict[str, Estimate]] = {view: {} for view in TTA_VIEWS}
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
        evidence = AccuracyEvidence(
            accuracy=table,
            per_class=per_class,
            tta_forget=tta,
            chance=1.0 / ctx.dataset.num_classes,
            classes=list(ctx.dataset.classes),
        )
        if ctx.references:
            from unlearn_audit.functional.forgetting import tug_of_war

            pairs = [
                (
                    ctx.outputs(ctx.unlearned, split).correct,
                    ctx.outputs(ctx.references[0], split).correct,
                )
                for split in ("forget", "retain", "test")
            ]
            evidence.tug_of_war = Estimate.of(*tug_of_war(*pairs, seed=ctx.config.seed))
        if ctx.forget_triggered:
            assert ctx.trigger is not None
            target = ctx.trigger.target
            evidence.trigger_target = target
            evidence.as_trained = {}
            for role, model in roles:
                triggered = ctx.outputs(model, "forget", "trigger")
                other = triggered.labels != target
                evidence.as_trained[role] = rate(triggered.predictions[other] == target)
        refs = [role for role, _ in roles if is_reference(role)]
        if len(refs) >= 2:
            evidence.reference_position = {
                split: ReferencePosition(
                    **reference_position(
                        table[split]["unlearned"].value, [table[split][r].value for r in refs]
                    )
                )
                for split in splits
            }
        return CheckResult(name=self.name, evidence=evidence)
