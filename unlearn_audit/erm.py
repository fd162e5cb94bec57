"""ERM training (seed 000): alternate the standard and the entanglement-reduced mask paths.

Lin et al., "ERM-KTP: Knowledge-level Machine Unlearning via Knowledge Transfer", CVPR 2023,
Algorithm 1, with the repository's settings (RUIYUN-ML/ERM-KTP ``train_ERM.py``): epoch ``e``
(from 0) takes the ERM path when ``e % period == period - 1`` (the repository's
``e % mask_period >= mask_epoch_min`` with its 3 and 2), otherwise the standard path.

- Standard epochs: cross-entropy of the standard path; ``G`` gets no gradient.
- ERM epochs: cross-entropy of the ERM path (each sample masked by its label's row of ``G``)
  plus ``lambda_reg`` times :func:`~unlearn_audit.functional.erm.erm_regulariser`; ``G`` and
  the network learn together, with the recipe's optimiser (the repository uses one SGD for all).
- After every step: :func:`~unlearn_audit.functional.erm.normalise_and_clip` on ``G``.

Everything else (optimiser, schedule, seed, augmentation, backdoor planting) is the recipe's
and :func:`~unlearn_audit.train.fit`'s, so an ERM original is trained like any other.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlearn_audit._hashing import fingerprint_json
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.errors import ConfigError
from unlearn_audit.functional import erm as erm_maths
from unlearn_audit.loop import BatchTransform, StepState, TrainResult, fit
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.erm import ERM_ARCH, ErmNet, erm_mask
from unlearn_audit.models.layers import Classifier
from unlearn_audit.recipe import Recipe

__all__ = ["ERM_ARCH", "erm_logits", "erm_net", "is_erm_epoch", "train_erm", "training_fingerprint"]


def erm_net(model: nn.Module) -> ErmNet | None:
    """The :class:`ErmNet` inside ``model`` (a Classifier or the net itself), if any."""
    net = model.net if isinstance(model, Classifier) else model
    return net if isinstance(net, ErmNet) else None


def is_erm_epoch(epoch: int, period: int) -> bool:
    """Whether epoch ``epoch`` (from 0) takes the ERM path: the last epoch of each period."""
    return epoch % period == period - 1


def erm_logits(
    model: Classifier,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    prohibit: Iterable[int] | None = None,
) -> torch.Tensor:
    """Logits of an ERM model on images in [0, 1], through the ERM path if ``labels`` are given.

    Args:
        model: A :class:`Classifier` around an :class:`ErmNet`.
        x: Images ``(N, C, H, W)`` in [0, 1] (normalised here, as the Classifier does).
        labels: ``(N,)``: mask each sample by its label's row of ``G`` (ERM path).
        prohibit: Switch off the channels of these classes (the paper's knowledge
            prohibition, Table 2), on either path.

    Raises:
        ConfigError: ``model`` has no ERM mask layer.
    """
    net = erm_net(model)
    if net is None:
        raise ConfigError(
            "the ERM path needs a model trained with the ERM mask layer "
            "(unlearn-audit train --erm)."
        )
    if model.normalization is not None:
        x = (x - model.input_mean) / model.input_std
    return net(x, labels=labels, prohibit=prohibit)


def train_erm(
    model: Classifier,
    dataset: Dataset,
    ids: np.ndarray,
    recipe: Recipe,
    *,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    batch_transform: BatchTransform | None = None,
    progress: bool = True,
    desc: str = "train erm",
) -> TrainResult:
    """Train a copy of the ERM model ``model`` by alternate training (Algorithm 1).

    ``lambda_reg`` and ``period`` are the network's own (``ErmNet.lambda_reg``, ``.period``,
    recorded as architecture arguments). Each epoch's history record gains ``erm_path`` (1 for
    an ERM epoch), ``csi_mean`` and ``l1_density`` of ``G`` after the epoch.

    Args:
        model: A :class:`Classifier` around an :class:`ErmNet`; not modified.
        dataset: Training data.
        ids: Sample ids to train on.
        recipe: Optimiser, schedule, epochs, batch size (as for :func:`fit`).
        seed: Seed of shuffling and augmentation.
        device: Where to train.
        batch_transform: Applied to every batch first (e.g. planting a backdoor).
        progress: Show a progress bar.
        desc: Label of the bar.

    Returns:
        The trained copy and its history.
    """
    net = erm_net(model)
    if net is None:
        raise ConfigError("`train_erm` needs a Classifier around an ErmNet (arch 'erm').")
    period, lambda_reg = net.period, net.lambda_reg
    epoch = [0]  # the epoch the objective is in; advanced by on_epoch

    def objective(m: nn.Module, x: torch.Tensor, y: torch.Tensor, _: np.ndarray) -> torch.Tensor:
        smoothing = recipe.label_smoothing
        if not is_erm_epoch(epoch[0], period):
            return F.cross_entropy(m(x), y, label_smoothing=smoothing)
        live = erm_net(m)
        assert live is not None
        loss = F.cross_entropy(erm_logits(m, x, y), y, label_smoothing=smoothing)  # type: ignore[arg-type]
        return loss + lambda_reg * erm_maths.erm_regulariser(live.erm_mask)

    def project(state: StepState) -> None:
        live = erm_net(state.model)
        assert live is not None
        with torch.no_grad():
            live.erm_mask.copy_(erm_maths.normalise_and_clip(live.erm_mask))

    from unlearn_audit.functional.representation import csi, l1_density

    def on_epoch(state: StepState, record: dict[str, float]) -> None:
        live = erm_net(state.model)
        assert live is not None
        g = live.erm_mask.detach().cpu().double().numpy()
        record["erm_path"] = float(is_erm_epoch(epoch[0], period))
        record["csi_mean"] = csi(g)[1] if g.shape[0] > 1 else 0.0
        record["l1_density"] = l1_density(g)
        epoch[0] += 1

    return fit(
        model,
        dataset,
        ids,
        recipe,
        seed=seed,
        device=device,
        objective=objective,
        batch_transform=batch_transform,
        on_step=project,
        on_epoch=on_epoch,
        progress=progress,
        desc=desc,
    )


def mask_summary(model: LoadedModel) -> dict[str, Any]:
    """The ERM mask G of a trained ERM model in numbers (seed 000): its shape, CSI (total and
    mean over class pairs), L1-density, and the classes that hold no channel."""
    from unlearn_audit.functional.representation import csi, l1_density

    g = erm_mask(model)
    if g is None:
        raise ConfigError("the model has no ERM mask layer; train it with `erm`.")
    total, mean = csi(g) if g.shape[0] > 1 else (0.0, 0.0)
    return {
        "classes": int(g.shape[0]),
        "channels": int(g.shape[1]),
        "csi": float(total),
        "csi_mean": float(mean),
        "l1_density": float(l1_density(g)),
        "empty_classes": [c for c in range(g.shape[0]) if not g[c].any()],
    }


def training_fingerprint() -> str:
    """Fingerprint of the ERM training code (this module and the ERM maths), for store keys."""
    sources = [inspect.getsource(module) for module in (sys.modules[__name__], erm_maths)]
    return fingerprint_json({"erm_training": sources})
