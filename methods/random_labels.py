"""Random labels (RL): fine-tune on the forget set relabelled to wrong classes, plus retain.

Also called "amnesiac" in the SSD and bad-teaching repos; it is *not* Graves et al.'s
gradient-subtraction method (METHODS.md section 4 and 14). Output-level forgetting: strong for
classes, but it over-forgets random samples (their outputs turn high-entropy, which an MIA
spots).
"""

from __future__ import annotations

import numpy as np
import torch

from methods._training import check_share, make_recipe, random_subset, train_on
from methods.base import register_method, request_scope
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.train import BatchTransform


def wrong_labels(
    labels: np.ndarray,
    num_classes: int,
    rng: np.random.Generator,
    *,
    forget_classes: tuple[int, ...] = (),
) -> np.ndarray:
    """One uniformly drawn wrong label per sample.

    Args:
        labels: ``(N,)`` true labels.
        num_classes: ``C``.
        rng: Source of the draw.
        forget_classes: For class requests: draw from the classes that are *not* forgotten
            (so a sample never moves to another forgotten class). Empty for sample requests:
            draw from the ``C - 1`` classes other than the sample's own.

    Returns:
        ``(N,)`` int64 labels, each different from the true one.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if forget_classes:
        allowed = np.setdiff1d(np.arange(num_classes), forget_classes)
        return allowed[rng.integers(0, len(allowed), size=len(labels))].astype(np.int64)
    if num_classes < 2:
        raise ConfigError("random labels need at least 2 classes to draw a wrong label from.")
    shift = rng.integers(1, num_classes, size=len(labels))
    return ((labels + shift) % num_classes).astype(np.int64)


def relabel_transform(ids: np.ndarray, new_labels: np.ndarray) -> BatchTransform:
    """A batch transform that gives the samples ``ids`` (sorted) the labels ``new_labels``."""
    ids = np.asarray(ids, dtype=np.int64)
    new_labels = np.asarray(new_labels, dtype=np.int64)

    def transform(
        x: torch.Tensor, y: torch.Tensor, batch_ids: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pos = np.minimum(np.searchsorted(ids, batch_ids), len(ids) - 1)
        hit = ids[pos] == batch_ids
        if not hit.any():
            return x, y
        y = y.clone()
        where = torch.from_numpy(np.flatnonzero(hit)).to(y.device)
        y[where] = torch.from_numpy(new_labels[pos[hit]]).to(device=y.device, dtype=y.dtype)
        return x, y

    return transform


def relabelled_forget(
    dataset: Dataset, splits: Splits, rng: np.random.Generator
) -> tuple[np.ndarray, BatchTransform]:
    """The forget ids (sorted) and a batch transform that gives each a wrong label.

    The labels are :func:`wrong_labels` of the forget samples, drawn once from ``rng``; for a
    class request they avoid every forgotten class.
    """
    forget = np.sort(splits.forget)
    forget_classes = splits.forget_classes if request_scope(splits) == "class" else ()
    new_labels = wrong_labels(
        dataset.labels[forget], dataset.num_classes, rng, forget_classes=forget_classes
    )
    return forget, relabel_transform(forget, new_labels)


@register_method(
    "random-labels",
    scope=("class", "sample"),
    needs=("forget", "retain"),
    defaults={"lr": 1e-4, "epochs": 3, "batch_size": 128, "retain_fraction": 1.0},
    paper=(
        "relabelling of Graves, Nagisetty & Ganesh, AAAI 2021; settings of the bad-teaching "
        "notebook (Chundawat et al., AAAI 2023) and the SSD repo's `amnesiac`"
    ),
    summary="fine-tune on the forget set relabelled to random wrong classes, with retain (Adam)",
)
def random_labels(
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
    retain_fraction: float,
) -> Classifier:
    """Train a copy of ``original`` on forget (relabelled) and retain, shuffled together.

    Defaults follow the SSD repo's ``amnesiac`` (``fit_one_unlearning_cycle``): 3 epochs of
    Adam at a constant lr 1e-4 (no weight decay), batch 128, all of D_r. Labels: for a class
    request, uniform over the classes not forgotten (as the repo does); for a sample request,
    uniform over the classes other than the sample's own (the repo resamples until it
    differs). Each forget sample keeps its label for the whole run. SalUn instead draws over
    all classes and alternates passes; we follow the SSD repo.

    Args:
        original: The model before unlearning; not modified.
        dataset: Where the ids come from.
        splits: ``forget`` (relabelled) and ``retain``.
        seed: Seed of the labels, the retain subset and the shuffles.
        device: Where to train.
        progress: Show a progress bar.
        lr: Constant Adam learning rate.
        epochs: Passes over forget plus the retain part.
        batch_size: Samples per step.
        retain_fraction: Fraction of the retain set (D_r') trained on, in (0, 1].

    Returns:
        The trained copy.
    """
    fraction = check_share(retain_fraction, "retain_fraction")
    recipe = make_recipe(optimizer="adam", lr=lr, epochs=epochs, batch_size=batch_size)
    rng = np.random.default_rng(seed)
    forget, relabel = relabelled_forget(dataset, splits, rng)
    retain = random_subset(splits.retain, fraction, rng)
    return train_on(
        original.module,
        dataset,
        np.concatenate([forget, retain]),
        recipe,
        seed=seed,
        device=device,
        batch_transform=relabel,
        progress=progress,
        desc="unlearn random-labels",
    )
