"""margins (U-LiRA, Hayes et al. 2024; KLOM, Georgiev et al. 2024): is each forget sample
treated the way models retrained without it treat it?

A model's margin on a sample is its true-class logit minus the logsumexp of the other logits.
Each forget sample's margin is standardised against the references' margins of that sample
(one pooled variance with fewer than 8 references; with a single reference, the spread of all
its margins): about N(0, 1) for a model drawn like the references, far above 0 where the model
still fits the sample (under-forgetting), far below where it pushes it away (over-forgetting).

Reported for the original and the unlearned model against every reference, and for each
reference against the others (leave-one-out: what a retrained model scores, the null the
histogram shows): the mean standardised margin with its bootstrap interval, the shares beyond
+2 and below -2 (Wilson intervals), and a KLOM-style binned KL divergence between the model's
margins and the references' margins on the same samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, rate, register_check
from unlearn_audit.evidence import (
    Estimate,
    Evidence,
    Read,
    Table,
    is_reference,
    ordered_roles,
    reference_role,
)
from unlearn_audit.figures import colour, new_figure

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext

BEYOND = 2.0  # a standardised margin beyond +-2 is under- (over-) forgetting
EDGES = np.linspace(-8.0, 8.0, 33)  # histogram bins; values outside fall in the end bins
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class MarginSummary:
    """One model's standardised forget margins.

    Attributes:
        mean: Mean standardised margin, with its bootstrap interval.
        above: Share above +2 (under-forgetting), Wilson interval.
        below: Share below -2 (over-forgetting), Wilson interval.
        kl: Binned KL divergence (nats) of the model's margins from the references'.
        histogram: Counts of the standardised margins in the bins of ``EDGES`` (values
            beyond the ends counted in the end bins).
        against: The references it is standardised against.
    """

    mean: Estimate
    above: Estimate
    below: Estimate
    kl: float
    histogram: list[int]
    against: list[str]


@dataclass
class MarginsEvidence(Evidence):
    """Standardised forget margins of every model.

    Attributes:
        by_role: model role -> its summary.
        edges: The histogram's bin edges.
        samples: Number of forget samples.
    """

    TITLE: ClassVar[str] = "Reference-distribution test (per-example margins)"

    by_role: dict[str, MarginSummary]
    edges: list[float]
    samples: int

    def tables(self) -> list[Table]:
        return [
            Table(
                f"Forget margins standardised against the references ({self.samples} samples; "
                "a retrained model scores about 0, with about 2.5% beyond each of +2 and -2)",
                ["model", "against", "mean", "share > +2", "share < -2", "binned KL"],
                [
                    [
                        role,
                        ", ".join(s.against),
                        s.mean.text(),
                        s.above.text(),
                        s.below.text(),
                        f"{s.kl:.3f}",
                    ]
                    for role in ordered_roles(self.by_role)
                    for s in [self.by_role[role]]
                ],
            )
        ]

    def figures(self) -> dict[str, Callable[[], Any]]:
        return {"histogram": self._histogram}

    def _histogram(self) -> Any:
        """The unlearned model's and the original's standardised margins against the
        references' own (leave-one-out), the null a retrained model follows."""
        figure = new_figure(6, 3)
        axes = figure.add_subplot()
        centres = (np.asarray(self.edges[:-1]) + np.asarray(self.edges[1:])) / 2
        width = float(self.edges[1] - self.edges[0])
        null = [s.histogram for r, s in self.by_role.items() if is_reference(r)]
        if null:
            counts = np.sum(null, axis=0)
            axes.bar(
                centres,
                counts / max(counts.sum(), 1),
                width,
                color=colour("reference"),
                alpha=0.4,
                label="references, leave-one-out (null)",
            )
        for role in ("original", "unlearned"):
            if role in self.by_role:
                counts = np.asarray(self.by_role[role].histogram)
                axes.step(
                    centres,
                    counts / max(counts.sum(), 1),
                    where="mid",
                    color=colour(role),
                    label=role,
                )
        for x in (-BEYOND, BEYOND):
            axes.axvline(x, color="black", linewidth=0.8, linestyle=":")
        axes.set_xlabel("standardised margin on forget samples")
        axes.set_ylabel("share of samples")
        axes.legend(fontsize="x-small")
        return figure

    def key_numbers(self) -> dict[str, float | None]:
        unlearned = self.by_role.get("unlearned")
        return {"mean standardised margin": None if unlearned is None else unlearned.mean.value}


@register_check
class MarginsCheck(Check):
    name = "margins"
    description = "forget margins standardised against the references, per example (U-LiRA/KLOM)"
    needs = Needs(references=True, reads=(Read("forget"),))
    evidence = MarginsEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        from unlearn_audit.functional.forgetting import binned_kl, margins, standardised_margins
        from unlearn_audit.functional.stats import mean_with_interval

        def margin(model: Any) -> np.ndarray:
            out = ctx.outputs(model, "forget")
            return margins(out.logits, out.labels)

        refs = {reference_role(i): margin(r) for i, r in enumerate(ctx.references)}
        others = {role: [r for r in refs if r != role] for role in refs}
        against = {"original": list(refs), "unlearned": list(refs)}
        against |= {role: others[role] for role in refs if others[role]}
        values = {"original": margin(ctx.original), "unlearned": margin(ctx.unlearned)} | refs
        by_role = {}
        for role, yardstick in against.items():
            reference_margins = np.stack([refs[r] for r in yardstick])
            z = standardised_margins(values[role], reference_margins)
            mean, low, high = mean_with_interval(
                z, seed=ctx.config.seed, n_resamples=BOOTSTRAP_RESAMPLES
            )
            by_role[role] = MarginSummary(
                mean=Estimate.of(mean, low, high),
                above=rate(z > BEYOND),
                below=rate(z < -BEYOND),
                kl=binned_kl(values[role], reference_margins.ravel()),
                histogram=np.histogram(np.clip(z, EDGES[0], EDGES[-1]), EDGES)[0].tolist(),
                against=yardstick,
            )
        notes = []
        if len(refs) < 2:
            notes.append(
                "one reference: no reference is scored against the others, so there is no null "
                "to read the unlearned model's margins against (--references 2)"
            )
        evidence = MarginsEvidence(
            by_role=by_role, edges=EDGES.tolist(), samples=len(ctx.splits.forget)
        )
        return CheckResult(name=self.name, evidence=evidence, notes=notes)
