"""The model wrapper that owns input normalisation, and the layers later checks read.

:class:`Classifier` wraps any network (eager, TorchScript or pickled) with the normalisation it
expects, so everything downstream feeds images in [0, 1]. :func:`find_layers` locates the last
convolution (Grad-CAM) and the penultimate features (the input of the last ``Linear``) of any
``nn.Module``, TorchScript included; :class:`LayerRecorder` captures them during a forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import torch
from torch import nn

from unlearn_audit._hashing import fingerprint_json, fingerprint_state, source_name, source_text
from unlearn_audit.data.datasets import Normalization
from unlearn_audit.errors import ConfigError


class Classifier(nn.Module):
    """A network plus the normalisation it expects; takes images in [0, 1], ``(N, C, H, W)``.

    Args:
        net: The network proper; it receives normalised inputs and returns logits ``(N, K)``.
        normalization: Per-channel mean and std, or ``None`` for none.
    """

    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(self, net: nn.Module, normalization: Normalization | None) -> None:
        super().__init__()
        self.net = net
        self.normalization = normalization
        if normalization is not None:
            shape = (1, len(normalization.mean), 1, 1)
            self.register_buffer("input_mean", torch.tensor(normalization.mean).view(shape))
            self.register_buffer("input_std", torch.tensor(normalization.std).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization is not None:
            x = (x - self.input_mean) / self.input_std
        return self.net(x)


def fast_layout(
    module: nn.Module, device: torch.device, input_shape: tuple[int, ...]
) -> torch.memory_format:
    """Put a convolutional network's weights in the memory layout its CPU passes run fastest
    in, and return the layout its inputs must then have.

    On CPU that is channels-last: measured here with small-cnn on 8x8 to 32x32 inputs, on one
    and two threads, 1.2-1.7x faster training steps and 1.3-1.6x faster inference batches than
    the default layout (``benchmarks/bench_layout.py``; ResNet-18: 1.14x per training step).
    The results are the same function up to float rounding. A network whose ``forward`` needs
    contiguous tensors (``x.view(...)`` after a convolution), a TorchScript module, a network
    without 2-d convolutions, and any network on CUDA keep the default layout. Convert back
    with ``module.to(memory_format=torch.contiguous_format)``.
    """
    default = torch.contiguous_format
    if (
        device.type != "cpu"
        or len(input_shape) != 3
        or isinstance(module, torch.jit.ScriptModule)
        or not any(isinstance(m, nn.Conv2d) for m in module.modules())
    ):
        return default
    was_training = module.training
    module.to(memory_format=torch.channels_last)
    try:
        module.eval()
        with torch.no_grad():  # a dry run: eval mode, so no statistic or RNG moves
            module(torch.zeros(2, *input_shape).contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        module.to(memory_format=default)
        return default
    finally:
        module.train(was_training)
    return torch.channels_last


@contextlib.contextmanager
def in_fast_layout(
    module: nn.Module, device: torch.device, input_shape: tuple[int, ...]
) -> Iterator[torch.memory_format]:
    """:func:`fast_layout` for the duration of a block (the module's own layout after it);
    yields the layout inputs must have. A module already in channels-last on CPU (one being
    trained, evaluated between its steps) stays as it is."""
    if device.type == "cpu" and _in_channels_last(module):
        yield torch.channels_last
        return
    layout = fast_layout(module, device, input_shape)
    try:
        yield layout
    finally:
        if layout is not torch.contiguous_format:
            module.to(memory_format=torch.contiguous_format)


def _in_channels_last(module: nn.Module) -> bool:
    """Some convolution's weights are in channels-last only (a one-channel kernel is in both
    layouts, so one such is not enough to tell)."""
    if isinstance(module, torch.jit.ScriptModule):
        return False
    return any(
        m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
    )


def copy_module(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that can be trained, TorchScript parts included.

    ``copy.deepcopy`` of a TorchScript module gives parameters that are not leaves (they cannot
    be optimised), so compiled submodules are copied through ``torch.jit.save``/``load``.
    """
    import copy
    import io
    import warnings

    memo: dict[int, Any] = {}
    for sub in model.modules():
        if isinstance(sub, torch.jit.ScriptModule) and id(sub) not in memo:
            buffer = io.BytesIO()
            with warnings.catch_warnings():  # deprecated, but users still ship TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(sub, buffer)
                buffer.seek(0)
                memo[id(sub)] = torch.jit.load(buffer, map_location="cpu")
            for inner in sub.modules():  # copied with it
                memo.setdefault(id(inner), None)
    memo = {k: v for k, v in memo.items() if v is not None}
    return copy.deepcopy(model, memo)


