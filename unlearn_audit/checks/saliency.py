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

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam

from unlearn_audit.checks.base import Check, CheckResult, Needs, interval, register_check
from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.saliency import mask_mass, spearman_per_sample, topk_iou
from unlearn_audit.functional.stats import mean_with_interval
from unlearn_audit.models.checkpoints import logits_agree
from unlearn_audit.models.layers import get_layer
from unlearn_audit.outputs import readable_layers

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel

SAMPLES = 32
GRID = 4


def grad_cam(
    model: LoadedModel, x: torch.Tensor, targets: torch.Tensor, *, conv_layer: str | None = None
) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` of ``model`` for ``targets`` at its last convolution."""
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


@register_check
class SaliencyCheck(Check):
    name = "saliency"
    description = "Grad-CAM agreement with the original on forget and retain samples"
    needs = Needs(conv=True, gradients=True, compare=True)

    def run(self, ctx: AuditContext) -> CheckResult:
        rng = np.random.default_rng(ctx.config.seed)
        roles = [(r, m) for r, m in ctx.roles() if r in ("original", "unlearned", "reference")]
        metrics: dict[str, Any] = {"spearman": {}, "top10_iou": {}}
        grid: dict[str, Any] = {}
        for split in ("forget", "retain"):
            ids = ctx.splits.get(split)
            ids = np.sort(rng.choice(ids, size=min(SAMPLES, len(ids)), replace=False))
            x, y = ctx.dataset.load(ids)
            maps = {
                role: grad_cam(model, x, y, conv_layer=ctx.collector.conv_layer)
                for role, model in roles
            }
            metrics["spearman"][split], metrics["top10_iou"][split] = {}, {}
            for role in maps:
                if role == "original":
                    continue
                pair = f"{role}_vs_original"
                rho = spearman_per_sample(maps[role], maps["original"])
                iou = topk_iou(maps[role], maps["original"], fraction=0.1)
                metrics["spearman"][split][pair] = interval(*_mean(rho, ctx.config.seed))
                metrics["top10_iou"][split][pair] = interval(*_mean(iou, ctx.config.seed))
            grid[split] = {
                "ids": ids[:GRID].tolist(),
                "inputs": x[:GRID].numpy().tolist(),
                "maps": {role: m[:GRID].tolist() for role, m in maps.items()},
            }
        if ctx.trigger is not None:
            metrics["trigger_mass"] = self._trigger_mass(ctx, roles)
        return CheckResult(name=self.name, metrics=metrics, figures={"grid": grid})

    def _trigger_mass(self, ctx: AuditContext, roles: list[tuple[str, Any]]) -> dict[str, Any]:
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
            result[role] = interval(*_mean(share, ctx.config.seed))
        return result


def _mean(values: np.ndarray, seed: int) -> tuple[float, float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    return mean_with_interval(finite, seed=seed)
