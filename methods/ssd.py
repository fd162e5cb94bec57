"""Selective Synaptic Dampening (SSD) and its label-free variant (LFSSD): no training at all.

Both compare each parameter's importance for the forget set, ``I_f``, with its importance for
the whole training set D = D_r + D_f, ``I_D``, and shrink only the parameters that matter far
more to the forget set (METHODS.md section 8). SSD's importance is a mini-batch empirical
Fisher (:func:`~methods._importance.squared_gradient_importance`); LFSSD's is the absolute
gradient of the squared L2 norm of the logits and reads no labels
(:func:`~methods._importance.output_norm_importance`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from methods._importance import (
    Importance,
    output_norm_importance,
    squared_gradient_importance,
)
from methods.base import register_method
from methods.perturbation import recalibrate_batchnorm
from unlearn_audit._validation import check_positive_int, fail
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier

_PAPER_SSD = (
    "Foster, Schoepf & Brintrup, 'Fast Machine Unlearning Without Retraining Through Selective "
    "Synaptic Dampening', AAAI 2024 (if-loops/selective-synaptic-dampening); surveyed in seed 001"
)
_PAPER_LFSSD = (
    "Foster, Schoepf & Brintrup, 'Loss-Free Machine Unlearning', ICLR 2024 Tiny Paper "
    "(LFSSD, per the if-loops/selective-synaptic-dampening README)"
)
_DEFAULTS = {"alpha": 10.0, "dampening": 1.0, "batch_size": 64, "recalibrate_bn": True}
# (model, dataset, ids, *, batch_size, generator) -> importance: SSD's or LFSSD's
Measure = Callable[..., Importance]


@torch.no_grad()
def dampen(
    model: nn.Module,
    forget_importance: Importance,
    full_importance: Importance,
    *,
    alpha: float,
    dampening: float,
) -> nn.Module:
    """SSD's update: where ``I_f > alpha * I_D``, multiply the parameter by
    ``min(dampening * I_D / I_f, 1)``; leave every other parameter as it is.

    The factor is at most 1, so no parameter grows; buffers are not touched. Changes ``model``
    in place and returns it.

    Args:
        model: The network whose ``named_parameters()`` the importances are keyed by.
        forget_importance: ``I_f``, one tensor per parameter.
        full_importance: ``I_D``, one tensor per parameter.
        alpha: Selection weighting: how many times more important to D_f a parameter must be.
        dampening: ``lambda``, the dampening constant.
    """
    for name, param in model.named_parameters():
        forget, full = forget_importance[name], full_importance[name]
        selected = forget > alpha * full
        # where a parameter is selected, I_f > 0, so the ratio is finite
        factor = (dampening * full / forget.where(selected, torch.ones_like(forget))).clamp(max=1)
        param.mul_(torch.where(selected, factor, torch.ones_like(factor)))
    return model


@dataclass(frozen=True)
class Dampening:
    """The hyperparameters SSD and LFSSD share (see :func:`ssd`), checked on creation;
    :meth:`apply` runs either method with them.

    Raises:
        ConfigError: ``alpha`` or ``dampening`` not a positive finite number, ``batch_size``
            < 1.
    """

    alpha: float
    dampening: float
    batch_size: int
    recalibrate_bn: bool

    def __post_init__(self) -> None:
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            hint = "The papers use 10 for ResNet18."
            raise fail("alpha", "a finite number > 0", self.alpha, hint)
        if not math.isfinite(self.dampening) or self.dampening <= 0:
            raise fail("dampening", "a finite number > 0", self.dampening, "The papers use 1.")
        check_positive_int(self.batch_size, "batch_size")

    def apply(
        self,
        original: LoadedModel,
        dataset: Dataset,
        splits: Splits,
        measure: Measure,
        *,
        seed: int,
        device: torch.device,
    ) -> Classifier:
        """Measure ``I_f`` on forget and ``I_D`` on D, :func:`dampen` a copy, recalibrate it.

        Args:
            original: The model before unlearning; not modified.
            dataset: Where the ids come from.
            splits: ``forget`` and ``members`` for the importances; ``retain`` for BatchNorm.
            measure: The importance (SSD's or LFSSD's), called with a seeded generator.
            seed: Seed of the batch shuffles.
            device: Where to compute.

        Returns:
            The dampened copy (eval mode).
        """
        model = copy.deepcopy(original.module).to(device)
        # one seeded generator draws the forget batches, then the batches of D
        generator = torch.Generator().manual_seed(seed)
        size = self.batch_size
        forget = measure(model, dataset, splits.forget, batch_size=size, generator=generator)
        full = measure(model, dataset, splits.members, batch_size=size, generator=generator)
        dampen(model, forget, full, alpha=self.alpha, dampening=self.dampening)
        if self.recalibrate_bn:
            recalibrate_batchnorm(model, dataset, splits.retain, size)
        return cast(Classifier, model.eval())


@register_method(
    "ssd",
    scope=("class", "sample"),
    needs=("forget", "retain"),
    defaults=dict(_DEFAULTS),
    paper=_PAPER_SSD,
    summary="dampen parameters whose empirical Fisher on forget exceeds alpha x that on D "
    "(no training)",
)
def ssd(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    alpha: float,
    dampening: float,
    batch_size: int,
    recalibrate_bn: bool,
) -> Classifier:
    """Dampen the parameters of a copy of ``original`` that matter most to the forget set.

    ``I_f`` is the importance on ``splits.forget`` and ``I_D`` that on ``splits.members`` (all
    of D, as the repo's ``full_train_dl``; the survey says D_r), each the mean over batches of
    ``batch_size`` of the squared gradient of the batch-mean cross-entropy, with the model in
    eval mode. Then :func:`dampen`. No training step.

    Defaults follow the SSD repo (``forget_full_class_main.py``, ``forget_random_main.py``,
    ResNet18): ``alpha`` 10, ``dampening`` 1, batch 64 (the full-class runs; the random-sample
    runs use 128: ``--hp batch_size=128``). The repo's Pins-faces setting is alpha 50,
    dampening 0.1; its ViT runs use alpha 5. Departures: the batches are drawn at random with
    the seed (the repo's full-class loader walks D class by class, which inflates ``I_D``'s
    batch gradients); with ``recalibrate_bn`` (our addition, METHODS.md cross-cutting notes)
    the BatchNorm running statistics are re-estimated on retain after the dampening.

    Args:
        original: The model before unlearning; not modified.
        dataset: Where the ids come from.
        splits: ``forget`` and ``members`` for the importances; ``retain`` for BatchNorm.
        seed: Seed of the batch shuffles.
        device: Where to compute.
        progress: Unused (two quick gradient passes).
        alpha: Selection weighting: dampen where ``I_f > alpha * I_D``.
        dampening: ``lambda``: the factor is ``min(lambda * I_D / I_f, 1)``.
        batch_size: Samples per importance batch (the importance depends on it).
        recalibrate_bn: Re-estimate BatchNorm statistics on retain afterwards.

    Returns:
        The dampened copy.

    Raises:
        ConfigError: ``alpha`` or ``dampening`` not a positive finite number, ``batch_size``
            < 1.
    """
    settings = Dampening(
        alpha=alpha, dampening=dampening, batch_size=batch_size, recalibrate_bn=recalibrate_bn
    )
    return settings.apply(
        original, dataset, splits, squared_gradient_importance, seed=seed, device=device
    )


@register_method(
    "lfssd",
    scope=("class", "sample"),
    needs=("forget", "retain"),
    defaults=dict(_DEFAULTS),
    paper=_PAPER_LFSSD,
    summary="SSD with a label-free importance (|gradient of the squared logit norm|)",
)
def lfssd(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    alpha: float,
    dampening: float,
    batch_size: int,
    recalibrate_bn: bool,
) -> Classifier:
    """SSD with the label-free importance: no label of any sample is read.

    As :func:`ssd`, but each importance is the mean over batches of the absolute gradient of
    the batch-mean squared L2 norm of the logits (the SSD repo README's LFSSD recipe: swap the
    loss for ``||f(x)||^2`` and the square for an absolute value). The README changes nothing
    else, so the defaults are SSD's (alpha 10, dampening 1, batch 64); the paper's own sweeps
    were not checked. Same departures as :func:`ssd` (seeded batches, BatchNorm recalibrated
    on retain with ``recalibrate_bn``; the recalibration reads images only).

    Arguments, result and errors are those of :func:`ssd`; ``dataset`` gives only images.
    """
    settings = Dampening(
        alpha=alpha, dampening=dampening, batch_size=batch_size, recalibrate_bn=recalibrate_bn
    )
    return settings.apply(
        original, dataset, splits, output_norm_importance, seed=seed, device=device
    )
