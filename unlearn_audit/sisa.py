"""SISA training (Bourtoule et al., IEEE S&P 2021): sharded, isolated, sliced, aggregated.

The members are shuffled under the seed and cut into S shards, each shard into R slices. Shard
``s`` trains incrementally: on slice 0, then on slices 0-1, ... up to all R slices, saving its
state before each slice in the ensemble (:class:`~unlearn_audit.models.ensemble.ShardEnsemble`).
Each slice stage gets ``max(1, round(2 * epochs / (R + 1)))`` epochs of the recipe, the
repository's ``2R / (R + 1) * e / R`` budget. Every stage has its own seed, derived from the
training seed, the shard and the slice, so that retraining a shard from a slice checkpoint
(:func:`train_shard`, what the ``sisa`` method does for a request) gives exactly the network
that training on the remaining data from scratch would have given.
"""

from __future__ import annotations

import copy
from typing import cast

import numpy as np
import torch
from torch import nn

from unlearn_audit.data.datasets import Dataset, Normalization
from unlearn_audit.loop import BatchTransform, fit
from unlearn_audit.models.ensemble import SISA_ARCH, ShardEnsemble, check_cells
from unlearn_audit.models.layers import Classifier
from unlearn_audit.recipe import Recipe


def slice_epochs(epochs: int, slices: int) -> int:
    """Epochs of each slice stage: ``max(1, round(2 * epochs / (slices + 1)))``."""
    return max(1, round(2 * epochs / (slices + 1)))


def stage_seed(seed: int, shard: int, slice_: int) -> int:
    """The seed of shard ``shard``'s training stage on slices ``0..slice_``."""
    return seed * 1_000_003 + 1_009 * shard + slice_ + 1


def assign_members(
    members: np.ndarray, shards: int, slices: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``members`` under ``seed`` and cut them into shards and slices.

    Returns:
        ``(ids, shard, slice)``: sorted ids and, for each, its shard and slice.

    Raises:
        ConfigError: Fewer members than shards x slices.
    """
    members = np.unique(np.asarray(members, dtype=np.int64))
    check_cells(len(members), shards, slices)
    order = np.random.default_rng(seed).permutation(members)
    shard = np.empty(len(order), dtype=np.int64)
    slice_ = np.empty(len(order), dtype=np.int64)
    for s, part in enumerate(np.array_split(np.arange(len(order)), shards)):
        shard[part] = s
        for r, piece in enumerate(np.array_split(part, slices)):
            slice_[piece] = r
    by_id = np.argsort(order)
    return order[by_id], shard[by_id], slice_[by_id]


def sisa_ensemble(model: nn.Module) -> ShardEnsemble | None:
    """The :class:`ShardEnsemble` inside ``model`` (a Classifier or the ensemble), if any."""
    net = model.net if isinstance(model, Classifier) else model
    return net if isinstance(net, ShardEnsemble) else None


def train_shard(
    ensemble: ShardEnsemble,
    shard: int,
    first_slice: int,
    dataset: Dataset,
    recipe: Recipe,
    *,
    seed: int,
    normalization: Normalization | None,
    device: torch.device | str | None = "cpu",
    batch_transform: BatchTransform | None = None,
    progress: bool = False,
) -> None:
    """(Re)train shard ``shard`` of ``ensemble`` in place, from its state before ``first_slice``.

    The shard restarts from ``checkpoints[shard][first_slice]`` and trains the stages
    ``first_slice..R-1`` on the samples its member lists still hold (slice ``-1`` = deleted),
    refreshing the later checkpoints on the way. With ``first_slice = 0`` this is the initial
    training; a slice emptied by deletions is skipped (its stage would repeat the last one).
    """
    ids = ensemble.member_ids.numpy()
    in_shard = ensemble.member_shard.numpy() == shard
    slice_of = ensemble.member_slice.numpy()
    stage_recipe = recipe.with_options(epochs=slice_epochs(recipe.epochs, ensemble.num_slices))
    checkpoints = cast(nn.ModuleList, ensemble.checkpoints[shard])
    net = checkpoints[first_slice]
    for r in range(first_slice, ensemble.num_slices):
        if r > first_slice:
            checkpoints[r].load_state_dict(net.state_dict())
        stage_ids = ids[in_shard & (slice_of >= 0) & (slice_of <= r)]
        if len(stage_ids) == 0 or not np.any(in_shard & (slice_of == r)):
            continue
        trainable = copy.deepcopy(net).requires_grad_(True)  # checkpoints are frozen
        result = fit(
            Classifier(trainable, normalization),
            dataset,
            stage_ids,
            stage_recipe,
            seed=stage_seed(seed, shard, r),
            device=device,
            batch_transform=batch_transform,
            progress=progress,
            desc=f"shard {shard + 1}/{ensemble.num_shards} slice {r + 1}",
        )
        net = cast(Classifier, result.model).net.to("cpu")
    # a copy: when every stage was skipped, ``net`` is still the frozen checkpoint
    ensemble.shards[shard] = copy.deepcopy(net).to("cpu").requires_grad_(True)


def train_sisa(
    ensemble: ShardEnsemble,
    dataset: Dataset,
    members: np.ndarray,
    recipe: Recipe,
    *,
    seed: int,
    normalization: Normalization | None,
    device: torch.device | str | None = "cpu",
    batch_transform: BatchTransform | None = None,
    progress: bool = False,
) -> ShardEnsemble:
    """Assign ``members`` to shards and slices and train every shard (in place; returned).

    ``batch_transform`` is applied to every batch, as in :func:`~unlearn_audit.train.fit`
    (planting a backdoor).
    """
    ensemble.set_members(
        *map(
            torch.from_numpy,
            assign_members(members, ensemble.num_shards, ensemble.num_slices, seed=seed),
        )
    )
    for shard in range(ensemble.num_shards):
        train_shard(
            ensemble,
            shard,
            0,
            dataset,
            recipe,
            seed=seed,
            normalization=normalization,
            device=device,
            batch_transform=batch_transform,
            progress=progress,
        )
    return ensemble


__all__ = [
    "SISA_ARCH",
    "assign_members",
    "sisa_ensemble",
    "slice_epochs",
    "stage_seed",
    "train_shard",
    "train_sisa",
]
