"""Retrain from scratch (RfS): a fresh network of the original's architecture, trained on retain.

The reference every other method is judged against (METHODS.md section 1): with the same seed
it reproduces the audit's own reference model exactly, so ``unlearn-audit`` can run it as a
method too (for timing, or to check the audit against a known-good answer).
"""

from __future__ import annotations

import numpy as np
import torch

from methods._training import recorded_arch
from methods.base import register_method
from unlearn_audit._validation import check_positive_int
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.train import Recipe, default_recipe, train_classifier


def original_recipe(original: LoadedModel, dataset: Dataset) -> Recipe:
    """The recipe ``original`` was trained with, or the default for its dataset and arch."""
    if original.info.recipe:
        return Recipe.from_dict(original.info.recipe)
    return default_recipe(dataset.name, original.info.arch or "")


@register_method(
    "retrain",
    scope=("class", "sample"),
    needs=("retain", "the original's architecture and recipe"),
    defaults={"epochs": 0},
    paper=(
        "retrain-from-scratch reference (e.g. Golatkar, Achille & Soatto, CVPR 2020; Bourtoule "
        "et al., IEEE S&P 2021); the original's own training recipe"
    ),
    summary="train a freshly initialised copy of the architecture on retain (the gold standard)",
)
def retrain(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    epochs: int,
) -> Classifier:
    """Train a new network of ``original``'s architecture on ``splits.retain`` from scratch.

    The network is built fresh (every parameter and BatchNorm buffer newly initialised, not
    just the head: METHODS.md section 1, pitfall) under ``seed``, and trained with the
    original's recorded recipe (the toolkit's default recipe when none is recorded), so for a
    given seed the result is the audit's reference trained with that seed, bit for bit on CPU.
    Only the weights are learnt; the input normalisation is the original's.

    Args:
        original: The model before unlearning; gives the architecture, recipe and
            normalisation, and is not modified.
        dataset: Where the ids come from.
        splits: Only ``retain`` is used.
        seed: Seed of the initialisation and of the training run.
        device: Where to train.
        progress: Show a progress bar.
        epochs: Passes over the retain set; 0 keeps the recipe's own.

    Returns:
        The retrained network.

    Raises:
        ConfigError: The original has no recorded architecture (TorchScript or pickle).
    """
    recipe = original_recipe(original, dataset)
    if check_positive_int(epochs, "epochs", minimum=0):
        recipe = recipe.with_options(epochs=epochs)
    # the audit trains its references with train_classifier too: same seed, same network
    # (and a SISA original is retrained as a SISA ensemble)
    return train_like(
        original, dataset, splits.retain, recipe, seed=seed, device=device, progress=progress
    )


def train_like(
    original: LoadedModel,
    dataset: Dataset,
    ids: np.ndarray,
    recipe: Recipe,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    role: str = "retrained",
    method: str = "retrain",
) -> Classifier:
    """A fresh network of ``original``'s architecture and normalisation, trained on ``ids``.

    Built and trained by :func:`~unlearn_audit.train.train_classifier` under ``seed``, as the
    audit builds its references.

    Raises:
        ConfigError: The original has no recorded architecture (TorchScript or pickle).
    """
    trained = train_classifier(
        dataset,
        arch=recorded_arch(original, method),
        arch_kwargs=original.info.arch_kwargs,
        recipe=recipe,
        member_ids=ids,
        seed=seed,
        device=device,
        normalization=original.normalization,
        progress=progress,
        role=role,
    )
    return trained.module
