"""Fine-tune (FT): continue training the original on the retain set only.

Forgetting comes only from catastrophic forgetting, so FT is weak on class forgetting
(output-level: the forgotten class is relearned fast) and under-forgets random samples; it is
the usual baseline and the "repair" stage of many other methods (METHODS.md section 2).
"""

from __future__ import annotations

import torch

from methods._training import make_recipe, train_on
from methods.base import register_method
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier


@register_method(
    "finetune",
    scope=("class", "sample"),
    needs=("retain",),
    defaults={"lr": 0.02, "epochs": 5, "batch_size": 64, "momentum": 0.9, "weight_decay": 5e-4},
    paper=(
        "fine-tune baseline of Golatkar, Achille & Soatto, CVPR 2020; settings of the SSD repo "
        "(Foster, Schoepf & Brintrup, AAAI 2024)"
    ),
    summary="continue training the original on the retain set (SGD; weak on class forgetting)",
)
def finetune(
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
) -> Classifier:
    """Fine-tune a copy of ``original`` on ``splits.retain`` with plain cross-entropy.

    Defaults follow the SSD repo (``src/forget_*_strategies.py::finetune`` with
    ``utils.fit_one_cycle``): 5 epochs of SGD at a constant lr 0.02, momentum 0.9, weight
    decay 5e-4, batch 64 (the repo's default ``-b``). SalUn and SCRUB use 10 epochs at lr 0.01
    instead (``--hp epochs=10 lr=0.01``). No augmentation, as in the repo's unlearning runs.

    Args:
        original: The model before unlearning; not modified.
        dataset: Where the ids come from.
        splits: Only ``retain`` is used.
        seed: Seed of the shuffles.
        device: Where to train.
        progress: Show a progress bar.
        lr: Constant SGD learning rate.
        epochs: Passes over the retain set.
        batch_size: Retain samples per step.
        momentum: SGD momentum.
        weight_decay: L2 penalty.

    Returns:
        The fine-tuned copy.
    """
    recipe = make_recipe(
        lr=lr, epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay
    )
    return train_on(
        original.module,
        dataset,
        splits.retain,
        recipe,
        seed=seed,
        device=device,
        progress=progress,
        desc="unlearn finetune",
    )
