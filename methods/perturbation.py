"""Random (Gaussian) perturbation + fine-tune: shake every weight, then repair on retain.

Needs no forget data at all (METHODS.md section 5): the noise is untargeted, so forget and
retain degrade together and the fine-tune on retain brings back only what retain supports.
"""

from __future__ import annotations

import copy
import math
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from methods._training import make_recipe, train_on
from methods.base import register_method
from unlearn_audit._validation import fail
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.train import model_device

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@torch.no_grad()
def perturb_weights(model: nn.Module, beta: float, *, generator: torch.Generator) -> nn.Module:
    """Add ``N(0, (beta * std(W))^2)`` noise to the weight ``W`` of every conv and linear layer.

    Biases, BatchNorm affine parameters and buffers are left alone. The noise is drawn on CPU
    from ``generator`` (layer by layer, in ``modules()`` order), so it does not depend on the
    device. Changes ``model`` in place and returns it.

    Args:
        model: The network to perturb.
        beta: Noise std as a fraction of each layer's weight std.
        generator: CPU generator of the noise.
    """
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            weight = module.weight
            # std over a single element is undefined; such a layer gets no noise
            sigma = float(weight.std()) if weight.numel() > 1 else 0.0
            noise = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
            weight.add_(noise.to(weight.device) * (beta * sigma))
    return model


@torch.no_grad()
def recalibrate_batchnorm(
    model: ModuleT, dataset: Dataset, ids: np.ndarray, batch_size: int
) -> ModuleT:
    """Recompute every BatchNorm's running statistics as a plain average over ``ids``.

    The running mean and variance are reset and re-estimated with ``momentum=None`` (PyTorch's
    cumulative moving average) over one pass in batches of ``batch_size``. Only the BatchNorm
    layers run in train mode, so dropout does not distort the statistics. No parameter
    changes. Changes ``model`` in place and returns it, in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    momenta = [norm.momentum for norm in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    for x, _, _ in dataset.batches(ids, batch_size, device=model_device(model)):
        model(x)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return model.eval()


@register_method(
    "random-perturbation",
    scope=("class", "sample"),
    needs=("retain",),
    defaults={
        "beta": 0.7,
        "lr": 0.01,
        "epochs": 3,
        "batch_size": 64,
        "momentum": 0.9,
        "weight_decay": 5e-4,
    },
    paper=(
        "random perturbation + fine-tune as surveyed in seed 001 (Sapienza student survey); "
        "no official code"
    ),
    summary="Gaussian noise (beta x layer weight std) on conv/linear weights, FT on retain, BN "
    "recalibrated",
)
def random_perturbation(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    beta: float,
    lr: float,
    epochs: int,
    batch_size: int,
    momentum: float,
    weight_decay: float,
) -> Classifier:
    """Perturb a copy of ``original``, fine-tune it on retain and recalibrate its BatchNorm.

    Every conv and linear weight gets Gaussian noise of std ``beta`` times that layer's weight
    std (:func:`perturb_weights`; we read the survey's ``N(0, beta * sigma)`` as a std), then
    the copy is fine-tuned on ``splits.retain`` with SGD at a constant lr, and finally the
    BatchNorm running statistics are re-estimated on retain (:func:`recalibrate_batchnorm`).

    Defaults: beta 0.7 is the survey's example. The survey's fine-tune (5 epochs of lr 1e-5
    with L2 0.01) is only plausible with Adam; we follow METHODS.md's suggestion for SGD
    instead: lr 0.01, momentum 0.9, 3 epochs, with the fine-tune baseline's batch 64 and weight
    decay 5e-4.

    Args:
        original: The model before unlearning; not modified.
        dataset: Where the ids come from.
        splits: Only ``retain`` is used.
        seed: Seed of the noise (``seed``) and of the shuffles.
        device: Where to train.
        progress: Show a progress bar.
        beta: Noise std as a fraction of each layer's weight std, in (0, 10].
        lr: Constant SGD learning rate of the fine-tune.
        epochs: Fine-tune passes over the retain set.
        batch_size: Retain samples per step (and per recalibration pass).
        momentum: SGD momentum.
        weight_decay: L2 penalty.

    Returns:
        The perturbed, fine-tuned and recalibrated copy.

    Raises:
        ConfigError: ``beta`` outside (0, 10] or a bad fine-tune setting.
    """
    if not math.isfinite(beta) or not 0 < beta <= 10:
        raise fail("beta", "a number in (0, 10]", beta, "The survey's example is 0.7.")
    recipe = make_recipe(
        lr=lr, epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay
    )
    noisy = perturb_weights(
        copy.deepcopy(original.module), beta, generator=torch.Generator().manual_seed(seed)
    )
    tuned = train_on(
        noisy,
        dataset,
        splits.retain,
        recipe,
        seed=seed,
        device=device,
        progress=progress,
        desc="unlearn random-perturbation",
    )
    return recalibrate_batchnorm(tuned, dataset, splits.retain, recipe.batch_size)
