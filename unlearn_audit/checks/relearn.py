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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, register_check
from unlearn_audit.evidence import Evidence, Read, Table, label
from unlearn_audit.figures import colour, new_figure, style
from unlearn_audit.recipe import Recipe

if TYPE_CHECKING:
    from torch import nn

    from unlearn_audit.context import AuditContext
    from unlearn_audit.loop import StepState
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
    from unlearn_audit.loop import accuracy, fit

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
    the warm-up a random head may call every input the forgotten class at step 0.)

    Frozen means the rest of the network is not touched at all (not even its batch-norm
    statistics): the head is fitted on the retain samples' head inputs in eval mode, which
    are the features of the audit's one pass (read through another pass only when
    ``--feature-layer`` names a layer other than the head's input)."""
    import torch
    import torch.nn.functional as F

    from unlearn_audit.loop import make_optimizer
    from unlearn_audit.models.layers import get_layer
    from unlearn_audit.outputs import readable_layers

    layers, _ = readable_layers(model)  # the head is the last Linear, whatever --feature-layer
    if layers is None or layers.features_from != "input" or model.is_compiled:
        return None  # (a TorchScript model's head lives in compiled code)
    module = copy.deepcopy(model.module)
    head = get_layer(module, layers.features)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head.reset_parameters()  # type: ignore[operator]
    features, labels = _head_inputs(ctx, model, layers.features)
    head.to(ctx.device).train()
    optimiser = make_optimizer(head, WARMUP)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(WARMUP.epochs):
        order = torch.randperm(len(labels), generator=generator).to(ctx.device)
        for start in range(0, len(order), WARMUP.batch_size):
            batch = order[start : start + WARMUP.batch_size]
            optimiser.zero_grad()
            F.cross_entropy(head(features[batch]), labels[batch]).backward()
            optimiser.step()
    return module.to("cpu")


def _head_inputs(ctx: AuditContext, model: LoadedModel, head: str) -> tuple[Any, Any]:
    """The retain samples' inputs to ``model``'s head (eval mode) and their labels, as tensors
    on the audit's device."""
    import torch

    from unlearn_audit.models.layers import LayerRecorder

    read, _ = ctx.collector.layers_of(model)
    retain = ctx.outputs(model, "retain")
    features = retain.features
    if read is None or (read.features, read.features_from) != (head, "input"):
        parts = []
        module = copy.deepcopy(model.module).to(ctx.device).eval()
        with torch.inference_mode(), LayerRecorder(module, {"head": (head, "input")}) as rec:
            for x, _, _ in ctx.dataset.batches(
                retain.ids, ctx.collector.batch_size, device=ctx.device
            ):
                module(x)
                parts.append(rec.get("head").flatten(1).float().cpu())
        features = torch.cat(parts).numpy()
    assert features is not None
    return (
        torch.as_tensor(features, dtype=torch.float32, device=ctx.device),
        torch.as_tensor(retain.labels, dtype=torch.int64, device=ctx.device),
    )


@dataclass(frozen=True)
class RelearnTime:
    """Steps until held-out forget accuracy reached the threshold (``None``: not reached)."""

    steps: int | None
    reached: bool


@dataclass(frozen=True)
class Curve:
    """Held-out forget accuracy along the fine-tuning steps."""

    steps: list[int]
    accuracy: list[float]


VARIANTS = ("relearn", "feature_relearn")