def model_fingerprint(model: nn.Module) -> str:
    """Hash of what the model computes: its weights and the code that runs them.

    The weights: names, dtypes, shapes and values of every parameter and buffer (non-persistent
    buffers included). The code: for every submodule, its class with the source of each class it
    inherits from outside torch, its plain settings (numbers, strings, flags), its TorchScript
    code and its forward hooks. Two models with the same fingerprint compute the same function;
    it keys caches (stored outputs among them) and is printed in reports. Weights alone would not
    do: a subclass that masks the forgotten classes' logits over the original's own weights would
    share the original's fingerprint, and with it the original's stored outputs.
    """
    code = [[name, _module_code(module)] for name, module in model.named_modules()]
    return fingerprint_state(_tensors(model), salt=fingerprint_json(code))


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by name: the state dict and the non-persistent buffers."""
    state = dict(model.state_dict())
    state.update((name, b) for name, b in model.named_buffers() if name not in state)
    return state


def tensors_kept(original: nn.Module, other: nn.Module) -> tuple[int, int]:
    """How many of ``original``'s parameter and buffer tensors ``other`` holds unchanged, by
    value (whatever their names: under a wrapper's prefix, in a subclass or in TorchScript), and
    of how many. All of them kept, in a model that differs, means the difference is what was
    added around the original's weights (a wrapper, a mask, a hook), not unlearning in them."""
    from collections import Counter

    def digests(model: nn.Module) -> Counter[str]:
        return Counter(fingerprint_state({"": t}) for t in _tensors(model).values())

    mine, theirs = digests(original), digests(other)
    return sum(min(n, theirs[d]) for d, n in mine.items()), sum(mine.values())


def _module_code(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, torch.jit.ScriptModule):
        try:
            script = str(module.code)
        except (RuntimeError, AttributeError):  # a submodule without compiled methods
            script = ""
        return {"class": layer_kind(module), "script": script}
    hooks = [*module._forward_pre_hooks.values(), *module._forward_hooks.values()]
    return {
        "class": _class_code(type(module)),
        "settings": {k: v for k, v in sorted(vars(module).items()) if _is_setting(k, v)},
        "hooks": [[source_name(hook), source_text(hook)] for hook in hooks],
    }


def _is_setting(name: str, value: Any) -> bool:
    """A public attribute of plain data (what ``__init__`` stores: sizes, flags, class lists)."""
    if name.startswith("_") or name == "training":
        return False
    if isinstance(value, (tuple, list)):
        return all(_is_setting("item", item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))


_CLASS_CODE: dict[type, list[str]] = {}


def _class_code(cls: type) -> list[str]:
    """Each class in ``cls``'s MRO: torch's and Python's own by name (the installed version is
    their code), every other by name and source (kept per class: a class's code does not
    change, an edited file compiles to new classes)."""
    if cls in _CLASS_CODE:
        return _CLASS_CODE[cls]
    parts = []
    for klass in cls.__mro__:
        name = source_name(klass)
        if klass.__module__.partition(".")[0] in ("torch", "builtins"):
            parts.append(name)
        else:
            parts.append(f"{name}:{fingerprint_json(source_text(klass))}")
    _CLASS_CODE[cls] = parts
    return parts


def layer_kind(module: nn.Module) -> str:
    """Class name of a module; for TorchScript modules the name of the original class."""
    original = getattr(module, "original_name", None)
    return str(original) if isinstance(original, str) else type(module).__name__


@dataclass(frozen=True)
class LayerInfo:
    """Where the checks read a model.

    Attributes:
        conv: Name of the convolution Grad-CAM attributes to (``None`` for models without one).
        features: Name of the module whose input (``features_from == "input"``) or output
            (``"output"``) is the penultimate representation.
        features_from: ``"input"`` (default: the input of the last ``Linear``) or ``"output"``.
    """

    conv: str | None
    features: str
    features_from: Literal["input", "output"]


def resolve_layer(model: nn.Module, name: str) -> str:
    """The full name of submodule ``name`` in ``model``, with a clear error if there is none.

    For a :class:`Classifier`, names may also be given relative to the wrapped network
    (``features.0`` for ``net.features.0``), as users know their own model's names.
    """
    modules = dict(model.named_modules())
    if name in modules:
        return name
    if isinstance(model, Classifier) and f"net.{name}" in modules:
        return f"net.{name}"
    names = [n for n in modules if n]
    raise ConfigError(
        f"`layer` must name a submodule of the model; got {name!r}. Last names: "
        f"{', '.join(names[-12:])}."
    )


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (see :func:`resolve_layer`)."""
    return dict(model.named_modules())[resolve_layer(model, name)]


def find_layers(
    model: nn.Module, *, conv_layer: str | None = None, feature_layer: str | None = None
) -> LayerInfo:
    """Locate the last ``Conv2d`` and the penultimate features of any ``nn.Module``.

    Modules are taken in registration order (``named_modules()``), which is forward order for
    the usual architectures; name the layers explicitly when it is not.

    Args:
        model: Any module, TorchScript included.
        conv_layer: Use this convolution instead of the last ``Conv2d``.
        feature_layer: Use the *output* of this module (flattened) as the features instead of
            the input of the last ``Linear``.

    Raises:
        ConfigError: A named layer does not exist, or the model has no ``Linear`` and no
            ``feature_layer`` was named.
    """
    convs, linears = [], []
    for name, module in model.named_modules():
        if isinstance(module, torch.jit.ScriptModule) and name.endswith(f".{_Step.INNER}"):
            continue  # the compiled layer inside a recovered chain's step: hook the step
        kind = layer_kind(module)
        if kind == "Conv2d":
            convs.append(name)
        elif kind == "Linear":
            linears.append(name)
    if conv_layer is not None:
        conv_layer = resolve_layer(model, conv_layer)
    conv = conv_layer if conv_layer is not None else (convs[-1] if convs else None)
    if feature_layer is not None:
        return LayerInfo(
            conv=conv, features=resolve_layer(model, feature_layer), features_from="output"
        )
    if not linears:
        raise ConfigError(
            "the model has no nn.Linear layer, so its penultimate features cannot be found; "
            "name the layer whose output is the features with `feature_layer`."
        )
    return LayerInfo(conv=conv, features=linears[-1], features_from="input")


class _Step(nn.Module):
    """One layer of a :class:`RecoveredChain`: an eager shell (which takes hooks) around a
    compiled layer, flattening the input of a ``Linear`` as the usual forward does."""

    INNER = "inner"

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.original_name = layer_kind(inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.original_name == "Linear" and x.dim() > 2:
            x = x.flatten(1)
        return self.inner(x)


class RecoveredChain(nn.Module):
    """A network run as the chain of its leaf modules, in registration order."""

    def __init__(self, steps: list[nn.Module]) -> None:
        super().__init__()
        self.steps = nn.ModuleList(_Step(step) for step in steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x


def recover_chain(net: nn.Module) -> RecoveredChain | None:
    """The leaf modules of ``net`` (a TorchScript network, typically) as an eager chain, when
    they end in a ``Linear``; else ``None``.

    The chain is only a candidate: it equals ``net`` when ``net``'s forward applies its
    submodules one after another (flattening before the head), and the caller must check that
    on real inputs before reading anything through it.
    """
    leaves = [m for _, m in net.named_modules() if not any(True for _ in m.children())]
    if not leaves or leaves[0] is net or layer_kind(leaves[-1]) != "Linear":
        return None
    return RecoveredChain(leaves)


_NO_HOOKS = (
    "layer {name!r} cannot be recorded: TorchScript runs no Python hooks inside compiled code; "
    "load the weights as a state_dict with `arch` to use the checks that read layers."
)


class LayerRecorder:
    """Records the input or output of named layers during forward passes.

    Use as a context manager; hooks are removed on exit. After a forward pass, ``values[key]``
    holds the tensor. Hooks do not run inside compiled TorchScript code, so a TorchScript layer
    is refused with a clear error instead of giving stale or missing values.

    Args:
        model: The model to hook.
        layers: ``key -> (layer name, "input" | "output")``.
        detach: Store detached tensors (default) or keep the graph (Grad-CAM needs it).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: dict[str, tuple[str, Literal["input", "output"]]],
        *,
        detach: bool = True,
    ) -> None:
        self.model = model
        self.layers = dict(layers)
        self.detach = detach
        self.values: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> LayerRecorder:
        for key, (name, where) in self.layers.items():
            module = get_layer(self.model, name)
            if isinstance(module, torch.jit.ScriptModule):
                raise ConfigError(_NO_HOOKS.format(name=name))
            self._handles.append(module.register_forward_hook(self._hook(key, where)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, key: str, where: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            value = inputs[0] if where == "input" else output
            self.values[key] = value.detach() if self.detach else value

        return hook

    def clear(self) -> None:
        self.values.clear()

    def get(self, key: str) -> torch.Tensor:
        """The recorded tensor for ``key`` from the last forward pass."""
        if key not in self.values:
            raise ConfigError(_NO_HOOKS.format(name=self.layers[key][0]))
        return self.values[key]


def penultimate_features(
    model: nn.Module, x: torch.Tensor, layers: LayerInfo | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, K)`` and flattened penultimate features ``(N, D)`` of one batch."""
    layers = layers or find_layers(model)
    with LayerRecorder(model, {"features": (layers.features, layers.features_from)}) as rec:
        logits = model(x)
        features = rec.get("features")
    return logits, features.flatten(1)
