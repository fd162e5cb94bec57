"""The maths of the entanglement-reduced mask (ERM) and of knowledge prohibition (seed 000).

Lin et al., "ERM-KTP: Knowledge-level Machine Unlearning via Knowledge Transfer", CVPR 2023
(code: RUIYUN-ML/ERM-KTP). ``G`` is the class-channel mask matrix ``(C, K)``: row ``c`` says
which of the ``K`` channels of the last conv stage class ``c`` may use. The repository stores
its transpose ``(K, C)``; everything here takes the paper's orientation, rows = classes.

Pure tensor functions. Unlike the rest of ``functional/`` they take torch tensors, because the
penalty must be differentiable (:func:`erm_regulariser`); ``functional/__init__`` does not import
this module, so the package itself stays torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from unlearn_audit._validation import fail

__all__ = [
    "channel_keep",
    "erm_regulariser",
    "expand_channel_mask",
    "normalise_and_clip",
    "zero_rows",
]


def _check_g(g: torch.Tensor) -> torch.Tensor:
    if not isinstance(g, torch.Tensor) or g.dim() != 2 or 0 in g.shape:
        shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
        raise fail("g", "a non-empty tensor of shape (C, K)", shape)
    return g


def _check_classes(classes: Iterable[int], num_classes: int) -> list[int]:
    chosen = sorted({int(c) for c in classes})
    if not chosen or chosen[0] < 0 or chosen[-1] >= num_classes:
        raise fail("classes", f"one or more class indices in [0, {num_classes})", chosen)
    return chosen


def erm_regulariser(
    g: torch.Tensor, *, density: float = 0.1, orthogonality: float = 0.1
) -> torch.Tensor:
    """The ERM penalty on ``G``: an L1 budget plus the inner products of class rows.

    ``ReLU(||G||_1 - density * C * K) + orthogonality * sum_{c < c'} (G G^T)[c, c']``: the
    paper's Eq. (4) with ``p = 1`` and ``alpha = density * C * K``, plus Eq. (6) weighted as in
    the repository (``ERM_laryer.loss_function``: budget 0.1 of the entries, weight 0.1).
    Training multiplies it by ``lambda_reg``; ``orthogonality`` fixes the ratio of the paper's
    lambda_3 to lambda_2.

    Args:
        g: Mask matrix ``(C, K)``.
        density: L1 budget as a share of the ``C K`` entries (the paper's alpha / (C K)).
        orthogonality: Weight of the inner-product term.

    Returns:
        A scalar tensor (differentiable in ``g``); 0 for a within-budget ``G`` whose class rows
        share no channel.
    """
    g = _check_g(g)
    c, k = g.shape
    budget = torch.relu(g.abs().sum() - density * c * k)
    inner = torch.triu(g @ g.T, diagonal=1).sum()
    return budget + orthogonality * inner


def normalise_and_clip(g: torch.Tensor) -> torch.Tensor:
    """The projection step after every update: each channel divided by its peak, then [0, 1].

    Follows the repository (``clip_lmask``), which normalises each *channel* (column of ``G``)
    by its maximum over classes; the paper writes the normalisation per class row. Per channel
    is what gives the paper's reported L1-density of ``1 / C`` at convergence (every channel
    keeps one class at 1). Departure: a channel whose maximum is not positive becomes all 0
    (what the clip does to non-positive entries) instead of the repository's division by a
    non-positive number (NaN or flipped signs).

    Args:
        g: Mask matrix ``(C, K)``.

    Returns:
        A new ``(C, K)`` tensor in [0, 1] whose every non-zero column has maximum 1.
    """
    g = _check_g(g)
    peak = g.max(dim=0, keepdim=True).values
    scaled = torch.where(peak > 0, g / peak.clamp_min(torch.finfo(g.dtype).tiny), 0.0)
    return scaled.clamp(0.0, 1.0)


def channel_keep(
    g: torch.Tensor, classes: Iterable[int], *, threshold: float = 0.0
) -> torch.Tensor:
    """The channel mask of knowledge prohibition: which channels carry none of ``classes``.

    Channel ``k`` is kept when ``G[c, k] <= threshold`` for every class ``c`` in ``classes``
    (the paper's Eq. (9)-(10): the AND over the target classes). With ``threshold = 0`` this
    is the repository's rule (any positive entry prohibits the channel); the paper's text
    prohibits only entries equal to 1.

    Args:
        g: Mask matrix ``(C, K)``.
        classes: Target class indices (one or several).
        threshold: Entries above it prohibit their channel.

    Returns:
        Boolean ``(K,)``: ``True`` for channels that stay.

    Raises:
        ConfigError: No classes, or a class outside ``[0, C)``.
    """
    g = _check_g(g)
    rows = _check_classes(classes, g.shape[0])
    return (g[rows] <= threshold).all(dim=0)


def zero_rows(g: torch.Tensor, classes: Iterable[int]) -> torch.Tensor:
    """``G`` with the rows of ``classes`` set to 0 (the paper's GKT step, Eq. (13))."""
    g = _check_g(g)
    out = g.clone()
    out[_check_classes(classes, g.shape[0])] = 0.0
    return out


def expand_channel_mask(keep: torch.Tensor, in_features: int) -> torch.Tensor:
    """A per-channel mask ``(K,)`` spread over the inputs of a Linear that reads the features.

    The inputs are the flattened ``(K, H, W)`` map (channel-major, as ``torch.flatten`` lays
    it out) or its pooled ``(K,)`` vector, so input ``j`` belongs to channel ``j // (H W)``.

    Raises:
        ConfigError: ``in_features`` is not a multiple of ``K``.
    """
    k = keep.numel()
    if k == 0 or in_features % k:
        raise fail("in_features", f"a positive multiple of the {k} channels", in_features)
    return keep.reshape(-1).repeat_interleave(in_features // k)
