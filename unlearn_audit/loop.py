"""The one training loop: originals, references, shadow models, relearn probes and methods.

:func:`fit` trains a *copy* of the given model on some sample ids (the caller's model is never
changed) with a :class:`~unlearn_audit.recipe.Recipe`, under a seed, on CPU or CUDA, with
per-step and per-epoch callbacks and a custom objective for methods that do not minimise plain
cross-entropy. It knows no trainer: the classifier trainer, ERM and SISA all call it.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from unlearn_audit._hashing import code_fingerprint
from unlearn_audit._validation import fail
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.layers import copy_module, fast_layout, in_fast_layout
from unlearn_audit.recipe import Recipe

_F = TypeVar("_F", bound=Callable[..., Any])

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor]
BatchTransform = Callable[
    [torch.Tensor, torch.Tensor, np.ndarray], tuple[torch.Tensor, torch.Tensor]
]


@dataclass
class StepState:
    """What per-step and per-epoch callbacks see (the live model and optimiser)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int
    step: int
    batch_ids: np.ndarray
    loss: float


@dataclass
class History:
    """One record per epoch: mean loss, training accuracy, learning rate, seconds."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "steps": self.steps, "seconds": self.seconds}


@dataclass
class TrainResult:
    model: nn.Module
    history: History


@functools.cache
def loop_code() -> str:
    """Fingerprint of the code a training run's numbers depend on (this loop and the layout
    it trains in): part of every trained model's store key."""
    from unlearn_audit.models import layers

    return code_fingerprint(__file__, layers.__file__)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``"auto"``/``None`` -> CUDA when present, else CPU; checks that CUDA exists if asked for."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise fail("device", "'auto', 'cpu', 'cuda' or 'cuda:N'", str(device)) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "`device` cuda was asked for but no CUDA GPU is visible; use `device` cpu."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise fail("device", "'auto', 'cpu', 'cuda' or 'cuda:N'", str(device))
    return resolved


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def augment_batch(x: torch.Tensor, generator: torch.Generator, *, flip: bool) -> torch.Tensor:
    """Random shifts by up to H/8 pixels (zero padding) and, if ``flip``, horizontal flips."""
    n, c, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``model``'s trainable parameters (what :func:`fit` uses)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def _lr_factor(recipe: Recipe, epoch: int, step_in_run: int, total_steps: int) -> float:
    if recipe.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step_in_run / max(total_steps, 1)))
    if recipe.schedule == "step":
        return float(recipe.gamma ** sum(epoch >= m for m in recipe.milestones))
    return 1.0


def autograd_on(function: _F) -> _F:
    """``function`` with autograd on, whatever the caller's mode: training, a method's run and
    an audit's relearn probes and Grad-CAM need it also when called inside ``torch.no_grad()``
    or ``torch.inference_mode()``."""
    return torch.inference_mode(False)(torch.enable_grad()(function))


@autograd_on
def fit(
    model: nn.Module,
    dataset: Dataset,
    ids: np.ndarray,
    recipe: Recipe,
    *,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    objective: Objective | None = None,
    batch_transform: BatchTransform | None = None,
    on_step: Callable[[StepState], bool | None] | None = None,
    on_epoch: Callable[[StepState, dict[str, float]], None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train a copy of ``model`` on the samples ``ids`` of ``dataset``.

    Deterministic on CPU for a given seed: the seed fixes the initial shuffles, augmentation
    and any dropout; the caller's global RNG state is left as it was.

    Args:
        model: Takes images in [0, 1] ``(N, C, H, W)`` (a :class:`Classifier`); not modified.
        dataset: Where the samples come from.
        ids: Sample ids to train on.
        recipe: How to train.
        seed: Seed of shuffling, augmentation and dropout.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        objective: ``objective(model, x, y, batch_ids) -> loss``; default cross-entropy with
            the recipe's label smoothing.
        batch_transform: ``(x, y, batch_ids) -> (x, y)`` applied to every batch before
            augmentation (e.g. planting a backdoor trigger on some ids).
        on_step: Called after every optimiser step; returning ``True`` stops training there
            (early stopping, step budgets).
        on_epoch: Called after every epoch with the epoch's record.
        progress: Show a tqdm bar.
        desc: Label of the bar.

    Returns:
        The trained copy (on ``device``, in eval mode) and its history.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        raise ConfigError("cannot train on an empty set of samples; check the split.")
    device = resolve_device(device)
    trained = copy_module(model).to(device)
    layout = fast_layout(trained, device, dataset.input_shape)
    history = History()
    steps_per_epoch = math.ceil(len(ids) / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    start = time.perf_counter()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        optimizer = make_optimizer(trained, recipe)
        bar = tqdm(
            total=total_steps,
            desc=desc,
            disable=None if progress else True,
            leave=False,
            unit="step",
        )  # None: a bar only on a terminal
        stop = False
        for epoch in range(recipe.epochs):
            trained.train()
            loss_sum, correct, seen = 0.0, 0, 0
            state: StepState | None = None
            epoch_start = time.perf_counter()
            batches = dataset.batches(
                ids, recipe.batch_size, shuffle=True, generator=generator, device=device
            )
            for x, y, batch_ids in batches:
                factor = _lr_factor(recipe, epoch, history.steps, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr * factor
                if batch_transform is not None:
                    x, y = batch_transform(x, y, batch_ids)
                if recipe.augment:
                    x = augment_batch(x, generator, flip=dataset.flip_invariant)
                x = x.contiguous(memory_format=layout)
                optimizer.zero_grad(set_to_none=True)
                if objective is None:
                    logits = trained(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
                    correct += int((logits.argmax(1) == y).sum())
                else:
                    loss = objective(trained, x, y, batch_ids)
                loss_value = loss.detach().item()
                if not math.isfinite(loss_value):
                    raise ConfigError(
                        f"training diverged (loss {loss_value}) at epoch {epoch + 1}; lower `lr`."
                    )
                loss.backward()
                optimizer.step()
                history.steps += 1
                loss_sum += loss_value * len(batch_ids)
                seen += len(batch_ids)
                state = StepState(trained, optimizer, epoch, history.steps, batch_ids, loss_value)
                bar.update(1)
                if on_step is not None and on_step(state):
                    stop = True
                    break
            record = {
                "epoch": float(epoch + 1),
                "loss": loss_sum / max(seen, 1),
                "lr": recipe.lr * _lr_factor(recipe, epoch, history.steps - 1, total_steps),
                "seconds": time.perf_counter() - epoch_start,
            }
            if objective is None:
                record["accuracy"] = correct / max(seen, 1)
            history.epochs.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            if on_epoch is not None and state is not None:
                on_epoch(state, record)
            if stop:
                break
        bar.close()
    history.seconds = time.perf_counter() - start
    trained.to(memory_format=torch.contiguous_format)
    return TrainResult(model=trained.eval(), history=history)


def accuracy(
    model: nn.Module,
    dataset: Dataset,
    ids: np.ndarray,
    *,
    batch_size: int = 512,
) -> float:
    """Fraction of ``ids`` the model classifies correctly (counted over all samples).

    Batches go to the device the model's weights are on.
    """
    device = model_device(model)
    correct = 0
    was_training = model.training
    model.eval()
    with in_fast_layout(model, device, dataset.input_shape) as layout, torch.inference_mode():
        for x, y, _ in dataset.batches(ids, batch_size, device=device):
            correct += int((model(x.contiguous(memory_format=layout)).argmax(1) == y).sum())
    model.train(was_training)
    return correct / max(len(ids), 1)
