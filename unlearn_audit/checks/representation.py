"""representation (seed 000 and beyond): is the forgotten knowledge still in the features?

- ERM mask metrics (seed 000): CSI and L1-density of the real mask matrix G for models trained
  with the entanglement-reduced mask layer.
- Class-channel relevance (any CNN): the mean ReLU activation of each last-conv channel per class
  on test samples, each row scaled to max 1, summarised by CSI (seed 000's sum over ordered
  pairs of different classes of row cosine similarities, and its mean over pairs) and
  L1-density ||G||_1 / (C K); before (original) and after (unlearned), with the reference.
- Linear CKA between each model's penultimate features and the original's, on forget and on
  retain samples. A retrained model keeps a high CKA on retain but a clearly lower one on a
  forgotten class; an output-level method (head retrained or masked) keeps CKA = 1.0. On forget
  with an interval: +- 1.96 bootstrap standard errors over the samples.
- Few-shot linear probe: logistic regression on frozen features with k = 2 and 5 labelled
  examples per class (several draws) from the population, scored on test: recall of the
  forgotten classes (class requests) or overall accuracy (sample requests). Few-shot on
  purpose: with thousands of examples even a retrained model's features separate an easy class.
  Its interval is a bootstrap over the draws (which shots were drawn is most of its noise).
- Every reference is measured; ``knowledge_removed`` compares the unlearned model with their
  mean and the widest of their intervals (two retrained models' CKA to the original differ by
  up to 0.13 on digits, class 3, seeds 0-3: a single reference is a noisy yardstick).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check
from unlearn_audit.evidence import (
    Estimate,
    Evidence,
    Gap,
    NoReference,
    Read,
    Table,
    Unmeasurable,
    is_reference,
    ordered_roles,
)
from unlearn_audit.figures import new_figure

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel

SHOTS = (2, 5)
DRAWS = 5
_ROLE_REMEDY = {
    "unlearned": "the unlearned model (--unlearned-arch)",
    "original": "the original (--arch)",
    "reference": "the reference (--reference-arch)",
}
MAX_CKA_SAMPLES = 1000
CKA_SPLITS = ("forget", "retain")
# bootstrap resamples of the forget-split CKA's interval (each one CKA: 0.5 s in all on 1,000
# samples of 128 features, 0.03 s on 98)
CKA_RESAMPLES = 200


@dataclass(frozen=True)
class ChannelSummary:
    """CSI (sum over ordered class pairs, and its mean) and L1-density of a class-channel
    matrix."""

    csi: float
    csi_mean: float
    l1_density: float


@dataclass
class RepresentationEvidence(Evidence):
    """What the features still know.

    Attributes:
        cka: model role -> split (``forget``, ``retain``) -> linear CKA to the original's
            features.
        probe: model role -> few-shot probe score, mean over k (forget-class recall for class
            requests, accuracy otherwise).
        probe_shots: model role -> ``k2``/``k5`` -> the score at that k.
        probe_measure: What the probe score is.
        relevance: model role -> summary of its class-channel relevance (with a convolution).
        relevance_matrices: model role -> the matrix (classes x channels).
        erm: model role -> summary of its ERM mask G (ERM models).
        erm_masks: model role -> the mask G.
        knowledge: model role -> the two measures of the knowledge claim with 95% intervals:
            ``probe`` (the probe score with a percentile bootstrap interval over its draws, both
            k together: the noise of which shots were drawn) and ``cka`` (CKA on the forget
            split, +- 1.96 bootstrap standard errors over its samples). Every reference has
            them; the claim's yardstick is their mean with the widest interval, as for the
            membership attacks.
    """

    TITLE: ClassVar[str] = "Representation"

    cka: dict[str, dict[str, float]]
    probe: dict[str, float]
    probe_shots: dict[str, dict[str, float]]
    probe_measure: str
    relevance: dict[str, ChannelSummary] | None = None
    relevance_matrices: dict[str, list[list[float]]] | None = None
    erm: dict[str, ChannelSummary] | None = None
    erm_masks: dict[str, list[list[float]]] | None = None
    knowledge: dict[str, dict[str, Estimate]] = field(default_factory=dict)

    MEASURES: ClassVar[tuple[str, ...]] = ("knowledge",)

    def gaps(self, measure: str, request: str) -> list[Gap]:
        if measure != "knowledge":
            return super().gaps(measure, request)
        if request != "class":
            raise Unmeasurable(
                "class-level evidence; for sample requests see no_membership_leak",
                "not_applicable",
            )
        references = [r for r in ordered_roles(self.probe) if is_reference(r)]
        if not references or any("forget" not in self.cka.get(r, {}) for r in references):
            raise NoReference
        return [
            Gap(
                "few-shot probe recall of the forgotten class",
                self._estimate("unlearned", "probe"),
                Estimate.pooled([self._estimate(r, "probe") for r in references]),
                short="probe",
            ),
            Gap(
                "CKA to the original on the forgotten class",
                self._estimate("unlearned", "cka"),
                Estimate.pooled([self._estimate(r, "cka") for r in references]),
                short="CKA",
            ),
        ]

    def _estimate(self, role: str, measure: str) -> Estimate:
        """The measure with its interval (a point without one in results written before
        intervals were kept)."""
        found = self.knowledge.get(role, {}).get(measure)
        if found is not None:
            return found
        return Estimate(self.probe[role] if measure == "probe" else self.cka[role]["forget"])

    def tables(self) -> list[Table]:
        tables = []
        for title, part in (("ERM mask G", self.erm), ("Class-channel relevance", self.relevance)):
            if part:
                tables.append(
                    Table(
                        title,
                        ["model", "CSI", "CSI mean", "L1-density"],
                        [
                            [
                                r,
                                _text(part[r].csi),
                                _text(part[r].csi_mean),
                                _text(part[r].l1_density),
                            ]
                            for r in ordered_roles(part)
                        ],
                    )
                )
        tables.append(
            Table(
                "Linear CKA to the original's features",
                ["model", "forget", "retain"],
                [
                    [r, self._estimate(r, "cka").text(), _text(self.cka[r].get("retain"))]
                    for r in ordered_roles(self.cka)
                ],
            )
        )
        tables.append(
            Table(
                f"Few-shot probe ({self.probe_measure}, k = 2 and 5)",
                ["model", "mean over k"],
                [[r, self._estimate(r, "probe").text()] for r in ordered_roles(self.probe)],
            )
        )
        return tables

    def figures(self) -> dict[str, Callable[[], Any]]:
        return (
            {"channels": self._channels_figure} if self.erm_masks or self.relevance_matrices else {}
        )

    def _channels_figure(self) -> Any:
        """Class-channel relevance matrices (or ERM masks G) per model, before and after."""
        matrices = self.erm_masks or self.relevance_matrices
        assert matrices
        roles = ordered_roles(matrices)
        figure = new_figure(3.2 * len(roles), 2.6)
        image = None
        for i, role in enumerate(roles):
            axes = figure.add_subplot(1, len(roles), i + 1)
            image = axes.imshow(
                np.asarray(matrices[role]), aspect="auto", cmap="viridis", vmin=0, vmax=1
            )
            axes.set_title(role)
            axes.set_xlabel("channel")
            if i == 0:
                axes.set_ylabel("class")
        figure.colorbar(image, ax=figure.axes, shrink=0.8)
        return figure


def _text(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _summary(matrix: np.ndarray) -> ChannelSummary:
    from unlearn_audit.functional.representation import csi, l1_density

    total, mean = csi(matrix)
    return ChannelSummary(total, mean, l1_density(matrix))


@register_check
class RepresentationCheck(Check):
    name = "representation"
    description = "class-channel relevance (CSI, L1-density), CKA to the original, few-shot probe"
    needs = Needs(
        features=True,
        compare=True,
        reads=tuple(Read(split) for split in ("forget", "retain", "population", "test")),
    )
    evidence = RepresentationEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        from unlearn_audit.functional.representation import class_channel_relevance
        from unlearn_audit.models.erm import erm_mask

        roles = [
            (r, m) for r, m in ctx.roles() if r in ("original", "unlearned") or is_reference(r)
        ]
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
        probe, shots, measure, probe_estimates = self._probe(ctx, roles)
        cka, cka_estimates = self._cka(ctx, roles)
        evidence = RepresentationEvidence(
            cka=cka,
            probe=probe,
            probe_shots=shots,
            probe_measure=measure,
            knowledge={
                role: {"probe": probe_estimates[role], "cka": cka_estimates[role]}
                for role in cka_estimates
            },
        )
        notes: list[str] = []
        if all(out.channels is not None for out in outs.values()):
            matrices = {
                role: class_channel_relevance(
                    out.channels, out.labels, num_classes=ctx.dataset.num_classes
                )
                for role, out in outs.items()
            }
            evidence.relevance = {role: _summary(m) for role, m in matrices.items()}
            evidence.relevance_matrices = {role: m.tolist() for role, m in matrices.items()}
        else:
            notes.append("no convolution: class-channel relevance skipped")
        masks = {role: mask for role, model in roles if (mask := erm_mask(model)) is not None}
        if masks:
            evidence.erm = {role: _summary(mask) for role, mask in masks.items()}
            evidence.erm_masks = {role: mask.tolist() for role, mask in masks.items()}
        else:
            notes.append("no ERM mask layer: CSI and L1-density come from channel relevance")
        return CheckResult(name=self.name, evidence=evidence, notes=notes)

    def _cka(
        self, ctx: AuditContext, roles: list[tuple[str, Any]]
    ) -> tuple[dict[str, dict[str, float]], dict[str, Estimate]]:
        from unlearn_audit.functional.representation import linear_cka, linear_cka_interval

        rng = np.random.default_rng(ctx.config.seed)
        keep: dict[str, np.ndarray] = {}
        for split in CKA_SPLITS:
            keep[split] = np.arange(len(ctx.splits.get(split)))
            if len(keep[split]) > MAX_CKA_SAMPLES:
                chosen = rng.choice(keep[split], size=MAX_CKA_SAMPLES, replace=False)
                keep[split] = np.sort(chosen)

        def cka(model: LoadedModel) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for split in CKA_SPLITS:
                features = ctx.outputs(model, split).features
                base = ctx.outputs(ctx.original, split).features
                assert features is not None and base is not None
                rows = keep[split]
                if split == "forget":
                    found[split], *interval = linear_cka_interval(
                        features[rows], base[rows], n_resamples=CKA_RESAMPLES, seed=ctx.config.seed
                    )
                    found["forget_interval"] = interval
                else:
                    found[split] = linear_cka(features[rows], base[rows])
            return found

        kept = {
            role: ctx.kept(
                "cka",
                [model, ctx.original],
                [(split, "clean") for split in CKA_SPLITS],
                partial(cka, model),
                max_samples=MAX_CKA_SAMPLES,
                resamples=CKA_RESAMPLES,
                code=_code(),
            )
            for role, model in roles
            if role != "original"
        }
        values = {role: {s: found[s] for s in CKA_SPLITS} for role, found in kept.items()}
        estimates = {
            role: Estimate.of(found["forget"], *found["forget_interval"])
            for role, found in kept.items()
        }
        return values, estimates

    def _probe(
        self, ctx: AuditContext, roles: list[tuple[str, Any]]
    ) -> tuple[dict[str, float], dict[str, dict[str, float]], str, dict[str, Estimate]]:
        from unlearn_audit.functional.representation import few_shot_probe
        from unlearn_audit.functional.stats import mean_with_interval

        classes = list(ctx.splits.forget_classes)
        summary: dict[str, float] = {}
        detail: dict[str, dict[str, float]] = {}
        estimates: dict[str, Estimate] = {}
        for role, model in roles:

            def probes(model: LoadedModel = model) -> dict[str, Any]:
                pool, test = ctx.outputs(model, "population"), ctx.outputs(model, "test")
                assert pool.features is not None and test.features is not None
                values: dict[str, float] = {}
                draws: list[float] = []
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
                        per_draw = np.mean([probe["recall_draws"][c] for c in classes], axis=0)
                    else:
                        value = float(probe["accuracy"])
                        per_draw = np.asarray(probe["accuracy_draws"])
                    values[f"k{shots}"] = value
                    draws.extend(float(v) for v in per_draw)
                return {"shots": values, "draws": draws}

            found = ctx.kept(
                "probes",
                [model],
                [("population", "clean"), ("test", "clean")],
                probes,
                classes=[int(c) for c in ctx.splits.forget_classes],
                shots=list(SHOTS),
                draws=DRAWS,
                code=_code(),
            )
            detail[role] = found["shots"]
            summary[role] = float(np.mean(list(detail[role].values())))
            draws = np.array([math.nan if v is None else v for v in found["draws"]], dtype=float)
            if draws.size and np.isfinite(draws).all():
                _, low, high = mean_with_interval(draws, seed=ctx.config.seed)
                estimates[role] = Estimate.of(summary[role], low, high)
            else:  # a class without test samples: no recall to resample
                estimates[role] = Estimate.of(summary[role])
        return summary, detail, "forget-class recall" if classes else "accuracy", estimates


def _code() -> str:
    """Fingerprint of the code behind the check's stored results."""
    from unlearn_audit._hashing import code_fingerprint
    from unlearn_audit.functional import representation

    return code_fingerprint(__file__, representation.__file__)
