"""UNSIR: error-maximising noise per forgotten class, then impair and repair.

Tarun, Chundawat, Mandal & Kankanhalli, "Fast Yet Effective Machine Unlearning", IEEE TNNLS
2023 (``vikram2000b/Fast-Machine-Unlearning``, ``Machine Unlearning.ipynb``); METHODS.md
section 11. The shared noise, impair and repair pieces are in :mod:`methods._noise`.
"""

from __future__ import annotations

import torch

from methods._distill import frozen_copy
from methods._noise import (
    IMPAIR_REPAIR_DEFAULTS,
    NOISE_DEFAULTS,
    initial_noise,
    maximize_error,
    unlearn_with_noise,
)
from methods.base import register_method
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier

DEFAULTS = {**IMPAIR_REPAIR_DEFAULTS, **NOISE_DEFAULTS}


def class_noise(
    original: LoadedModel,
    classes: tuple[int, ...],
    input_shape: tuple[int, int, int],
    generator: torch.Generator,
    *,
    batch_size: int,
    device: torch.device,
    lr: float,
    steps: int,
    l2_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One error-maximising noise batch per class, each learned on its own and labelled with it.

    Args:
        original: The model the noise is learned against, as a frozen copy in eval mode
            (:func:`~methods._distill.frozen_copy`: BatchNorm keeps its running statistics,
            which the noise therefore cannot change); not modified.
        classes: The forgotten classes, in order.
        input_shape: ``(C, H, W)``.
        generator: Source of the N(0, 1) starting noise (drawn class after class).
        batch_size: Noise samples per class.
        device: Where to learn the noise.
        lr: Adam learning rate of the noise.
        steps: Adam steps per class.
        l2_weight: Weight of the L2 penalty.

    Returns:
        Noise ``(k * batch_size, C, H, W)`` in normalised input space, on ``device``, class
        blocks in the order of ``classes``, and its labels ``(k * batch_size,)``.
    """
    model = frozen_copy(original.module, device)
    noises, labels = [], []
    for label in classes:
        targets = torch.full((batch_size,), label, dtype=torch.int64)
        start = initial_noise(batch_size, input_shape, generator).to(device)
        noise = maximize_error(
            model,
            start,
            targets,
            original.normalization,
            lr=lr,
            steps=steps,
            l2_weight=l2_weight,
        )
        noises.append(noise)
        labels.append(targets)
    return torch.cat(noises), torch.cat(labels)


@register_method(
    "unsir",
    scope=("class",),
    needs=("forget class ids", "a retain subset (retain_per_class per class)"),
    defaults=DEFAULTS,
    paper=(
        "Tarun, Chundawat, Mandal & Kankanhalli, 'Fast Yet Effective Machine Unlearning', IEEE "
        "TNNLS 2023 (vikram2000b/Fast-Machine-Unlearning); noise in eval mode, each class's "
        "noise labelled with its class"
    ),
    summary="learn error-maximising noise per forgotten class; impair on it + retain, repair",
)
def unsir(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    retain_per_class: int,
    noise_batch_size: int,
    noise_steps: int,
    noise_lr: float,
    l2_weight: float,
    copies: int,
    batch_size: int,
    impair_lr: float,
    impair_epochs: int,
    repair_lr: float,
    repair_epochs: int,
) -> Classifier:
    """UNSIR without reading the forget set: noise per class, impair, repair.

    1. For each forgotten class ``c`` (in order), learn a batch of ``noise_batch_size`` noise
       samples ``z`` from N(0, 1) in normalised input space with ``noise_steps`` Adam steps at
       ``noise_lr`` on ``-CE(model(z), c) + l2_weight * mean ||z_i||^2``, the model a frozen
       copy in eval mode (:func:`class_noise`).
    2. Impair: one shuffled pass (``impair_epochs``) of Adam at ``impair_lr`` over ``copies``
       copies of every class's noise, labelled with its class, together with D_r'
       (``retain_per_class`` random retain samples of every retained class).
    3. Repair: ``repair_epochs`` of Adam at ``repair_lr`` on D_r'.

    The cost of step 1 grows linearly with the number of forgotten classes, and so does the
    impair set (USI(F)R, :mod:`methods.usifr`, removes both). With many classes the noise
    outweighs D_r' in the impair set and the retain classes suffer: on digits, forgetting six
    classes leaves 0.91 retain-class test accuracy on average (USI(F)R: 0.98).

    Departures from the notebook (``Machine Unlearning.ipynb``):

    - Its bugs fixed (METHODS.md 11f): each class's noise is labelled with that class, not 0,
      and the noise is learned with the model in eval mode, so the BatchNorm statistics stay
      untouched.
    - D_r' is a seeded random draw per class, not the first ``n`` samples of each class.
    - The defaults are scaled to small originals (:mod:`methods._noise`): batch 32 for both
      stages, a noise batch of 64 with 8 copies, 100 retain samples per class, Adam at 0.005
      (impair) and 0.002 (repair, 2 epochs) instead of 256, 20 copies, 1000 per class, 0.02
      and 0.01 for one epoch. The noise's optimiser, steps and L2 weight are the notebook's.

    Args:
        original: The model before unlearning; not modified.
        dataset: Where the ids come from.
        splits: A class request: ``forget_classes`` and ``retain``; the forget set is never
            read.
        seed: Seed of the noise, the retain subset and the shuffles.
        device: Where to learn the noise and train.
        progress: Show progress bars.
        retain_per_class: Size of D_r' per retained class.
        noise_batch_size: Noise samples learned per forgotten class.
        noise_steps: Adam steps of the noise per class.
        noise_lr: Adam learning rate of the noise.
        l2_weight: Weight of the noise's mean squared L2 norm.
        copies: Copies of each class's noise in the impair set.
        batch_size: Samples per step of impair and repair.
        impair_lr: Adam learning rate of the impair stage.
        impair_epochs: Passes over the impair set.
        repair_lr: Adam learning rate of the repair stage.
        repair_epochs: Passes over D_r' (0: no repair).

    Returns:
        The unlearned copy.

    Raises:
        ConfigError: A value outside its range.
    """
    return unlearn_with_noise(
        original,
        dataset,
        splits,
        class_noise,
        name="unsir",
        seed=seed,
        device=device,
        progress=progress,
        retain_per_class=retain_per_class,
        noise_batch_size=noise_batch_size,
        noise_steps=noise_steps,
        noise_lr=noise_lr,
        l2_weight=l2_weight,
        copies=copies,
        batch_size=batch_size,
        impair_lr=impair_lr,
        impair_epochs=impair_epochs,
        repair_lr=repair_lr,
        repair_epochs=repair_epochs,
    )
