"""ERM-KTP: knowledge transfer and prohibition from an original trained with the ERM mask layer.

Lin et al., CVPR 2023 (RUIYUN-ML/ERM-KTP ``KTP.py``; METHODS.md section 9). The original must
have been trained with the entanglement-reduced mask ``G`` after its last conv stage
(``unlearn-audit train --erm``), which ties each channel to few classes. For a request to
forget classes ``T``:

1. *Channel mask* (Eq. 9-10): keep channel ``k`` only if ``G[c, k] = 0`` for every ``c`` in ``T``.
2. *Student*: the original's architecture with freshly initialised conv layers (BatchNorm
   included) and the original's head, frozen. In the head's first Linear the weight columns of
   prohibited channels are zeroed, in its last Linear the rows of ``T`` (FKT, Eq. 12).
3. *Conv transfer* (CKT, Eq. 11): train the student's conv layers on retain by MSE to the
   original's masked last-stage map, plus MSE of the pooled maps (the repository's second term).
4. *G transfer* (GKT, Eq. 13): the student keeps ``G`` with the rows of ``T`` zeroed, so the
   audit's representation check reports CSI and L1-density of the real ``G`` after unlearning.

As METHODS.md warns, with fresh conv layers this is retraining by feature distillation, and the
kept channels still respond to the forgotten classes: in the demo (class 3) the audit finds the
forgotten class's features closer to the original's than the reference's are (CKA 0.72 against
0.48) and a few-shot probe recalls it slightly better than on the reference.
"""

from __future__ import annotations

import copy
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods._training import fresh_network, make_recipe, train_on
from methods.base import register_method
from unlearn_audit._validation import fail
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.erm import erm_net
from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.erm import channel_keep, expand_channel_mask, zero_rows
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.erm import ErmNet
from unlearn_audit.models.layers import Classifier

NOT_ERM = (
    "erm-ktp needs an original trained with the ERM mask layer (unlearn-audit train --erm); "
    "this one has no mask G to choose channels with."
)
# the repository divides the lr by 10 at these epochs (MultiStepLR [10, 20])
DECAY_EPOCHS = (10, 20)


def _normalised(model: Classifier, x: torch.Tensor) -> torch.Tensor:
    if model.normalization is None:
        return x
    return (x - model.input_mean) / model.input_std


def _student(
    original: LoadedModel, classes: list[int], keep: torch.Tensor, *, seed: int, masked_bias: float
) -> Classifier:
    """Fresh conv layers under ``seed``; the original's head with FKT applied; G with GKT."""
    student = cast(ErmNet, fresh_network(original, seed=seed, method="erm-ktp"))
    teacher = erm_net(original.module)
    assert teacher is not None
    linears = [name for name, m in teacher.base.named_modules() if isinstance(m, nn.Linear)]
    state = {  # the head (every Linear after the conv stage) comes from the original
        f"{name}.{key}": value
        for name in linears
        for key, value in teacher.base.get_submodule(name).state_dict().items()
    }
    unexpected = student.base.load_state_dict(state, strict=False).unexpected_keys
    assert not unexpected, unexpected
    first, last = student.head_linears()
    with torch.no_grad():
        first.weight.mul_(expand_channel_mask(keep, first.in_features).to(first.weight.dtype))
        last.weight[classes] = 0.0
        if last.bias is not None:
            last.bias[classes] = masked_bias
        student.erm_mask.copy_(zero_rows(teacher.erm_mask.detach(), classes))
    return Classifier(student, original.normalization)


