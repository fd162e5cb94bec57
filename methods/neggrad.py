"""NegGrad (gradient ascent on the forget set) and NegGrad+ (ascent balanced by retain descent).

The ascent objective is unbounded and explodes at large learning rates (METHODS.md section 3,
pitfalls). Both methods therefore clamp each forget sample's cross-entropy at
``max_forget_loss``: once a sample's loss is above it, that sample pushes no further, so the
objective is bounded below and cannot diverge. NegGrad also stops early once the forget set is
forgotten enough (see :func:`neggrad`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods._training import cycle_batches, make_recipe, train_on
from methods.base import register_method, request_scope
from unlearn_audit._validation import check_fraction, check_positive_int, fail
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.train import StepState, accuracy

_PAPER_GA = (
    "NegGrad of Golatkar, Achille & Soatto, CVPR 2020; settings of Unlearn-Sparse (Jia et al., "
    "NeurIPS 2023)"
)
_PAPER_NGPLUS = "NegGrad+ of Kurmanji et al., NeurIPS 2023 (SCRUB repo)"


def clamped_ascent_loss(logits: torch.Tensor, y: torch.Tensor, ceiling: float) -> torch.Tensor:
    """Mean of ``-min(CE_i, ceiling)``: the gradient-ascent loss with each sample's CE capped.

    Args:
        logits: ``(N, C)``.
        y: ``(N,)`` true labels.
        ceiling: Cap on each sample's cross-entropy (nats).

    Returns:
        A scalar in ``[-ceiling, 0]``.
    """
    per_sample = F.cross_entropy(logits, y, reduction="none")
    return -per_sample.clamp(max=ceiling).mean()


def _check_ceiling(value: float) -> float:
    if not value > 0 or not math.isfinite(value):
        raise fail("max_forget_loss", "a finite number > 0", value)
    return value


def forget_target(original: LoadedModel, dataset: Dataset, splits: Splits) -> float | None:
    """The forget-set accuracy at which forgetting is enough (the early-stop target).

    A model retrained without the forget set classifies no sample of a forgotten class, and
    classifies forgotten random samples about as well as unseen data. So: 1% for class
    requests; for sample requests the original's accuracy on the population split (held-out
    data, standing in for test accuracy so that the method never reads test); ``None`` (no
    early stop) when there is no population split.
    """
    if request_scope(splits) == "class":
        return 0.01
    if len(splits.population) == 0:
        return None
    return accuracy(original.module, dataset, splits.population)


def stop_at_accuracy(
    dataset: Dataset, forget: np.ndarray, target: float | None, steps_per_epoch: int
) -> Callable[[StepState], bool] | None:
    """An ``on_step`` that stops at the end of the first epoch whose accuracy on ``forget``
    (eval mode) is at most ``target``; ``None`` when there is no target."""
    if target is None:
        return None

    def on_step(state: StepState) -> bool:
        if state.step % steps_per_epoch:
            return False
        return accuracy(state.model, dataset, forget) <= target

    return on_step


@register_method(
    "neggrad",
    scope=("class", "sample"),
    needs=("forget",),
    defaults={
        "lr": 1e-4,
        "epochs": 5,
        "batch_size": 256,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "max_forget_loss": 10.0,
        "early_stop": True,
    },
    paper=_PAPER_GA,
    summary="gradient ascent on the forget set only (SGD, small lr; capped, early-stopped)",
)
def neggrad(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    lr: float,
    epochs: int,
    batch_size: int,
    momentum: float,
    weight_decay: float,
    max_forget_loss: float,
    early_stop: bool,
) -> Classifier:
    """Maximise cross-entropy on ``splits.forget`` of a copy of ``original``.

    Defaults follow the Unlearn-Sparse README (GA on CIFAR-10): 5 epochs of SGD at a constant
    lr 1e-4, momentum 0.9, weight decay 5e-4, batch 256. Departures (our guards, not in the
    repo): each sample's CE is capped at ``max_forget_loss``, and with ``early_stop`` training
    stops at the end of the first epoch where the forget accuracy reaches the target of
    :func:`forget_target` (class: 1%; samples: the original's population accuracy).

    Args:
        original: The model before unlearning; not modified.
        dataset: Where the ids come from.
        splits: ``forget``; ``population`` for the early-stop target of sample requests.
        seed: Seed of the shuffles.
        device: Where to train.
        progress: Show a progress bar.
        lr: Constant SGD learning rate (the loss explodes at lr >= 1e-3 without the cap).
        epochs: Most passes over the forget set.
        batch_size: Forget samples per step.
        momentum: SGD momentum.
        weight_decay: L2 penalty.
        max_forget_loss: Cap on each forget sample's CE (nats).
        early_stop: Stop once the forget accuracy reaches the target.

    Returns:
        The trained copy.
    """
    ceiling = _check_ceiling(max_forget_loss)
    recipe = make_recipe(
        lr=lr, epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay
    )
    target = forget_target(original, dataset, splits) if early_stop else None
    steps_per_epoch = math.ceil(len(splits.forget) / recipe.batch_size)

    def objective(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_ids: np.ndarray
    ) -> torch.Tensor:
        return clamped_ascent_loss(model(x), y, ceiling)

    return train_on(
        original.module,
        dataset,
        splits.forget,
        recipe,
        seed=seed,
        device=device,
        objective=objective,
        on_step=stop_at_accuracy(dataset, splits.forget, target, steps_per_epoch),
        progress=progress,
        desc="unlearn neggrad",
    )


@register_method(
    "neggrad-plus",
    scope=("class", "sample"),
    needs=("forget", "retain"),
    defaults={
        "alpha": 0.95,
        "lr": 0.01,
        "epochs": 10,
        "batch_size": 128,
        "forget_batch_size": 64,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "max_forget_loss": 10.0,
        "early_stop": False,
    },
    paper=_PAPER_NGPLUS,
    summary="alpha * CE(retain) - (1 - alpha) * CE(forget) per batch pair (plain SGD)",
)
def neggrad_plus(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    alpha: float,
    lr: float,
    epochs: int,
    batch_size: int,
    forget_batch_size: int,
    momentum: float,
    weight_decay: float,
    max_forget_loss: float,
    early_stop: bool,
) -> Classifier:
    """Descend on retain and ascend on forget together, over the retain set.

    Each retain batch is paired with the next batch of a cycled, seeded shuffle of the forget
    set; the loss is ``alpha * CE(retain) - (1 - alpha) * CE(forget)``. Defaults follow SCRUB's
    ``small_scale_unlearning.ipynb`` (``negative_grad``): alpha 0.95, 10 epochs of plain SGD
    (no momentum, no weight decay) at a constant lr 0.01, retain batch 128 and forget batch 64.
    Departures: the notebook adds an L2 pull towards the original weights and runs with the
    network in eval mode (BatchNorm frozen); we train in train mode without that term. Each
    forget sample's CE is capped at ``max_forget_loss`` (our guard); ``early_stop`` (off by
    default) stops as :func:`neggrad` does.

    Args:
        original: The model before unlearning; not modified.
        dataset: Where the ids come from.
        splits: ``retain`` and ``forget``; ``population`` for the early-stop target.
        seed: Seed of both shuffles.
        device: Where to train.
        progress: Show a progress bar.
        alpha: Weight of the retain term, in [0, 1].
        lr: Constant SGD learning rate.
        epochs: Passes over the retain set.
        batch_size: Retain samples per step.
        forget_batch_size: Forget samples per step.
        momentum: SGD momentum.
        weight_decay: L2 penalty.
        max_forget_loss: Cap on each forget sample's CE (nats).
        early_stop: Stop once the forget accuracy reaches the target.

    Returns:
        The trained copy.
    """
    weight = check_fraction(alpha, "alpha", inclusive=True)
    ceiling = _check_ceiling(max_forget_loss)
    recipe = make_recipe(
        lr=lr, epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay
    )
    check_positive_int(forget_batch_size, "forget_batch_size")
    forget_batches = cycle_batches(
        dataset, splits.forget, forget_batch_size, seed=seed, device=device
    )
    target = forget_target(original, dataset, splits) if early_stop else None
    steps_per_epoch = math.ceil(len(splits.retain) / recipe.batch_size)

    def objective(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_ids: np.ndarray
    ) -> torch.Tensor:
        x_f, y_f, _ = next(forget_batches)
        retain_loss = F.cross_entropy(model(x), y)
        return weight * retain_loss + (1 - weight) * clamped_ascent_loss(model(x_f), y_f, ceiling)

    return train_on(
        original.module,
        dataset,
        splits.retain,
        recipe,
        seed=seed,
        device=device,
        objective=objective,
        on_step=stop_at_accuracy(dataset, splits.forget, target, steps_per_epoch),
        progress=progress,
        desc="unlearn neggrad-plus",
    )
