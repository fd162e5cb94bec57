"""saliency (seeds 001, 003): where the models look, before and after unlearning.

Grad-CAM with captum's ``LayerGradCam`` on the last convolution (or ``--conv-layer``), target
fixed to the true label (the backdoor target for triggered inputs). Departures from the paper
stated plainly: maps are *not* passed through ReLU before the numbers are taken
(``relu_attributions=False``), are upsampled bilinearly to the input size, and get no per-image
min-max scaling. Per sample: Spearman correlation and top-10% IoU between original and unlearned
maps on forget and on retain samples, the same for reference vs original; for triggers, the share
of positive map mass inside the trigger mask.

The maps come from ``ctx.collector.grad_cams`` (see :meth:`SaliencyCheck.cam_reads`): once per
model over the chosen samples, and from the store for the original and references when an earlier
audit computed them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from unlearn_audit.checks.base import CamRead, Check, CheckResult, Needs, register_check
from unlearn_audit.evidence import Estimate, Evidence, Table, label, ordered_roles
from unlearn_audit.figures import new_figure

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext

SAMPLES = 32
GRID = 4


@dataclass(frozen=True)
class CamGrid:
    """A few samples' inputs and each model's Grad-CAM maps, for the report's grid."""

    ids: list[int]
    inputs: list[Any]
    maps: dict[str, list[Any]]


@dataclass
class SaliencyEvidence(Evidence):
    """Agreement of Grad-CAM maps with the original's.

    Attributes:
        spearman: split -> pair (``unlearned_vs_original``, ...) -> mean per-sample Spearman
            correlation (interval).
        top10_iou: split -> pair -> mean IoU of the top 10% pixels (interval).
        grid: split -> a few samples' maps.
        trigger_mass: model role -> share of positive map mass inside the trigger (with a
            trigger).
    """

    TITLE: ClassVar[str] = "Saliency (Grad-CAM)"

    spearman: dict[str, dict[str, Estimate]]
    top10_iou: dict[str, dict[str, Estimate]]
    grid: dict[str, CamGrid]
    trigger_mass: dict[str, Estimate] | None = None

    def tables(self) -> list[Table]:
        tables = []
        for title, per_split in (
            ("Spearman correlation of Grad-CAM maps", self.spearman),
            ("Top-10% IoU of Grad-CAM maps", self.top10_iou),
        ):
            pairs = sorted({p for split in per_split.values() for p in split})
            tables.append(
                Table(
                    title,
                    ["split", *(label(p) for p in pairs)],
                    [
                        [s, *(per_split[s][p].text() if p in per_split[s] else "—" for p in pairs)]
                        for s in per_split
                    ],
                )
            )
        if self.trigger_mass:
            mass = self.trigger_mass
            tables.append(
                Table(
                    "Share of positive Grad-CAM mass inside the trigger",
                    ["model", "share"],
                    [[r, mass[r].text()] for r in ordered_roles(mass)],
                )
            )
        return tables

    def figures(self) -> dict[str, Callable[[], Any]]:
        return {split: functools.partial(_grid_figure, grid) for split, grid in self.grid.items()}


