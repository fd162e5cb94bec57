"""Per-parameter importances that Fisher masking, SSD, LFSSD and Fisher forgetting read.

Each function returns a dict ``{name: tensor}`` with one tensor per parameter, of that
parameter's shape, keyed like ``model.named_parameters()``. All of them run the model in eval
mode (no dropout, BatchNorm on its running statistics; METHODS.md, cross-cutting notes), leave
its mode, parameters and ``.grad`` as they were, and work on the device the model is on.

They differ only in what they average over the samples ``ids``:

* :func:`true_fisher`: the diagonal "true" Fisher, ``sum_y p(y|x) * grad(-log p(y|x))^2``
  (Golatkar et al.; Liu et al.), either exactly per sample or on mini-batches;
* :func:`squared_gradient_importance`: SSD's mini-batch empirical Fisher, the square of the
  gradient of the batch-mean cross-entropy;
* :func:`output_norm_importance`: LFSSD's label-free importance, the absolute gradient of the
  batch-mean squared L2 norm of the logits.

Mini-batch estimates depend on the batch size (squaring comes after averaging over the batch)
and, unless the batches are shuffled, on the order of ``ids``; pass a seeded ``generator`` to
draw the batches at random (class-sorted ids would otherwise give class-pure batches).

:func:`top_entries` ranks such per-parameter scores across the whole network, for the methods
that change only the top ones (Fisher masking, SalUn).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods._training import eval_mode
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.train import model_device

Importance = dict[str, torch.Tensor]
# (model, differentiated params, x, y) -> one term per param, and how many units they count
_Contribution = Callable[
    [nn.Module, list[torch.Tensor], torch.Tensor, torch.Tensor], tuple[list[torch.Tensor], int]
]


def _gradients(loss: torch.Tensor, params: list[torch.Tensor], *, keep: bool) -> list[torch.Tensor]:
    """``d loss / d params`` without touching ``.grad``; zeros for parameters ``loss`` skips."""
    grads = torch.autograd.grad(loss, params, retain_graph=keep, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _average(
    model: nn.Module,
    dataset: Dataset,
    ids: np.ndarray,
    *,
    batch_size: int,
    generator: torch.Generator | None,
    contribution: _Contribution,
) -> Importance:
    """Sum each batch's contribution over ``ids`` and divide by the units it counted.

    ``contribution(model, params, x, y)`` returns one tensor per differentiated parameter and
    the number of units it stands for (1 for a mini-batch term, the batch size for a sum of
    per-sample terms). Parameters with ``requires_grad=False`` get an importance of zero.
    """
    named = list(model.named_parameters())
    params: list[torch.Tensor] = [p for _, p in named if p.requires_grad]
    totals = [torch.zeros_like(p) for p in params]
    units = 0
    device = model_device(model)
    with eval_mode(model):
        batches = dataset.batches(
            ids, batch_size, shuffle=generator is not None, generator=generator, device=device
        )
        for x, y, _ in batches:
            terms, count = contribution(model, params, x, y)
            for total, term in zip(totals, terms, strict=True):
                total.add_(term.detach())
            units += count
    averaged = iter(total / max(units, 1) for total in totals)
    return {
        name: next(averaged) if p.requires_grad else torch.zeros_like(p, requires_grad=False)
        for name, p in named
    }


def _batch_gradient(
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor],
) -> _Contribution:
    """A contribution: ``transform`` of the gradient of ``loss(model, x, y)`` on one batch."""

    def contribution(
        net: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> tuple[list[torch.Tensor], int]:
        return [transform(g) for g in _gradients(loss(net, x, y), params, keep=False)], 1

    return contribution


def _mean_cross_entropy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(x), y)


def _mean_squared_output_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return net(x).pow(2).sum(dim=1).mean()


def squared_gradient_importance(
    model: nn.Module,
    dataset: Dataset,
    ids: np.ndarray,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> Importance:
    """SSD's importance: the mean over mini-batches of ``(d CE_batch / d theta)^2``.

    ``CE_batch`` is the mean cross-entropy of the batch with its true labels, so this is a
    mini-batch empirical Fisher, not a per-sample one (Foster et al., ``ssd.py``
    ``calc_importance``).

    Args:
        model: Takes images in [0, 1] ``(N, C, H, W)``; run in eval mode, not modified.
        dataset: Where the ids come from.
        ids: The samples (D_f or D).
        batch_size: Samples per mini-batch; the importance depends on it.
        generator: Shuffles the batches when given; dataset order otherwise.

    Returns:
        ``{name: (*param.shape)}``, each entry >= 0.
    """
    contribution = _batch_gradient(_mean_cross_entropy, lambda grad: grad.pow(2))
    return _average(
        model, dataset, ids, batch_size=batch_size, generator=generator, contribution=contribution
    )


def output_norm_importance(
    model: nn.Module,
    dataset: Dataset,
    ids: np.ndarray,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> Importance:
    """LFSSD's label-free importance: the mean over mini-batches of ``|d L / d theta|``.

    ``L`` is the batch mean of ``||f(x)||_2^2``, the squared L2 norm of each sample's logits
    (Foster et al., "Loss-Free Machine Unlearning", ICLR 2024 Tiny Paper; the SSD repo README).
    The labels are never read (``dataset`` gives only the images); arguments and result are
    those of :func:`squared_gradient_importance`.
    """
    contribution = _batch_gradient(_mean_squared_output_norm, torch.abs)
    return _average(
        model, dataset, ids, batch_size=batch_size, generator=generator, contribution=contribution
    )


def true_fisher(
    model: nn.Module,
    dataset: Dataset,
    ids: np.ndarray,
    *,
    batch_size: int,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
) -> Importance:
    """The diagonal "true" Fisher: the model's own predictive distribution weights each class.

    With ``per_sample`` it is exact: ``F = 1/N sum_i sum_y p(y|x_i) g_iy^2`` with ``g_iy`` the
    gradient of ``-log p(y|x_i)`` (Golatkar et al., ``Forgetting.ipynb`` ``hessian`` at batch
    1); ``batch_size`` then only sets how many samples are differentiated at once (with
    :mod:`torch.func`; TorchScript models fall back to one sample at a time, the same sum).
    Without it, the mini-batch estimate of the Fisher-masking repo (Liu et al., ``unlearn.py``
    ``hessian``): per batch and class ``y``, the batch-mean CE with every label set to ``y`` is
    differentiated and its squared gradient weighted by the batch-mean ``p(y|x)``; the terms
    are averaged over batches. At ``batch_size`` 1 both are the same number; at larger batches
    the estimate is on another scale (it pairs the batch-mean probability with the squared
    batch-mean gradient, so on a confident model, where each sample's likely classes have
    small gradients, it is orders of magnitude larger), and noise scales tuned on the exact
    Fisher do not carry over.

    Args:
        model: Takes images in [0, 1] ``(N, C, H, W)``; run in eval mode, not modified.
        dataset: Where the ids come from (labels are not read: every class is tried).
        ids: The samples.
        batch_size: Samples per batch.
        per_sample: Exact per-sample Fisher instead of the mini-batch estimate.
        generator: Shuffles the batches when given; dataset order otherwise.

    Returns:
        ``{name: (*param.shape)}``, each entry >= 0.
    """
    if per_sample and any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        # torch.func cannot trace TorchScript; batches of one give the same per-sample sum
        return true_fisher(model, dataset, ids, batch_size=1, generator=generator)
    contribution = _per_sample_fisher if per_sample else _minibatch_fisher
    return _average(
        model, dataset, ids, batch_size=batch_size, generator=generator, contribution=contribution
    )


def _minibatch_fisher(
    model: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[list[torch.Tensor], int]:
    logits = model(x)
    prob = logits.detach().softmax(dim=1)
    classes = logits.shape[1]
    totals = [torch.zeros_like(p) for p in params]
    for label in range(classes):
        target = torch.full_like(y, label)
        grads = _gradients(F.cross_entropy(logits, target), params, keep=label < classes - 1)
        weight = prob[:, label].mean()
        for total, g in zip(totals, grads, strict=True):
            total.add_(weight * g.pow(2))
    return totals, 1


def _per_sample_fisher(
    model: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[list[torch.Tensor], int]:
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    state = {**dict(model.named_buffers()), **frozen}
    weights = {name: p.detach() for name, p in zip(names, params, strict=True)}

    def nll(
        theta: dict[str, torch.Tensor], sample: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor:
        logits = torch.func.functional_call(model, {**state, **theta}, (sample.unsqueeze(0),))
        return F.cross_entropy(logits, label.unsqueeze(0))

    per_sample_grad = torch.func.vmap(torch.func.grad(nll), in_dims=(None, 0, 0))
    with torch.no_grad():
        prob = model(x).softmax(dim=1)
    totals = [torch.zeros_like(p) for p in params]
    for label in range(prob.shape[1]):
        grads = per_sample_grad(weights, x, torch.full_like(y, label))
        weight = prob[:, label]
        for name, total in zip(names, totals, strict=True):
            g = grads[name]
            total.add_((weight.view(-1, *([1] * (g.dim() - 1))) * g.pow(2)).sum(dim=0))
    return totals, len(x)


def top_entries(scores: Importance, fraction: float, *, minimum: int = 0) -> Importance:
    """Mark the largest entries of ``scores``, ranked together across every tensor.

    ``max(minimum, floor(fraction * n))`` of the ``n`` entries are selected; ties are broken by
    position (a stable sort over the tensors flattened in order), as the Fisher-masking and
    SalUn repos rank one flat list.

    Args:
        scores: One tensor per parameter (any shapes), e.g. an importance or its magnitude.
        fraction: Share of all entries to select, in [0, 1].
        minimum: Fewest entries to select.

    Returns:
        ``{name: bool tensor of the score's shape, on its device}``, ``True`` where selected.
    """
    names = list(scores)
    flat = torch.cat([scores[name].detach().flatten().cpu() for name in names])
    count = max(minimum, math.floor(fraction * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.sort(flat, descending=True, stable=True).indices[:count]] = True
    masks: Importance = {}
    start = 0
    for name in names:
        tensor = scores[name]
        masks[name] = chosen[start : start + tensor.numel()].view(tensor.shape).to(tensor.device)
        start += tensor.numel()
    return masks
