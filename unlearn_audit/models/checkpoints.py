"""Safe checkpoint loading and saving, and model fingerprints.

Our own format is one ``.safetensors`` file whose metadata header records everything needed to
rebuild the model (architecture and arguments, class count, input shape, normalisation, dataset,
member-id fingerprint, recipe, versions). Foreign checkpoints load as:

- a state_dict in ``.pt`` / ``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors``,
  together with ``arch``;
- a TorchScript archive;
- a full pickled module, only with ``trust_checkpoint=True`` (unpickling runs code from the file).
"""

from __future__ import annotations

import functools
import json
import struct
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

import unlearn_audit
from unlearn_audit._io import write_atomic
from unlearn_audit.data.datasets import Dataset, Normalization
from unlearn_audit.errors import CheckpointError, CheckpointNotFoundError, UnsafeCheckpointError
from unlearn_audit.models.layers import Classifier, model_fingerprint
from unlearn_audit.models.zoo import build_model

FORMAT = "unlearn-audit/1"
CheckpointKind = Literal["own", "state_dict", "torchscript", "pickle", "memory"]
_PREFIXES = ("module.", "_orig_mod.")
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint records about its model (all JSON-able).

    Attributes:
        arch: Zoo name or ``module:factory``; ``None`` for TorchScript and pickled modules.
        arch_kwargs: Extra factory arguments.
        num_classes: Number of outputs.
        input_shape: ``(C, H, W)``.
        dataset: Dataset name the model was trained on, if known.
        dataset_fingerprint: Its fingerprint, if known.
        members_fingerprint: Fingerprint of the member ids, if known.
        recipe: The training recipe, as a dict, if known.
        seed: The training seed, if known.
        extra: Anything else (trigger, training-time structures), JSON-able.
    """

    arch: str | None
    num_classes: int
    input_shape: tuple[int, int, int]
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    dataset_fingerprint: str | None = None
    members_fingerprint: str | None = None
    recipe: dict[str, Any] | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["input_shape"] = tuple(int(s) for s in known["input_shape"])
        known["num_classes"] = int(known["num_classes"])
        return cls(**known)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for auditing: takes images in [0, 1] and returns logits.

    Attributes:
        module: The :class:`Classifier` (network plus normalisation), in eval mode.
        info: What is known about it.
        fingerprint: Hash of its weights and normalisation.
        kind: How it was loaded.
        source: The file it came from (empty for in-memory models).
        readable: For a TorchScript model, whose compiled code runs no Python hooks: an eager
            network over the same weights (the ``--arch`` it loads into, or the chain of its
            own submodules) through which features and Grad-CAM are read. It never gives the
            logits that are judged, and each batch read through it is checked against the
            compiled model's own logits (see :mod:`unlearn_audit.outputs`).
        readable_note: How ``readable`` was obtained, or why there is none.
    """

    module: Classifier
    info: ModelInfo
    fingerprint: str
    kind: CheckpointKind = "memory"
    source: str = ""
    readable: Classifier | None = None
    readable_note: str = ""

    @property
    def normalization(self) -> Normalization | None:
        return self.module.normalization

    @property
    def net(self) -> nn.Module:
        """The bare network (without the input normalisation)."""
        return self.module.net

    @property
    def is_compiled(self) -> bool:
        """True for TorchScript networks (no Python hooks inside)."""
        return isinstance(self.module.net, torch.jit.ScriptModule)

    @functools.cached_property
    def readable_key(self) -> str | None:
        """What the layers are read through, for keys of stored features and maps: ``None`` for
        an eager model (itself), else the fingerprint of its readable view or why it has none
        (a TorchScript model read without ``--arch`` and then with it reads other layers)."""
        if not self.is_compiled:
            return None
        if self.readable is None:
            return f"unreadable: {self.readable_note}"
        return model_fingerprint(self.readable)

    @property
    def hookable(self) -> Classifier | None:
        """The module whose layers can be hooked: the model itself, or for a TorchScript model
        its ``readable`` view (``None`` when it has none)."""
        return self.readable if self.is_compiled else self.module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of images in [0, 1] ``(N, C, H, W)``."""
        return self.module(x)

    @classmethod
    def from_module(
        cls,
        net: nn.Module,
        *,
        num_classes: int | None = None,
        input_shape: tuple[int, int, int] | None = None,
        dataset: Dataset | None = None,
        normalization: Normalization | str | None = None,
        arch: str | None = None,
        arch_kwargs: dict[str, Any] | None = None,
    ) -> LoadedModel:
        """Wrap an in-memory network (taking normalised inputs, returning logits).

        Args:
            net: The network; it is used as it is (not copied), in eval mode.
            num_classes: Outputs; default the dataset's.
            input_shape: ``(C, H, W)``; default the dataset's.
            dataset: Gives the class count, input shape and the usual normalisation, and
                is checked against the model with one forward pass.
            normalization: ``None`` (the network takes [0, 1] images), ``"dataset"`` (the
                dataset's usual one), ``"MEAN,STD"`` or a :class:`Normalization`.
            arch: Its zoo name or ``module:factory`` when known (references and shadows can
                then be trained like it).
            arch_kwargs: Arguments of ``arch``.
        """
        if not isinstance(net, nn.Module):
            raise CheckpointError(f"`net` must be a torch.nn.Module; got {type(net).__name__}.")
        if isinstance(net, Classifier):
            normalization, net = net.normalization, net.net
        elif normalization == "dataset":
            if dataset is None:
                raise CheckpointError("`normalization='dataset'` needs the dataset; pass dataset=.")
            normalization = dataset.normalization
        elif isinstance(normalization, str):
            normalization = Normalization.parse(normalization)
        classes = num_classes if num_classes is not None else getattr(dataset, "num_classes", None)
        shape = input_shape if input_shape is not None else getattr(dataset, "input_shape", None)
        if classes is None or shape is None:
            raise CheckpointError(
                "an in-memory network does not say its class count and input shape; pass "
                "dataset= (or num_classes= and input_shape=)."
            )
        channels = int(shape[0])
        norm = normalization.for_channels(channels) if normalization is not None else None
        info = ModelInfo(
            arch=arch,
            num_classes=int(classes),
            input_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
            arch_kwargs=dict(arch_kwargs or {}),
        )
        model = wrap_model(net.eval(), info, norm)
        if model.is_compiled:
            model = _with_readable(model, None)
        if dataset is not None:
            check_model_fits(model, dataset)
        return model


def wrap_model(
    net: nn.Module, info: ModelInfo, normalization: Normalization | None, **kwargs: Any
) -> LoadedModel:
    """Wrap a network in a :class:`Classifier` and fingerprint it."""
    module = Classifier(net, normalization).eval()
    return LoadedModel(module=module, info=info, fingerprint=model_fingerprint(module), **kwargs)


def save_checkpoint(model: LoadedModel, path: str | Path) -> Path:
    """Write ``model`` in our own format to ``path`` atomically.

    Only models with a rebuildable architecture (zoo name or import path) can be saved.
    """
    state, metadata = _checkpoint_parts(model)
    return write_atomic(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def checkpoint_bytes(model: LoadedModel) -> bytes:
    """The bytes :func:`save_checkpoint` would write (to send a model between processes)."""
    from safetensors.torch import save

    state, metadata = _checkpoint_parts(model)
    return bytes(save(state, metadata=metadata))


def _checkpoint_parts(model: LoadedModel) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if model.info.arch is None:
        raise CheckpointError(
            "only models built from an architecture (zoo name or module:factory) can be saved "
            "in unlearn-audit's format; this one was loaded from TorchScript or a pickle."
        )
    state = {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in model.module.net.state_dict().items()
    }
    norm = model.normalization
    metadata = {
        "format": FORMAT,
        "info": json.dumps(model.info.to_dict(), sort_keys=True),
        "normalization": json.dumps(norm.to_dict() if norm else None),
        "fingerprint": model.fingerprint,
        "versions": json.dumps(
            {"unlearn_audit": unlearn_audit.__version__, "torch": torch.__version__}
        ),
    }
    return state, metadata


def _is_safetensors(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < length <= path.stat().st_size


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}).") from None
    return tensors, metadata


def _unwrap_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _CONTAINER_KEYS:
            if isinstance(obj.get(key), dict):
                return _unwrap_state(obj[key], path)
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state_dict of tensors; save "
            "model.state_dict() or a TorchScript module."
        )
    return dict(obj)


def _strip_prefixes(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state) and not set(state) & expected:
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _listing(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def load_state_into(
    net: nn.Module, state: dict[str, torch.Tensor], *, source: str, arch: str
) -> None:
    """Load ``state`` into ``net`` strictly, with one clear error for any mismatch.

    A network whose buffers are sized by its data (the SISA ensemble's member lists) defines
    ``prepare_state(state)``, which resizes them first.
    """
    prepare = getattr(net, "prepare_state", None)
    if callable(prepare):
        prepare(_strip_prefixes(state, set(net.state_dict())))
    expected = net.state_dict()
    state = _strip_prefixes(state, set(expected))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        raise CheckpointError(
            f"{source}: the weights do not fit architecture {arch!r} ({'; '.join(parts)}); "
            "check `arch` and `arch_kwargs`."
        )
    wrong = [
        f"{k} is {tuple(state[k].shape)} in the file but {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise CheckpointError(
            f"{source}: shape mismatch for architecture {arch!r}: {_listing(wrong, 3)}; check the "
            "class count, input channels and `arch_kwargs`."
        )
    net.load_state_dict(state, strict=True)


def _own(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, str],
    path: Path,
    arch: str | None,
    trust: bool,
) -> LoadedModel:
    try:
        info = ModelInfo.from_dict(json.loads(meta["info"]))
        normalization = Normalization.from_dict(json.loads(meta.get("normalization", "null")))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged unlearn-audit header ({exc}).") from None
    assert info.arch is not None
    if ":" in info.arch and not trust and arch != info.arch:
        raise UnsafeCheckpointError(
            f"{path}: its architecture {info.arch!r} is imported from code outside unlearn-audit; "
            f"pass `arch` {info.arch} to confirm, or `trust_checkpoint`."
        )
    net = build_model(info.arch, info.num_classes, info.input_shape, arch_kwargs=info.arch_kwargs)
    load_state_into(net, tensors, source=str(path), arch=info.arch)
    return wrap_model(net, info, normalization, kind="own", source=str(path))


def load_checkpoint(
    path: str | Path,
    *,
    dataset: Dataset | None = None,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    normalize: str | Normalization | None = None,
    trust_checkpoint: bool = False,
) -> LoadedModel:
    """Load a checkpoint of any supported kind into a :class:`LoadedModel`.

    Args:
        path: The file.
        dataset: The dataset it will be audited on: gives class count and input shape to
            foreign checkpoints, and is checked against every checkpoint.
        arch: Architecture of a foreign state_dict (zoo name or ``module:factory``).
        arch_kwargs: Extra arguments of that architecture.
        normalize: For foreign checkpoints: ``"none"``, ``"MEAN,STD"`` or a
            :class:`Normalization`; default the dataset's usual one. Our own checkpoints
            record theirs and ignore this.
        trust_checkpoint: Allow full pickled modules (runs code from the file).

    Raises:
        CheckpointNotFoundError: No such file.
        UnsafeCheckpointError: A pickled module without ``trust_checkpoint``.
        CheckpointError: Not a checkpoint, a mismatch with the architecture or the dataset.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {str(path)!r} does not exist; check the path.")
    if _is_safetensors(path):
        tensors, meta = _read_safetensors(path)
        if meta.get("format") == FORMAT:
            model = _own(tensors, meta, path, arch, trust_checkpoint)
            if dataset is not None:
                check_model_fits(model, dataset)
            return model
        return _foreign_state(tensors, path, dataset, arch, arch_kwargs, normalize)
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but users still ship it
                warnings.simplefilter("ignore", FutureWarning)
                net = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: damaged TorchScript archive ({exc}).") from None
        model = _foreign_module(net, path, "torchscript", dataset, normalize)
        return _with_readable(model, _eager_twin(model, path, arch, arch_kwargs))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, KeyError, ...
        # torch names the refused Python object ("... GLOBAL module.name ..."); anything
        # else means the bytes are no pickle of weights at all
        if "GLOBAL" not in str(exc):
            raise CheckpointError(
                f"{path}: not a checkpoint (neither safetensors, TorchScript nor a torch.save "
                "state_dict)."
            ) from None
        if not trust_checkpoint:
            raise UnsafeCheckpointError(
                f"{path}: is a pickled Python object, and loading it runs code from the file; "
                "save model.state_dict() or TorchScript instead, or pass `trust_checkpoint` if "
                "you trust its source."
            ) from None
        obj = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(obj, nn.Module):
            return _foreign_module(obj, path, "pickle", dataset, normalize)
    return _foreign_state(_unwrap_state(obj, path), path, dataset, arch, arch_kwargs, normalize)


def _foreign_normalization(
    normalize: str | Normalization | None, dataset: Dataset | None, channels: int
) -> Normalization | None:
    if isinstance(normalize, str):
        normalize = Normalization.parse(normalize)
    elif normalize is None and dataset is not None:
        normalize = dataset.normalization
    return normalize.for_channels(channels) if normalize is not None else None


def _require_dataset(dataset: Dataset | None, path: Path, what: str) -> Dataset:
    if dataset is None:
        raise CheckpointError(
            f"{path}: a {what} does not record its class count and input shape; give the "
            "`dataset` it will be audited on."
        )
    return dataset


def _foreign_state(
    state: dict[str, torch.Tensor],
    path: Path,
    dataset: Dataset | None,
    arch: str | None,
    arch_kwargs: dict[str, Any] | None,
    normalize: str | Normalization | None,
) -> LoadedModel:
    if arch is None:
        raise CheckpointError(
            f"{path}: is a plain state_dict; give its architecture with `arch` (a zoo name, see "
            "`unlearn-audit archs`, or package.module:factory)."
        )
    dataset = _require_dataset(dataset, path, "state_dict")
    net = build_model(arch, dataset.num_classes, dataset.input_shape, arch_kwargs=arch_kwargs)
    load_state_into(net, state, source=str(path), arch=arch)
    info = ModelInfo(
        arch=arch,
        arch_kwargs=dict(arch_kwargs or {}),
        num_classes=dataset.num_classes,
        input_shape=dataset.input_shape,
    )
    norm = _foreign_normalization(normalize, dataset, dataset.input_shape[0])
    model = wrap_model(net, info, norm, kind="state_dict", source=str(path))
    check_model_fits(model, dataset)
    return model


def _foreign_module(
    net: nn.Module,
    path: Path,
    kind: CheckpointKind,
    dataset: Dataset | None,
    normalize: str | Normalization | None,
) -> LoadedModel:
    what = "TorchScript module" if kind == "torchscript" else "pickled module"
    dataset = _require_dataset(dataset, path, what)
    info = ModelInfo(arch=None, num_classes=dataset.num_classes, input_shape=dataset.input_shape)
    norm = _foreign_normalization(normalize, dataset, dataset.input_shape[0])
    model = wrap_model(net, info, norm, kind=kind, source=str(path))
    check_model_fits(model, dataset)
    return model


def check_model_fits(model: LoadedModel, dataset: Dataset) -> LoadedModel:
    """Check that ``model`` takes the dataset's inputs and has one output per class.

    Runs one forward pass on two blank images, so it also catches foreign modules whose
    recorded shapes are unknown.

    Raises:
        CheckpointError: Naming the shapes or class counts that differ.
    """
    source = model.source or "model"
    if model.info.input_shape != dataset.input_shape:
        raise CheckpointError(
            f"{source}: takes inputs of shape {model.info.input_shape} but dataset "
            f"{dataset.name!r} has {dataset.input_shape}; audit it on the dataset it was "
            "trained on."
        )
    probe = torch.zeros((2, *dataset.input_shape))
    try:
        with torch.inference_mode():
            logits = model.module(probe)
    except Exception as exc:  # any failure of foreign code on the dataset's shape
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{source}: fails on inputs of shape {tuple(probe.shape)} from dataset "
            f"{dataset.name!r} ({first}); check `dataset` and `arch`."
        ) from None
    if logits.dim() != 2 or logits.shape[1] != dataset.num_classes:
        raise CheckpointError(
            f"{source}: outputs {_scores(logits)} scores per image but dataset "
            f"{dataset.name!r} has {dataset.num_classes} classes; audit it on its own dataset."
        )
    if model.info.num_classes != dataset.num_classes:
        raise CheckpointError(
            f"{source}: has {model.info.num_classes} classes but dataset {dataset.name!r} has "
            f"{dataset.num_classes}."
        )
    _check_finite(model, logits, source)
    return model


def _scores(logits: torch.Tensor) -> str:
    return str(logits.shape[1]) if logits.dim() == 2 else f"shape {tuple(logits.shape[1:])}"


def _eager_twin(
    model: LoadedModel, path: Path, arch: str | None, arch_kwargs: dict[str, Any] | None
) -> nn.Module | None:
    """``arch`` built and loaded with a TorchScript model's weights, when they fit it exactly."""
    if arch is None:
        return None
    net = build_model(arch, model.info.num_classes, model.info.input_shape, arch_kwargs=arch_kwargs)
    try:
        load_state_into(net, dict(model.module.net.state_dict()), source=str(path), arch=arch)
    except CheckpointError:
        return None
    return net.eval()


def _with_readable(model: LoadedModel, twin: nn.Module | None) -> LoadedModel:
    """``model`` with its :attr:`LoadedModel.readable` view: ``twin`` (the ``--arch`` twin of a
    TorchScript file), else the chain of its own submodules, else none (and why)."""
    from dataclasses import replace

    from unlearn_audit.models.layers import recover_chain

    if not model.is_compiled:
        return model
    if twin is not None:
        view = Classifier(twin, model.normalization).eval()
        note = "read through --arch loaded with the same weights"
    else:
        chain = recover_chain(model.module.net)
        if chain is None:
            return replace(
                model,
                readable_note="TorchScript runs no Python hooks and its submodules do not end "
                "in a Linear layer",
            )
        view = Classifier(chain, model.normalization).eval()
        note = "read through the chain of its own submodules"
    probe = torch.rand((8, *model.info.input_shape), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        same = logits_agree(model.module(probe), view(probe))
    if not same:
        return replace(
            model,
            readable_note="TorchScript runs no Python hooks and its forward is not the chain "
            "of its submodules (it computes something more, such as a mask on the logits)",
        )
    return replace(model, readable=view, readable_note=note)


def logits_agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two logit batches agree up to float rounding."""
    if a.shape != b.shape:
        return False
    scale = float(a.detach().abs().max()) if a.numel() else 0.0
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5 * max(1.0, scale)))


def _check_finite(model: LoadedModel, logits: torch.Tensor, source: str) -> None:
    """Refuse a model whose weights or logits hold NaN or inf: its every output is noise, so
    auditing it would only report failed claims without saying why."""
    tensors = [
        (name, tensor)
        for name, tensor in (*model.module.named_parameters(), *model.module.named_buffers())
        if tensor.is_floating_point()
    ]
    with torch.no_grad():
        bad = [name for name, tensor in tensors if not bool(torch.isfinite(tensor).all())]
        finite_logits = bool(torch.isfinite(logits).all())
    if not bad and finite_logits:
        return
    if bad:
        where = f"NaN or inf in {len(bad)} of {len(tensors)} weight tensors, e.g. {bad[0]}"
    else:
        where = "NaN or inf in its logits of blank images"
    raise CheckpointError(
        f"{source}: the model's outputs are not finite ({where}); its training or unlearning "
        "diverged, or the file is damaged; retrain or re-export it."
    )