@dataclass
class RelearnEvidence(Evidence):
    """How fast the forgotten behaviour returns under fine-tuning.

    Attributes:
        threshold: Held-out forget accuracy to reach (half the original's).
        max_steps: The cap on steps.
        relearn_samples: Forget samples fine-tuned on.
        retain_samples: Retain samples mixed in.
        eval_samples: Held-out forget samples measured.
        times: variant (``relearn``, ``feature_relearn``) -> model role -> steps.
        curves: variant -> model role -> the accuracy curve.
        ratio: Unlearned / reference steps (``None`` unless both reached the threshold).
        feature_ratio: The same with the head re-initialised.
    """

    TITLE: ClassVar[str] = "Relearn time"

    threshold: float
    max_steps: int
    relearn_samples: int
    retain_samples: int
    eval_samples: int
    times: dict[str, dict[str, RelearnTime]]
    curves: dict[str, dict[str, Curve]]
    ratio: float | None = None
    feature_ratio: float | None = None

    def summary(self) -> str:
        if self.ratio is None:
            return ""
        return f"relearn takes {self.ratio:.2f}x the reference's steps (supporting evidence only)"

    def tables(self) -> list[Table]:
        rows = [
            [
                label(variant),
                role,
                str(time.steps) if time.reached else f"not reached in {self.max_steps}",
            ]
            for variant in VARIANTS
            for role, time in self.times.get(variant, {}).items()
        ]
        return [
            Table(
                f"Steps to reach {self.threshold:.3f} held-out forget accuracy",
                ["variant", "model", "steps"],
                rows,
            )
        ]

    def figures(self) -> dict[str, Callable[[], Any]]:
        return {"curves": self._curves_figure}

    def _curves_figure(self) -> Any:
        """Forget accuracy during relearning, with the threshold, for both variants."""
        figure = new_figure(8, 2.8)
        for i, variant in enumerate(VARIANTS):
            axes = figure.add_subplot(1, 2, i + 1)
            for role, curve in self.curves.get(variant, {}).items():
                axes.plot(
                    curve.steps,
                    curve.accuracy,
                    style(role),
                    color=colour(role),
                    label=role,
                    marker=".",
                )
            axes.axhline(self.threshold, color="black", linewidth=0.6, linestyle=":")
            axes.set_title("relearn" if variant == "relearn" else "relearn, head re-initialised")
            axes.set_xlabel("fine-tuning step")
            axes.set_ylim(0, 1.05)
            if i == 0:
                axes.set_ylabel("held-out forget accuracy")
            axes.legend(fontsize="small")
        return figure


@register_check
class RelearnCheck(Check):
    name = "relearn"
    description = "fine-tuning steps until the forgotten behaviour returns, vs the reference"
    needs = Needs(
        references=True,
        training=True,
        reads=(
            Read("forget", models="original"),
            Read("unseen_forget", models="original"),
            Read("retain"),  # the head inputs of feature relearn
        ),
    )
    evidence = RelearnEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        from unlearn_audit.functional.relearn import relearn_time

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
        # the original's accuracy on them, from the audit's one pass (a slice of forget or of
        # the forgotten classes' test samples)
        held_out = "test_forget_class" if ctx.is_class_request else "forget"
        source = ctx.outputs(ctx.original, held_out)
        target = THRESHOLD * float(np.mean(source.correct[np.isin(source.ids, eval_ids)]))
        models = {"unlearned": ctx.unlearned, "reference": ctx.references[0]}
        evidence = RelearnEvidence(
            threshold=target,
            max_steps=MAX_STEPS,
            relearn_samples=int(n_relearn),
            retain_samples=len(retain),
            eval_samples=len(eval_ids),
            times={},
            curves={},
        )
        notes: list[str] = []
        for variant in VARIANTS:
            evidence.times[variant], evidence.curves[variant] = {}, {}
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

                # kept for every model, the unlearned one too: a curve is a few numbers, and an
                # audit of the same model again (another policy or profile) need not fine-tune
                key = _curve_key(ctx, model, variant, train_ids, eval_ids, target)
                curve = ctx.store.get_or_compute("relearn_curves", key, probe)
                if curve["skipped"]:
                    notes.append(f"feature relearn skipped for {role}: its head cannot be reset")
                    continue
                steps, accs = list(curve["steps"]), list(curve["accuracy"])
                reached = relearn_time(steps, accs, target)
                evidence.times[variant][role] = RelearnTime(reached, reached is not None)
                evidence.curves[variant][role] = Curve(steps, accs)
        evidence.ratio = _ratio(evidence.times["relearn"])
        evidence.feature_ratio = _ratio(evidence.times["feature_relearn"])
        notes.append("relearn time alone never certifies knowledge removal (see the caveat)")
        return CheckResult(name=self.name, evidence=evidence, notes=notes)


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
    from unlearn_audit._hashing import code_fingerprint, fingerprint_ids

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
        "code": code_fingerprint(__file__, loop.__file__),
    }


def _ratio(times: dict[str, RelearnTime]) -> float | None:
    unlearned, reference = times.get("unlearned"), times.get("reference")
    if unlearned is None or reference is None or unlearned.steps is None:
        return None
    if reference.steps is None:
        return None
    return unlearned.steps / max(reference.steps, 1)
