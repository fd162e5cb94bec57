"""The entanglement-reduced mask (ERM) layer and the ERM-CNN that carries it (seed 000).

Lin et al., "ERM-KTP: Knowledge-level Machine Unlearning via Knowledge Transfer", CVPR 2023
(code: RUIYUN-ML/ERM-KTP). An :class:`ErmNet` is a zoo CNN with a learnable class-channel
mask ``G`` between its last conv stage and its pooling / classifier head. It has two paths:

- the *standard* path, ``net(x)``: the mask is not applied, so for every audit check an ERM
  model is an ordinary classifier;
- the *ERM* path, ``net(x, labels=y)``: each sample's feature map is multiplied channel-wise by
  its label's row of ``G``. Training alternates between the paths (``unlearn-audit train
  --erm``, :mod:`unlearn_audit.erm`); ``net(x, prohibit=classes)`` additionally switches off
  the channels of the given classes (knowledge prohibition, the paper's Table 2).

``G`` is stored as ``(C, K)``, rows = classes as in the paper (the repository stores its
transpose ``(K, C)``), in the parameter ``erm_mask`` that the representation check reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearn_audit._validation import check_positive_int, fail
from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.erm import channel_keep
from unlearn_audit.models.zoo import ARCHS, LeNet, ResNet20, SmallCNN, build_model

ERM_ARCH = "erm"
ERM_BASES = ("lenet", "resnet18", "resnet20", "small-cnn")

Stage = Callable[[Any, torch.Tensor], torch.Tensor]


def _resnet18_trunk(net: Any, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


# per architecture: (last conv stage output, head from that map to logits, channels K)
_STAGES: dict[type, tuple[Stage, Stage, Callable[[Any], int]]] = {
    SmallCNN: (
        lambda n, x: n.features(x),
        lambda n, z: n.head(n.pool(z)),
        lambda n: n.head[1].in_features,
    ),
    LeNet: (
        lambda n, x: n.features(x),
        lambda n, z: n.classifier(z),
        lambda n: n.features[3].out_channels,
    ),
    ResNet20: (
        lambda n, x: n.layers(torch.relu(n.bn1(n.conv1(x)))),
        lambda n, z: n.fc(torch.flatten(n.pool(z), 1)),
        lambda n: n.fc.in_features,
    ),
}
# torchvision's ResNet (resnet18): matched by module, so that torchvision is imported only by
# whoever builds one
_TV_RESNET: tuple[Stage, Stage, Callable[[Any], int]] = (
    _resnet18_trunk,
    lambda n, z: n.fc(torch.flatten(n.avgpool(z), 1)),
    lambda n: n.fc.in_features,
)


def _stages(base: nn.Module, name: str) -> tuple[Stage, Stage, Callable[[Any], int]]:
    for kind in type(base).__mro__:
        if kind in _STAGES:
            return _STAGES[kind]
        if (kind.__module__, kind.__name__) == ("torchvision.models.resnet", "ResNet"):
            return _TV_RESNET
    raise ConfigError(
        f"`erm` needs a CNN whose last conv stage the mask layer can follow, one of "
        f"{', '.join(ERM_BASES)}; got {name!r}. Choose one of those with `arch`."
    )


class ErmMask(nn.Module):
    """The learnable mask ``G`` ``(C, K)``, initialised to 0.5 (the repository's value).

    Args:
        num_classes: ``C``.
        channels: ``K``, the channels of the feature map it masks.
    """

    def __init__(self, num_classes: int, channels: int) -> None:
        super().__init__()
        self.erm_mask = nn.Parameter(torch.full((num_classes, channels), 0.5))

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mask the feature map ``z`` ``(N, K, H, W)``.

        Args:
            z: The last conv stage's output.
            labels: ``(N,)``: multiply each sample by its label's row of ``G`` (ERM path).
            keep: ``(K,)`` booleans: zero the other channels for every sample (prohibition).
        """
        if labels is not None:
            z = z * self.erm_mask[labels][:, :, None, None]
        if keep is not None:
            z = z * keep.to(z.dtype)[None, :, None, None]
        return z


class ErmNet(nn.Module):
    """A zoo CNN with an :class:`ErmMask` after its last conv stage.

    Args:
        base: The CNN (one of :data:`ERM_BASES`); its modules and weights are used as they are.
        num_classes: ``C``.
        base_name: Its zoo name, for error messages.
        lambda_reg: Weight of the ERM penalty in ERM-path epochs (training setting).
        period: Epochs per alternation period; the last epoch of each takes the ERM path
            (training setting).

    Raises:
        ConfigError: ``base`` has no supported last conv stage.
    """

    def __init__(
        self,
        base: nn.Module,
        num_classes: int,
        *,
        base_name: str = "base",
        lambda_reg: float = 0.2,
        period: int = 3,
    ) -> None:
        super().__init__()
        channels = _stages(base, base_name)[2]
        # the base first: layer searches that take the last Conv2d / Linear read its layers
        self.base = base
        self.erm = ErmMask(num_classes, channels(base))
        self.lambda_reg = float(lambda_reg)
        self.period = int(period)

    @property
    def erm_mask(self) -> torch.Tensor:
        """``G`` ``(C, K)``, rows = classes."""
        return self.erm.erm_mask

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv stage's output ``(N, K, H, W)`` (unmasked)."""
        return _stages(self.base, "base")[0](self.base, x)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` from a (masked or not) feature map."""
        return _stages(self.base, "base")[1](self.base, z)

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        prohibit: Iterable[int] | None = None,
    ) -> torch.Tensor:
        """Logits ``(N, C)``: standard path, or ERM path with ``labels``, minus ``prohibit``.

        Args:
            x: Normalised inputs ``(N, C_in, H, W)``.
            labels: Take the ERM path: mask each sample by its label's row of ``G``.
            prohibit: Switch off the channels of these classes (:func:`channel_keep`).
        """
        keep = None if prohibit is None else channel_keep(self.erm_mask.detach(), prohibit)
        return self.classify(self.erm(self.feature_map(x), labels=labels, keep=keep))

    def head_linears(self) -> tuple[nn.Linear, nn.Linear]:
        """The first Linear of the head (it reads the feature map) and the last (the logits)."""
        linears = [m for m in self.base.modules() if isinstance(m, nn.Linear)]
        return linears[0], linears[-1]


@ARCHS.register(ERM_ARCH)
def erm(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    base: str = "small-cnn",
    base_kwargs: dict[str, Any] | None = None,
    lambda_reg: float = 0.2,
    period: int = 3,
) -> nn.Module:
    """A CNN with the entanglement-reduced mask layer of ERM-KTP after its last conv stage.

    Train it with ``unlearn-audit train --erm`` (alternate standard and ERM paths, see
    :mod:`unlearn_audit.erm`). ``lambda_reg`` defaults to 0.2, not the repository's 1e-3: that
    value is tuned for about 13,000 mask-path steps (67 ERM epochs of CIFAR at batch 256),
    and after the 160 of the digits recipe it leaves ``G`` dense (L1-density 0.97, mean CSI
    1.0), so knowledge prohibition would switch off every channel. With 0.2, small-cnn on
    digits reaches the paper's Table 1 values (L1-density 0.100 = 1 / C, mean CSI <= 0.002
    over seeds 0-3); 0.05 left ``G`` dense for one seed and 1.0 left some classes without a
    channel. ``unlearn-audit train --erm`` prints both numbers so other scales can be checked.
    """
    if base in (ERM_ARCH, "sisa"):
        raise ConfigError(f"`arch` with `erm` must be a single CNN, one of {ERM_BASES}.")
    if isinstance(lambda_reg, bool) or not isinstance(lambda_reg, int | float) or lambda_reg < 0:
        raise fail("erm_lambda", "a number >= 0", lambda_reg)
    period = check_positive_int(period, "erm_period", minimum=2)
    net = build_model(base, num_classes, input_shape, arch_kwargs=base_kwargs)
    return ErmNet(net, num_classes, base_name=base, lambda_reg=lambda_reg, period=period)


ERM_ATTRIBUTE = "erm_mask"


def erm_mask(model: Any) -> np.ndarray | None:
    """The ERM mask matrix G ``(C, K)`` of a model trained with the mask layer (seed 000).

    Contract with the ERM layer: a submodule with a 2-D tensor attribute ``erm_mask``
    (classes x channels). ``None`` for other models.
    """
    for module in model.module.modules():
        mask = getattr(module, ERM_ATTRIBUTE, None)
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            return np.abs(mask.detach().cpu().double().numpy())
    return None
