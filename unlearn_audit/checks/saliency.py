"""saliency (seeds 001, 003): where the models look, before and after unlearning.

Grad-CAM with captum's ``LayerGradCam`` on the last convolution (or ``--conv-layer``), target
fixed to the true label (the backdoor target for triggered inputs). Departures from the paper
stated plainly: maps are *not* passed through ReLU before the numbers are taken
(``relu_attributions=False``), are upsampled bilinearly to the input size, and get no per-image
min-max scaling. Per sample: Spearman correlation and top-10% IoU between original and unlearned
maps on forget and on retain samples, the same for reference vs original; for triggers, the share
of positive map mass inside the trigger mask.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check
from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import Estimate, Evidence, Table, label, ordered_roles
from unlearn_audit.figures import new_figure

if TYPE_CHECKING:
    import torch

    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel

SAMPLES = 32
GRID = 4


def grad_cam(
    model: LoadedModel, x: torch.Tensor, targets: torch.Tensor, *, conv_layer: str | None = None
) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` of ``model`` for ``targets`` at its last convolution."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    from unlearn_audit.models.checkpoints import logits_agree
    from unlearn_audit.models.layers import get_layer
    from unlearn_audit.outputs import readable_layers

    layers, reason = readable_layers(model, conv_layer=conv_layer)
    if layers is None or layers.conv is None:
        raise ConfigError(reason or "the model has no convolution for Grad-CAM")
    module = model.hookable
    assert module is not None  # readable_layers found layers
    module = module.eval()
    device = next(iter(module.parameters())).device
    if module is not model.module:  # a TorchScript model read through its eager view
        with torch.inference_mode():
            inputs = x.to(device)
            if not logits_agree(model.module.to(device)(inputs), module(inputs)):
                raise ConfigError(
                    "the TorchScript model's eager view disagrees with its own logits, so its "
                    "layers are not read"
                )
    cam = LayerGradCam(module, get_layer(module, layers.conv))
    maps = cam.attribute(x.to(device), target=targets.to(device), relu_attributions=False)
    maps = LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return maps.detach().sum(dim=1).cpu().numpy().astype(np.float64)


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
    """Grad-CAM grid: input | original | unlearned | reference, one row per sample."""
    roles = ordered_roles(grid.maps)
    rows = len(grid.ids)
    figure = new_figure(1.6 * (1 + len(roles)), 1.6 * rows)
    for row in range(rows):
        image = np.asarray(grid.inputs[row], dtype=float)
        image = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
        panels = [("input", image, "gray")] + [
            (role, np.asarray(grid.maps[role][row], dtype=float), "RdBu_r") for role in roles
        ]
        for col, (title, data, cmap) in enumerate(panels):
            axes = figure.add_subplot(rows, len(panels), row * len(panels) + col + 1)
            if cmap == "RdBu_r":
                limit = float(np.max(np.abs(data))) or 1.0
                axes.imshow(data, cmap=cmap, vmin=-limit, vmax=limit)
            else:
                axes.imshow(data, cmap=cmap)
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(title, fontsize="small")
            if col == 0:
                axes.set_ylabel(f"id {grid.ids[row]}", fontsize="x-small")
    return figure


@register_check
class SaliencyCheck(Check):
    name = "saliency"
    description = "Grad-CAM agreement with the original on forget and retain samples"
    needs = Needs(conv=True, gradients=True, compare=True)
    evidence = SaliencyEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        from unlearn_audit.functional.saliency import spearman_per_sample, topk_iou

        rng = np.random.default_rng(ctx.config.seed)
        roles = [(r, m) for r, m in ctx.roles() if r in ("original", "unlearned", "reference")]
        evidence = SaliencyEvidence(spearman={}, top10_iou={}, grid={})
        for split in ("forget", "retain"):
            ids = ctx.splits.get(split)
            ids = np.sort(rng.choice(ids, size=min(SAMPLES, len(ids)), replace=False))
            x, y = ctx.dataset.load(ids)
            maps = {
                role: grad_cam(model, x, y, conv_layer=ctx.collector.conv_layer)
                for role, model in roles
            }
            evidence.spearman[split], evidence.top10_iou[split] = {}, {}
            for role in maps:
                if role == "original":
                    continue
                pair = f"{role}_vs_original"
                rho = spearman_per_sample(maps[role], maps["original"])
                iou = topk_iou(maps[role], maps["original"], fraction=0.1)
                evidence.spearman[split][pair] = Estimate.of(*_mean(rho, ctx.config.seed))
                evidence.top10_iou[split][pair] = Estimate.of(*_mean(iou, ctx.config.seed))
            evidence.grid[split] = CamGrid(
                ids=ids[:GRID].tolist(),
                inputs=x[:GRID].numpy().tolist(),
                maps={role: m[:GRID].tolist() for role, m in maps.items()},
            )
        if ctx.trigger is not None:
            evidence.trigger_mass = self._trigger_mass(ctx, roles)
        return CheckResult(name=self.name, evidence=evidence)

    def _trigger_mass(self, ctx: AuditContext, roles: list[tuple[str, Any]]) -> dict[str, Estimate]:
        import torch

        from unlearn_audit.functional.saliency import mask_mass

        trigger = ctx.trigger
        assert trigger is not None
        test = ctx.splits.test
        others = test[ctx.dataset.labels[test] != trigger.target][:SAMPLES]
        x, _ = ctx.dataset.load(others)
        targets = torch.full((len(others),), trigger.target)
        mask = trigger.mask(ctx.dataset.input_shape)
        result = {}
        for role, model in roles:
            share = mask_mass(
                grad_cam(model, trigger.apply(x), targets, conv_layer=ctx.collector.conv_layer),
                mask,
            )
            result[role] = Estimate.of(*_mean(share, ctx.config.seed))
        return result


def _mean(values: np.ndarray, seed: int) -> tuple[float, float, float]:
    from unlearn_audit.functional.stats import mean_with_interval

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    return mean_with_interval(finite, seed=seed)
