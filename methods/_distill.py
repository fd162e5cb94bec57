"""Knowledge distillation pieces that SCRUB and lightweight unlearning share.

Both pull a student (the model being unlearned) towards a frozen teacher's posteriors: SCRUB
towards the original on retain and away from it on forget, lightweight unlearning towards a
reference model trained on a retain subset, on forget. The loss is the one of SCRUB's
repdistiller ``DistillKL`` (``thirdparty/repdistiller/distiller_zoo/KD.py``): the KL divergence
of the temperature-softened distributions, summed over classes, averaged over the batch and
scaled by ``T^2`` so that its gradients keep their size as the temperature changes (Hinton et
al., 2015).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from unlearn_audit._validation import fail


def distill_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the batch.

    Args:
        student_logits: ``(N, C)`` logits ``s`` of the model being trained (differentiated).
        teacher_logits: ``(N, C)`` logits ``t`` of the frozen model (not differentiated).
        temperature: ``T`` > 0; 1 gives the plain KL divergence of the two posteriors.

    Returns:
        A scalar >= 0 (0 when the two softened distributions agree).
    """
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    per_sample = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(dim=1)
    return per_sample.mean() * temperature**2


def check_temperature(value: float, param: str = "temperature") -> float:
    """Return ``value`` if it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(param, "a finite number > 0", value)
    if not math.isfinite(value) or value <= 0:
        raise fail(param, "a finite number > 0", value)
    return float(value)


def frozen_copy(model: nn.Module, device: torch.device | str) -> nn.Module:
    """A copy of ``model`` on ``device`` in eval mode with no parameter requiring gradients.

    The teacher of a distillation: its BatchNorm layers use their running statistics and it
    never changes, whatever the student does; ``model`` itself is not touched.
    """
    teacher = copy.deepcopy(model).to(device).eval()
    teacher.requires_grad_(False)
    return teacher
