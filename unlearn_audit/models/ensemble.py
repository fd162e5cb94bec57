"""SISA's sharded ensemble as one network (Bourtoule et al., IEEE S&P 2021).

A :class:`ShardEnsemble` holds S shard networks of one zoo architecture and answers with the
log of their *averaged probabilities*, so that its softmax is the ensemble's posterior and every
check (membership attacks included) can audit it like any classifier. METHODS.md section 16
notes that the repository's majority vote makes posteriors non-standard; averaging is its
``softmax`` aggregation option.

It also carries what exact unlearning needs, so that one checkpoint is the whole bundle:

- ``checkpoints[s][r]``: shard ``s`` as it was *before* it trained on slice ``r`` (frozen
  copies, never used in ``forward``);
- ``member_ids``, ``member_shard``, ``member_slice``: where each training sample went; a
  deleted sample keeps its row with slice ``-1``.

The checkpoints are registered before the live shards, so layer searches that take the last
``Conv2d`` / ``Linear`` (Grad-CAM, penultimate features) read the last live shard.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearn_audit._validation import check_positive_int
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.zoo import ARCHS, build_model

SISA_ARCH = "sisa"
_MEMBER_BUFFERS = ("member_ids", "member_shard", "member_slice")


class ShardEnsemble(nn.Module):
    """S shard networks answering together with ``log(mean_s softmax(net_s(x)))``.

    Args:
        shards: The live shard networks (logits out).
        checkpoints: ``checkpoints[s][r]``, shard ``s`` before slice ``r``; all the same
            architecture as the shards.
    """

    member_ids: torch.Tensor
    member_shard: torch.Tensor
    member_slice: torch.Tensor

    def __init__(self, shards: list[nn.Module], checkpoints: list[list[nn.Module]]) -> None:
        super().__init__()
        if not shards or len(checkpoints) != len(shards):
            raise ValueError("one list of slice checkpoints per shard is needed")
        self.checkpoints = nn.ModuleList(nn.ModuleList(row) for row in checkpoints)
        self.checkpoints.requires_grad_(False)
        self.shards = nn.ModuleList(shards)
        for name in _MEMBER_BUFFERS:
            self.register_buffer(name, torch.zeros(0, dtype=torch.int64))

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def num_slices(self) -> int:
        return len(self.checkpoints[0])  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([F.softmax(net(x), dim=1) for net in self.shards]).mean(0)
        return probs.clamp_min(1e-12).log()

    def prepare_state(self, state: dict[str, torch.Tensor]) -> None:
        """Size the member buffers like those in ``state`` (their length is the data's)."""
        for name in _MEMBER_BUFFERS:
            if name in state:
                setattr(self, name, torch.zeros_like(state[name], dtype=torch.int64))

    def set_members(self, ids: torch.Tensor, shard: torch.Tensor, slice_: torch.Tensor) -> None:
        """Record the assignment: sample ``ids[i]`` is in ``shard[i]``, ``slice_[i]`` (-1: gone)."""
        self.member_ids = ids.to(torch.int64).cpu()
        self.member_shard = shard.to(torch.int64).cpu()
        self.member_slice = slice_.to(torch.int64).cpu()


def check_cells(members: int, shards: int, slices: int) -> None:
    """Raise unless ``members`` samples give every one of ``shards x slices`` slices one.

    Raises:
        ConfigError: Too few members.
    """
    if members < shards * slices:
        raise ConfigError(
            f"SISA needs at least one sample per slice, but {members} members cannot fill "
            f"{shards} shards x {slices} slices; lower `sisa_shards` or `sisa_slices`."
        )


@ARCHS.register(SISA_ARCH)
def sisa(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    base: str = "small-cnn",
    base_kwargs: dict[str, Any] | None = None,
    shards: int = 5,
    slices: int = 1,
) -> nn.Module:
    """SISA ensemble of ``shards`` ``base`` networks, each with ``slices`` slice checkpoints.

    Train it with ``unlearn-audit train --sisa-shards S --sisa-slices R`` (plain training would
    fit the ensemble jointly, which is not SISA).
    """
    check_positive_int(shards, "sisa_shards")
    check_positive_int(slices, "sisa_slices")
    if base == SISA_ARCH:
        raise ConfigError("`arch` of a SISA ensemble must be a single network, not 'sisa'.")

    def one() -> nn.Module:
        return build_model(base, num_classes, input_shape, arch_kwargs=base_kwargs)

    checkpoints = [[one() for _ in range(slices)] for _ in range(shards)]
    return ShardEnsemble([one() for _ in range(shards)], checkpoints)
