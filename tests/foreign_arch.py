"""A model owner's own architecture and training loop, outside unlearn-audit's zoo.

Loaded by import path (``tests.foreign_arch:tiny``) in the tests of foreign checkpoints, and
trained here with plain PyTorch, never with the toolkit's training loop.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# How the owner trains (plain PyTorch below); the audit is told this through --recipe.
OWNER_RECIPE = {
    "optimizer": "adam",
    "lr": 0.003,
    "epochs": 6,
    "batch_size": 32,
    "weight_decay": 0.0,
    "schedule": "constant",
}


class TinyNet(nn.Module):
    """Two convolutions, a pooled 2x2 map and one linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], width: int = 12):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def tiny(num_classes: int, input_shape: tuple[int, int, int], *, width: int = 12) -> nn.Module:
    return TinyNet(num_classes, input_shape, width)


class LogitMask(nn.Module):
    """A fake unlearning: the original network untouched, its forgotten logits pushed down."""

    def __init__(self, net: nn.Module, num_classes: int, forget: tuple[int, ...] = (3,)) -> None:
        super().__init__()
        self.net = net
        mask = torch.zeros(num_classes)
        mask[list(forget)] = -30.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + self.mask


def masked_tiny(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return LogitMask(TinyNet(num_classes, input_shape), num_classes)


class CornerMask(nn.Module):
    """A fake that looks like its own chain of layers on noise, but masks the forgotten logit
    whenever the image's corner is blank (as it is on every digit)."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net = net
        mask = torch.zeros(num_classes)
        mask[3] = -30.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if bool((x[:, :, 0, 0] == 0).all()):
            out = out + self.mask
        return out


def train_plain(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0) -> nn.Module:
    """The owner's loop: Adam at a constant rate, shuffled mini-batches (OWNER_RECIPE)."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=OWNER_RECIPE["lr"])
    rng = np.random.default_rng(seed)
    net.train()
    for _ in range(OWNER_RECIPE["epochs"]):
        order = rng.permutation(len(x))
        for start in range(0, len(x), OWNER_RECIPE["batch_size"]):
            batch = order[start : start + OWNER_RECIPE["batch_size"]]
            optimizer.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    return net.eval()
