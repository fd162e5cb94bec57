"""relearn (seeds 000, 003): how fast does the forgotten behaviour come back?

A copy of the model is fine-tuned with a fixed gentle recipe (Adam 1e-4, batch 32) on a small
part of the forget set mixed with retain samples, and its accuracy on held-out forget data (the
forget-class test samples for class requests, the rest of the forget set otherwise) is measured
every few steps. Relearn time is the first step at which it reaches half the original's accuracy
there (training stops there); capped, and "not reached" is reported as such. The same probe on
the reference is the yardstick.

Caveat (METRICS.md): an output-level method can relearn *slower* than the reference, so relearn
time alone never certifies knowledge removal. The probe is therefore also run with the classifier
head re-initialised (and fitted on retain alone, features frozen) on both models ("feature
relearn"), which exposes knowledge kept in the features.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from unlearn_audit._hashing import fingerprint_ids
from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check
from unlearn_audit.functional.relearn import relearn_time
from unlearn_audit.loop import StepState, accuracy, fit
from unlearn_audit.models.layers import get_layer
from unlearn_audit.outputs import readable_layers
from unlearn_audit.recipe import Recipe

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel

RECIPE = Recipe(
    optimizer="adam", lr=1e-4, batch_size=32, weight_decay=0.0, schedule="constant", epochs=1000
)
WARMUP = Recipe(
    optimizer="adam", lr=1e-3, batch_size=64, weight_decay=0.0, schedule="constant", epochs=2
)
MAX_STEPS = 300
EVAL_EVERY = 10
FORGET_FRACTION = 0.1
RETAIN_PER_FORGET = 4
THRESHOLD = 0.5


def _curve(
    ctx: AuditContext,
    module: nn.Module,
    train_ids: np.ndarray,
    eval_ids: np.ndarray,
    target: float,
    seed: int,
) -> tuple[list[int], list[float]]:
    """Accuracy on ``eval_ids`` every few steps, until it reaches ``target`` or the cap."""
    steps, accs = [0], [accuracy(module, ctx.dataset, eval_ids)]
    if accs[0] >= target:
        return steps, accs

    def probe(state: StepState) -> bool:
        if state.step % EVAL_EVERY == 0:
            steps.append(state.step)
            accs.append(accuracy(state.model, ctx.dataset, eval_ids))
            return accs[-1] >= target or state.step >= MAX_STEPS
        return False

    fit(
        module,
        ctx.dataset,
        train_ids,
        RECIPE,
        seed=seed,
        device=ctx.device,
        on_step=probe,
        progress=False,
        desc="relearn",
    )
    return steps, accs


def _fresh_head(ctx: AuditContext, model: LoadedModel, seed: int) -> nn.Module | None:
    """A copy of ``model`` whose head (the last Linear) is re-initialised and then fitted on
    retain alone, features frozen: every class but the forgotten ones is back, and the
    relearn that follows shows how fast the features let the forgotten ones return. (Without
    the warm-up a random head may call every input the forgotten class at step 0.)"""
    layers, _ = readable_layers(model)  # the head is the last Linear, whatever --feature-layer
    if layers is None or layers.features_from != "input" or model.is_compiled:
        return None  # (a TorchScript model's head lives in compiled code)
    module = copy.deepcopy(model.module)
    head = get_layer(module, layers.features)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head.reset_parameters()  # type: ignore[operator]
    head_params = {id(p) for p in head.parameters()}
    for param in module.parameters():
        param.requires_grad = id(param) in head_params
    warmed = fit(
        module,
        ctx.dataset,
        ctx.splits.retain,
        WARMUP,
        seed=seed,
        device=ctx.device,
        progress=False,
        desc="head warm-up",
    ).model
    for param in warmed.parameters():
        param.requires_grad = True
    return warmed


@register_check
class RelearnCheck(Check):
    name = "relearn"
    description = "fine-tuning steps until the forgotten behaviour returns, vs the reference"
    needs = Needs(references=True, training=True)

    def run(self, ctx: AuditContext) -> CheckResult:
        rng = np.random.default_rng(ctx.config.seed)
        forget = ctx.splits.forget
        n_relearn = max(1, round(FORGET_FRACTION * len(forget)))
        relearn_ids = np.sort(rng.choice(forget, size=n_relearn, replace=False))
        if ctx.is_class_request:
            eval_ids = ctx.splits.test_forget_class
        else:
            eval_ids = np.setdiff1d(forget, relearn_ids)
        if eval_ids is None or len(eval_ids) == 0:
            return CheckResult.not_applicable(self.name, "no held-out forget data to measure on")
        retain = rng.choice(
            ctx.splits.retain,
            size=min(len(ctx.splits.retain), RETAIN_PER_FORGET * n_relearn),
            replace=False,
        )
        train_ids = np.concatenate([relearn_ids, retain])
        target = THRESHOLD * accuracy(ctx.original.module, ctx.dataset, eval_ids)
        models = {"unlearned": ctx.unlearned, "reference": ctx.references[0]}
        metrics: dict[str, Any] = {
            "threshold": target,
            "max_steps": MAX_STEPS,
            "relearn_samples": int(n_relearn),
            "retain_samples": len(retain),
            "eval_samples": len(eval_ids),
        }
        curves: dict[str, Any] = {}
        notes: list[str] = []
        for variant in ("relearn", "feature_relearn"):
            metrics[variant], curves[variant] = {}, {}
            for role, model in models.items():

                def probe(model: LoadedModel = model, variant: str = variant) -> dict[str, Any]:
                    module = (
                        model.module
                        if variant == "relearn"
                        else _fresh_head(ctx, model, ctx.config.seed)
                    )
                    if module is None:
                        return {"skipped": True}
                    steps, accs = _curve(ctx, module, train_ids, eval_ids, target, ctx.config.seed)
                    return {"skipped": False, "steps": steps, "accuracy": accs}

                if role == "reference":  # the reference does not change between audits
                    key = _curve_key(ctx, model, variant, train_ids, eval_ids, target)
                    curve = ctx.store.get_or_compute("relearn_curves", key, probe)
                else:
                    curve = probe()
                if curve["skipped"]:
                    notes.append(f"feature relearn skipped for {role}: its head cannot be reset")
                    continue
                steps, accs = list(curve["steps"]), list(curve["accuracy"])
                reached = relearn_time(steps, accs, target)
                metrics[variant][role] = {"steps": reached, "reached": reached is not None}
                curves[variant][role] = {"steps": steps, "accuracy": accs}
        metrics["ratio"] = _ratio(metrics["relearn"])
        metrics["feature_ratio"] = _ratio(metrics["feature_relearn"])
        notes.append("relearn time alone never certifies knowledge removal (see the caveat)")
        return CheckResult(name=self.name, metrics=metrics, figures={"curves": curves}, notes=notes)


def _curve_key(
    ctx: AuditContext,
    model: LoadedModel,
    variant: str,
    train_ids: np.ndarray,
    eval_ids: np.ndarray,
    target: float,
) -> dict[str, Any]:
    """Everything a stored relearn curve depends on: the model's weights, the data and ids, the
    probe's settings, the device kind and the code that runs it."""
    import unlearn_audit.loop as loop

    code = hashlib.sha256(Path(__file__).read_bytes() + Path(loop.__file__).read_bytes())
    return {
        "variant": variant,
        "model": model.fingerprint,
        "dataset": ctx.dataset.fingerprint,
        "train_ids": fingerprint_ids(train_ids),
        "eval_ids": fingerprint_ids(eval_ids),
        "target": repr(float(target)),
        "seed": ctx.config.seed,
        "recipe": RECIPE.to_dict(),
        "warmup": WARMUP.to_dict(),
        "max_steps": MAX_STEPS,
        "eval_every": EVAL_EVERY,
        "device": ctx.device.type,
        "code": code.hexdigest()[:16],
    }


def _ratio(times: dict[str, Any]) -> float | None:
    unlearned, reference = times.get("unlearned", {}), times.get("reference", {})
    if not unlearned.get("reached") or not reference.get("reached"):
        return None
    return unlearned["steps"] / max(reference["steps"], 1)