def _grid_figure(grid: CamGrid) -> Any:
    """Grad-CAM grid: input | original | unlearned | reference, one row per sample.

    Drawn as one mosaic image on one axes (each map coloured on its own symmetric scale, the
    input on its own range), which looks like a grid of panels and draws in a fraction of the
    time a grid of axes takes.
    """
    from matplotlib import colormaps

    roles = ordered_roles(grid.maps)
    titles = ["input", *roles]
    rows = len(grid.ids)
    first = np.asarray(grid.inputs[0], dtype=float)
    height, width = first.shape[-2:]
    gap = max(1, height // 8)
    mosaic = np.ones(((height + gap) * rows - gap, (width + gap) * len(titles) - gap, 4))
    for row in range(rows):
        image = np.asarray(grid.inputs[row], dtype=float)
        low, high = float(image.min()), float(image.max())
        scaled = (image - low) / ((high - low) or 1.0)
        if image.shape[0] == 1:
            tiles = [colormaps["gray"](scaled[0])]
        else:  # colour input: its own channels, scaled together
            rgb = np.transpose(scaled[:3], (1, 2, 0))
            tiles = [np.concatenate([rgb, np.ones((*rgb.shape[:2], 1))], axis=-1)]
        for role in roles:
            data = np.asarray(grid.maps[role][row], dtype=float)
            limit = float(np.max(np.abs(data))) or 1.0
            tiles.append(colormaps["RdBu_r"]((data / limit + 1) / 2))
        top = row * (height + gap)
        for col, tile in enumerate(tiles):
            left = col * (width + gap)
            mosaic[top : top + height, left : left + width] = tile
    figure = new_figure(1.6 * len(titles), 1.6 * rows)
    axes = figure.add_subplot()
    axes.imshow(mosaic, interpolation="nearest")
    axes.set_xticks([col * (width + gap) + (width - 1) / 2 for col in range(len(titles))])
    axes.set_xticklabels(titles, fontsize="small")
    axes.xaxis.tick_top()
    axes.set_yticks([row * (height + gap) + (height - 1) / 2 for row in range(rows)])
    axes.set_yticklabels([f"id {i}" for i in grid.ids], fontsize="x-small")
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    return figure


@register_check
class SaliencyCheck(Check):
    name = "saliency"
    description = "Grad-CAM agreement with the original on forget and retain samples"
    needs = Needs(conv=True, gradients=True, compare=True)
    evidence = SaliencyEvidence

    def cam_reads(self, ctx: AuditContext) -> list[CamRead]:
        """One read of true-label maps over the chosen forget and retain samples together,
        and, with a trigger, one of triggered test samples for the trigger's target."""
        samples = np.concatenate(list(_samples(ctx).values()))
        reads = [CamRead(samples, ctx.dataset.labels[samples])]
        if ctx.trigger is not None:
            test = ctx.splits.test
            others = test[ctx.dataset.labels[test] != ctx.trigger.target][:SAMPLES]
            reads.append(CamRead(others, np.full(len(others), ctx.trigger.target), "trigger"))
        return reads

    def run(self, ctx: AuditContext) -> CheckResult:
        from unlearn_audit.functional.saliency import spearman_per_sample, topk_iou

        roles = [(r, m) for r, m in ctx.roles() if r in ("original", "unlearned", "reference")]
        reads = self.cam_reads(ctx)
        clean = reads[0]
        maps = {
            role: ctx.collector.grad_cams(model, clean.ids, clean.targets) for role, model in roles
        }
        evidence = SaliencyEvidence(spearman={}, top10_iou={}, grid={})
        start = 0
        for split, ids in _samples(ctx).items():
            rows = slice(start, start + len(ids))
            start += len(ids)
            evidence.spearman[split], evidence.top10_iou[split] = {}, {}
            for role in maps:
                if role == "original":
                    continue
                pair = f"{role}_vs_original"
                rho = spearman_per_sample(maps[role][rows], maps["original"][rows])
                iou = topk_iou(maps[role][rows], maps["original"][rows], fraction=0.1)
                evidence.spearman[split][pair] = Estimate.of(*_mean(rho, ctx.config.seed))
                evidence.top10_iou[split][pair] = Estimate.of(*_mean(iou, ctx.config.seed))
            x, _ = ctx.dataset.load(ids[:GRID])
            evidence.grid[split] = CamGrid(
                ids=ids[:GRID].tolist(),
                inputs=x.numpy().tolist(),
                maps={role: m[rows][:GRID].tolist() for role, m in maps.items()},
            )
        if ctx.trigger is not None:
            evidence.trigger_mass = self._trigger_mass(ctx, roles, reads[1])
        return CheckResult(name=self.name, evidence=evidence)

    def _trigger_mass(
        self, ctx: AuditContext, roles: list[tuple[str, Any]], read: CamRead
    ) -> dict[str, Estimate]:
        from unlearn_audit.functional.saliency import mask_mass

        assert ctx.trigger is not None
        mask = ctx.trigger.mask(ctx.dataset.input_shape)
        result = {}
        for role, model in roles:
            maps = ctx.collector.grad_cams(model, read.ids, read.targets, "trigger")
            result[role] = Estimate.of(*_mean(mask_mass(maps, mask), ctx.config.seed))
        return result


def _samples(ctx: AuditContext) -> dict[str, np.ndarray]:
    """The forget and retain samples whose maps are compared: up to ``SAMPLES`` of each,
    drawn with the audit's seed, sorted."""
    rng = np.random.default_rng(ctx.config.seed)
    chosen = {}
    for split in ("forget", "retain"):
        ids = ctx.splits.get(split)
        chosen[split] = np.sort(rng.choice(ids, size=min(SAMPLES, len(ids)), replace=False))
    return chosen


def _mean(values: np.ndarray, seed: int) -> tuple[float, float, float]:
    from unlearn_audit.functional.stats import mean_with_interval

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    return mean_with_interval(finite, seed=seed)
