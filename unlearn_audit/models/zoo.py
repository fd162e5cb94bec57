"""Architectures by name, and foreign factories by import path.

Every zoo entry builds from ``(num_classes, input_shape)`` with ``input_shape = (C, H, W)``.
Foreign architectures are given as ``package.module:factory`` or ``path/to/file.py:factory``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearn_audit._hashing import SOURCE_BYTES, fingerprint_json, source_name, source_text
from unlearn_audit.errors import ConfigError
from unlearn_audit.registry import Registry

Factory = Callable[..., nn.Module]
ARCHS: Registry[Factory] = Registry("architecture", group="unlearn_audit.archs")


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


@ARCHS.register("mlp")
def mlp(
    num_classes: int, input_shape: tuple[int, int, int], *, hidden: tuple[int, ...] = (256, 128)
) -> nn.Module:
    """Multi-layer perceptron on flattened pixels (ReLU hidden layers)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(input_shape).prod())
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class LeNet(nn.Module):
    """LeNet-5 with ReLU and max-pooling; both convolutions padded so 8x8 inputs fit."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = 16 * (height // 4) * (width // 4)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@ARCHS.register("lenet")
def lenet(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU; needs inputs of at least 4x4."""
    if min(input_shape[1:]) < 4:
        raise ConfigError(f"`lenet` needs inputs of at least 4x4; got {input_shape!r}.")
    return LeNet(num_classes, input_shape)


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU stages of two convolutions each, global pooling, a 128-unit MLP head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], *, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn(input_shape[0], width),
            *_conv_bn(width, width),
            nn.MaxPool2d(2),
            *_conv_bn(width, 2 * width),
            *_conv_bn(2 * width, 2 * width),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width, 128), nn.ReLU(), nn.Linear(128, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@ARCHS.register("small-cnn")
def small_cnn(num_classes: int, input_shape: tuple[int, int, int], *, width: int = 32) -> nn.Module:
    """Small VGG-style CNN; fast on CPU for 8x8 to 32x32 inputs (needs at least 4x4)."""
    if min(input_shape[1:]) < 4:
        raise ConfigError(f"`small-cnn` needs inputs of at least 4x4; got {input_shape!r}.")
    return SmallCNN(num_classes, input_shape, width=width)


@ARCHS.register("resnet18")
def resnet18(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """torchvision's ResNet-18 for small inputs: 3x3 stride-1 stem, no max-pool, any channels."""
    from torchvision.models import resnet18  # only when this architecture is built

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()  # type: ignore[assignment]
    return model


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (He et al. 2016): 3 stages of 3 basic blocks, 16/32/64 channels.

    Departs from the paper in one place: downsampling shortcuts are 1x1 convolutions with BN
    (option B) rather than zero-padded identities (option A).
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(_BasicBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(out), 1))


@ARCHS.register("resnet20")
def resnet20(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """CIFAR-style ResNet-20 (0.27 M parameters)."""
    return ResNet20(num_classes, input_shape)


def _import_factory(spec: str) -> Factory:
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target).expanduser()
            if not path.is_file():
                raise ConfigError(f"`arch` file {target!r} does not exist.")
            # a name fixed by the path (``hash()`` of a string changes with every process)
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
            name = f"_unlearn_audit_arch_{digest}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            # compiled from the file as it is now, never from a cached .pyc, and fingerprinted by
            # the same bytes (not linecache's copy): an edit in the same second that keeps the
            # size would otherwise run, or key, the old code
            source = path.read_bytes()
            module.__dict__[SOURCE_BYTES] = source
            exec(compile(source, str(path), "exec"), module.__dict__)
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise ConfigError(
            f"`arch` {spec!r}: cannot import {target!r} ({exc}); install the package or make "
            "it importable (PYTHONPATH)."
        ) from None
    except SyntaxError as exc:
        raise ConfigError(
            f"`arch` {spec!r}: {target!r} is not valid Python (line {exc.lineno}: {exc.msg}); "
            "fix the file."
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"`arch` {spec!r}: {target!r} has no callable named {attr!r}.")
    return factory  # type: ignore[no-any-return]


def _call_factory(
    factory: Factory, name: str, num_classes: int, input_shape: tuple[int, int, int], kwargs: dict
) -> nn.Module:
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    call: dict[str, Any] = dict(kwargs)
    for key, value in (("num_classes", num_classes), ("input_shape", input_shape)):
        if key in params or takes_any:
            call.setdefault(key, value)
    try:
        model = factory(**call)
    except TypeError as exc:
        raise ConfigError(f"architecture {name!r} cannot be built with {call!r}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"architecture {name!r} returned {type(model).__name__}, not nn.Module.")
    return model


def arch_fingerprint(arch: str) -> str:
    """Fingerprint of the source of the module that defines ``arch``.

    Part of every store key, so that editing an architecture's code (yours or the zoo's)
    never silently reuses models trained with the old code.
    """
    factory = _import_factory(arch) if ":" in arch else ARCHS.get(arch)
    source = source_text(factory, whole_module=True)
    name = source_name(factory)  # the same file at another path (another machine) is the same
    return fingerprint_json({"factory": name, "source": source})


def build_model(
    arch: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    arch_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """Build an untrained network (without input normalisation).

    Args:
        arch: A zoo name (see ``unlearn-audit archs``) or ``module:factory`` /
            ``file.py:factory``. A foreign factory receives ``num_classes`` and
            ``input_shape`` if its signature names them, plus ``arch_kwargs``.
        num_classes: Number of outputs.
        input_shape: ``(C, H, W)``.
        arch_kwargs: Extra keyword arguments of the factory.
    """
    kwargs = dict(arch_kwargs or {})
    if ":" in arch:
        return _call_factory(_import_factory(arch), arch, num_classes, input_shape, kwargs)
    factory = ARCHS.get(arch)
    return _call_factory(factory, arch, num_classes, input_shape, kwargs)
