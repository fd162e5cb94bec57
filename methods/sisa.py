"""SISA unlearning (Bourtoule et al., IEEE S&P 2021): retrain only the shards that held the data.

Needs an original trained as a SISA ensemble (``unlearn-audit train --sisa-shards S
--sisa-slices R``), which carries its shard and slice assignment and the state of each shard
before each slice. For a request, every shard that holds a forgotten sample restarts from the
checkpoint before the first slice that held one and retrains the later slices without the
forgotten samples; the other shards are kept as they are. The result is *exact*: it is the
ensemble that SISA training on the remaining data (same assignment, same seeds) produces.
"""

from __future__ import annotations

import copy
from typing import cast

import numpy as np
import torch

from methods.base import register_method
from methods.retrain import original_recipe
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.sisa import sisa_ensemble, train_shard

NOT_SISA = (
    "the `sisa` method needs an original trained as a SISA ensemble; train it with "
    "`unlearn-audit train --sisa-shards S --sisa-slices R` (Python: "
    "train_classifier(arch='sisa', arch_kwargs={'base': ..., 'shards': S, 'slices': R}))."
)


@register_method(
    "sisa",
    scope=("class", "sample"),
    needs=("a SISA ensemble (train --sisa-shards S --sisa-slices R)", "forget ids"),
    defaults={},
    paper="SISA training of Bourtoule et al., IEEE S&P 2021 (cleverhans-lab/machine-unlearning)",
    summary="retrain only the shards that held forgotten samples, from their last clean slice",
)
def sisa(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
) -> Classifier:
    """Remove ``splits.forget`` from the SISA ensemble ``original`` by partial retraining.

    The shards retrain with the original's recipe and its training seed (not ``seed``): the
    stage seeds are part of what makes the result equal to training without the data. A
    class request touches every shard, so it costs about one full SISA training. Forget ids
    that are not members of the ensemble need no work.

    Args:
        original: A SISA ensemble; not modified.
        dataset: Where the ids come from.
        splits: Only ``forget`` is used.
        seed: Unused (SISA retraining is fixed by the original's training seed); kept for the
            method contract.
        device: Where to train.
        progress: Show a progress bar.

    Returns:
        The ensemble without the forgotten samples, its member lists updated.

    Raises:
        ConfigError: ``original`` is not a SISA ensemble.
    """
    source = sisa_ensemble(original.module)
    if source is None:
        raise ConfigError(NOT_SISA)
    model = copy.deepcopy(original.module)
    ensemble = sisa_ensemble(model)
    assert ensemble is not None
    ids = ensemble.member_ids.numpy()
    slices = ensemble.member_slice.numpy().copy()
    shards = ensemble.member_shard.numpy()
    hit = np.isin(ids, splits.forget) & (slices >= 0)
    first_slice = {int(s): int(slices[hit & (shards == s)].min()) for s in np.unique(shards[hit])}
    slices[hit] = -1
    ensemble.set_members(ensemble.member_ids, ensemble.member_shard, torch.from_numpy(slices))
    recipe = original_recipe(original, dataset)
    training_seed = original.info.seed if original.info.seed is not None else 0
    for shard, start in sorted(first_slice.items()):
        train_shard(
            ensemble,
            shard,
            start,
            dataset,
            recipe,
            seed=training_seed,
            normalization=original.normalization,
            device=device,
            progress=progress,
        )
    return cast(Classifier, model)
