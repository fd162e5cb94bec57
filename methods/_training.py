"""Training pieces the bundled methods share: recipes, seeded subsets, fresh networks, fitting.

Every method that trains builds its :class:`~unlearn_audit.train.Recipe` with
:func:`make_recipe` and trains with :func:`train_on`; every method that trains on part of the
retain set draws it with :func:`random_subset` (or :func:`draw_ids`); every method that needs
a new network of the original's architecture gets it from :func:`fresh_network` (or checks
for one with :func:`recorded_arch`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, cast

import numpy as np
import torch
from torch import nn

from unlearn_audit._validation import check_fraction, check_nonnegative, check_positive_int, fail
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.models.zoo import build_model
from unlearn_audit.train import BatchTransform, Objective, Recipe, StepState, fit


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration (importances, a teacher's outputs), then the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def make_recipe(
    *,
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
    lr: float,
    epochs: int,
    batch_size: int,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    decay_epochs: tuple[int, ...] = (),
    min_epochs: int = 1,
    names: tuple[str, str, str] = ("lr", "epochs", "batch_size"),
) -> Recipe:
    """A recipe without augmentation: a constant learning rate, or one divided by 10 at the
    start of each epoch in ``decay_epochs`` (counted from 0).

    Args:
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: Peak learning rate, > 0.
        epochs: Passes over the training ids, at least ``min_epochs``.
        batch_size: Samples per step, at least 1.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty.
        decay_epochs: Epochs at which the learning rate is divided by 10; none: constant.
        min_epochs: Fewest epochs allowed (0 where no training is a valid choice).
        names: The hyperparameters ``lr``, ``epochs`` and ``batch_size`` stand for, as the
            user gave them (``("erase_lr", "erase_epochs", "batch_size")``); errors name them.

    Raises:
        ConfigError: A value outside its range.
    """
    return Recipe(
        optimizer=optimizer,
        lr=check_nonnegative(lr, names[0], positive=True, expected="a number > 0"),
        epochs=check_positive_int(epochs, names[1], minimum=min_epochs),
        batch_size=check_positive_int(batch_size, names[2]),
        momentum=momentum,
        weight_decay=weight_decay,
        schedule="step" if decay_epochs else "constant",
        milestones=decay_epochs,
        gamma=0.1,
    )


def train_on(
    model: nn.Module,
    dataset: Dataset,
    ids: np.ndarray,
    recipe: Recipe,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    desc: str,
    objective: Objective | None = None,
    batch_transform: BatchTransform | None = None,
    on_step: Callable[[StepState], bool | None] | None = None,
) -> Classifier:
    """Train a copy of ``model`` on ``ids`` with :func:`~unlearn_audit.train.fit`.

    Args:
        model: The start (the original's network, or a copy already changed); not modified.
        dataset: Where the ids come from.
        ids: The samples to train on.
        recipe: How to train.
        seed: Seed of the shuffles.
        device: Where to train.
        progress: Show a progress bar.
        desc: Label of the bar.
        objective: The loss; cross-entropy when not given.
        batch_transform: Changes each batch before the loss (e.g. new labels).
        on_step: Called after every step; returning ``True`` stops training.

    Returns:
        The trained copy (on ``device``, in eval mode).
    """
    result = fit(
        model,
        dataset,
        ids,
        recipe,
        seed=seed,
        device=device,
        objective=objective,
        batch_transform=batch_transform,
        on_step=on_step,
        progress=progress,
        desc=desc,
    )
    return cast(Classifier, result.model)


def cycle_batches(
    dataset: Dataset, ids: np.ndarray, batch_size: int, *, seed: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
    """Shuffled batches of ``ids`` without end: a fresh shuffle each time the ids run out.

    The forget batches that methods pair with each retain step. They are drawn from a
    generator of their own, seeded with ``seed + 1``, so that they never shift the retain
    shuffles that :func:`train_on` draws with ``seed``.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    while True:
        yield from dataset.batches(
            ids, batch_size, shuffle=True, generator=generator, device=device
        )


def check_share(value: float, param: str) -> float:
    """Return ``value`` as a float in (0, 1]: a share of a set that may be all of it, not none."""
    fraction = check_fraction(value, param, inclusive=True)
    if fraction == 0:
        raise fail(param, "a number in (0, 1]", value)
    return fraction


def draw_ids(ids: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` of ``ids`` (all of them if there are fewer), drawn without replacement, sorted.

    One ``rng.choice`` call: the same ``rng`` state draws the same ids.
    """
    return np.sort(rng.choice(ids, size=min(count, len(ids)), replace=False))


def random_subset(
    ids: np.ndarray, fraction: float, rng: np.random.Generator, *, of: int | None = None
) -> np.ndarray:
    """A seeded random subset such as D_r': ``round(fraction * n)`` of ``ids``, at least one.

    Args:
        ids: The sorted ids to draw from (e.g. the retain split).
        fraction: Share to keep; 1 or more keeps ``ids`` as they are and draws nothing.
        rng: Source of the draw (:func:`draw_ids`).
        of: ``n``, the count the fraction is of; ``len(ids)`` when not given (lightweight
            unlearning takes a fraction of the whole training set from retain).

    Returns:
        Sorted ids, a subset of ``ids`` (at most all of them; empty when ``ids`` is).
    """
    if fraction >= 1:
        return ids
    total = len(ids) if of is None else of
    return draw_ids(ids, max(1, round(fraction * total)), rng)


def recorded_arch(original: LoadedModel, method: str, *, purpose: str = "to rebuild") -> str:
    """The name of the original's architecture, for methods that build a new network of it.

    Args:
        original: The model before unlearning.
        method: The method's name, for the message.
        purpose: What the architecture is for, completing "needs an architecture ...".

    Raises:
        ConfigError: The original has no recorded architecture (TorchScript or pickle).
    """
    if original.info.arch is None:
        raise ConfigError(
            f"{method} needs an architecture {purpose}, but the original was loaded from "
            "TorchScript or a pickle; save its state_dict and load that with --arch NAME."
        )
    return original.info.arch


def fresh_network(
    original: LoadedModel, *, seed: int, method: str, purpose: str = "to rebuild"
) -> nn.Module:
    """A newly initialised network of the original's architecture (no input normalisation).

    Every parameter and buffer is initialised under ``seed``; the caller's global RNG state
    is left as it was. On CPU, in train mode.

    Raises:
        ConfigError: The original has no recorded architecture (see :func:`recorded_arch`).
    """
    arch = recorded_arch(original, method, purpose=purpose)
    info = original.info
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(arch, info.num_classes, info.input_shape, arch_kwargs=info.arch_kwargs)