@register_method(
    "erm-ktp",
    scope=("class",),
    needs=("an ERM original (train --erm)", "retain", "the forgotten classes"),
    defaults={
        "epochs": 30,
        "lr": 0.1,
        "batch_size": 64,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "masked_bias": -30.0,
    },
    paper=(
        "Lin, Zhang, Yan, Sun & Wang, 'ERM-KTP: Knowledge-level Machine Unlearning via Knowledge "
        "Transfer', CVPR 2023 (RUIYUN-ML/ERM-KTP, KTP.py)"
    ),
    summary="fresh conv layers taught the ERM original's features minus the forgotten "
    "classes' channels (MSE on retain); head masked; G rows zeroed",
)
def erm_ktp(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float,
    weight_decay: float,
    masked_bias: float,
) -> Classifier:
    """Forget whole classes by knowledge transfer and prohibition from an ERM-trained original.

    Departures from the paper and the repository:

    - Epochs: the repository runs 200 (``parser_init.py``) with the lr divided by 10 at epochs
      10 and 20 (counted after a 5-epoch delay), but the paper's timing (124 s against 668 s
      for retraining) implies far fewer. Default 30 epochs with the decays at 10 and 20 (not
      delayed): on digits with small-cnn the student's retain-class test accuracy then ends
      within about a point of the original's; 30 epochs of MSE on retain cost about as much
      as training the original on digits. Batch 64 (the repository's 256 would give 4 steps
      per epoch on digits).
    - CKT target: the original's masked last-stage map (the paper's Eq. 11) and its global
      average (the repository's pooled term). The repository matches the *unmasked* map
      there, which contradicts its own pooled term on the prohibited channels.
    - Forgotten logits: the paper zeroes the target rows and biases of the last Linear, but a
      zero logit is not always the lowest, so forget accuracy is not guaranteed to be 0. The
      rows are zeroed and the biases set to ``masked_bias``, default -30: below every logit
      small-cnn gives on digits (the original's lowest is about -17, and the highest retained
      logit of every sample is above +1), so the forgotten classes are never predicted there.
      Not -inf or -1e4: the forgotten classes' confidences then lie thousands of standard
      deviations outside what the audit's per-example membership attack calibrates against,
      and it reports a perfect signal (LiRA AUC 1.0 against the reference's 0.48 in the demo;
      0.43-0.48 with 0 or -30). ``masked_bias=0`` is the paper's choice.
    - Multi-layer heads (small-cnn, lenet): the whole head is the original's and frozen; the
      channel mask acts on its first Linear, the class mask on its last.
    - The student's ``G`` is the original's with the target rows zeroed (GKT, paper Eq. 13;
      the repository leaves it unused). It is not used at inference.

    Args:
        original: A model trained with ``unlearn-audit train --erm``; not modified.
        dataset: Where the ids come from.
        splits: A class request: ``retain`` and ``forget_classes`` are used.
        seed: Seed of the student's initialisation and of the training run.
        device: Where to train.
        progress: Show a progress bar.
        epochs: Passes over retain in the conv transfer.
        lr: SGD learning rate, divided by 10 at epochs 10 and 20.
        batch_size: Retain samples per step.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        masked_bias: Bias of the forgotten classes' logits (their weights are 0).

    Returns:
        The student: new conv layers, the masked head, ``G`` with the target rows zeroed.

    Raises:
        ConfigError: The original has no ERM mask layer, a forgotten class holds no channel
            of ``G``, or ``G`` leaves no channel outside the forgotten classes.
    """
    teacher_net = erm_net(original.module)
    if teacher_net is None or original.info.arch is None:
        raise ConfigError(NOT_ERM)
    recipe = make_recipe(
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        momentum=momentum,
        weight_decay=weight_decay,
        decay_epochs=DECAY_EPOCHS,
    )
    if not np.isfinite(masked_bias):
        raise fail("masked_bias", "a finite number", masked_bias)
    classes = sorted(int(c) for c in splits.forget_classes)
    g = teacher_net.erm_mask.detach().cpu()
    empty = [c for c in classes if not bool(g[c].any())]
    if empty:
        raise ConfigError(
            f"class(es) {empty} hold no channel of the original's ERM mask, so there is no "
            "knowledge to prohibit and only their outputs could be masked; train the original "
            "with a lower --erm-lambda or a wider network."
        )
    keep = channel_keep(g, classes)
    if not bool(keep.any()):
        raise ConfigError(
            f"the original's ERM mask gives every channel to class(es) {classes}, so there is "
            "no knowledge left to transfer; train the original with a larger --erm-lambda "
            "(a sparser mask)."
        )
    student = _student(original, classes, keep, seed=seed, masked_bias=masked_bias)
    net = cast(ErmNet, student.net)
    for module in net.base.modules():  # only the conv stage learns
        if isinstance(module, nn.Linear):
            module.requires_grad_(False)
    net.erm.requires_grad_(False)

    teacher = copy.deepcopy(original.module).to(device).eval()
    teacher_net = cast(ErmNet, teacher.net)
    channels = keep.to(device=device, dtype=torch.float32)[None, :, None, None]

    def transfer_loss(
        model: nn.Module, x: torch.Tensor, _y: torch.Tensor, _ids: np.ndarray
    ) -> torch.Tensor:
        with torch.no_grad():
            target = teacher_net.feature_map(_normalised(teacher, x)) * channels
        live = cast(Classifier, model)
        mapped = cast(ErmNet, live.net).feature_map(_normalised(live, x))
        pooled = F.mse_loss(mapped.mean(dim=(2, 3)), target.mean(dim=(2, 3)))
        return F.mse_loss(mapped, target) + pooled

    trained = train_on(
        student,
        dataset,
        splits.retain,
        recipe,
        seed=seed,
        device=device,
        objective=transfer_loss,
        progress=progress,
        desc="erm-ktp transfer",
    )
    trained.requires_grad_(True)  # frozen only for the transfer; later probes train them all
    return trained
