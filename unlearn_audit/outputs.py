"""Model outputs collected once per (model, view) over every sample an audit reads, and shared
by every check.

The audit first tells :class:`OutputCollector` what it will read (:meth:`~OutputCollector.plan`:
model, sample ids, view, for every check and split). The collector merges that into one request
per (model, view), the union of the ids, and runs one batched pass under
``torch.inference_mode()`` for each on the first read, recording logits, labels, penultimate
features and per-channel activations of the last convolution. A split is a slice of it: ``test``
and ``test_forget_class`` share the rows of their common samples. A read the plan did not
announce gets a pass of its own and is listed in ``unplanned``. ``passes`` counts passes and
``forwarded`` the samples each (model, view) saw, so tests can prove no sample went through a
model twice.

Views are the clean inputs, the test-time augmentations of seed 002 (horizontal flip, vertical
flip, centre crop of 90% resized back) and the backdoor trigger.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from unlearn_audit._hashing import code_fingerprint, fingerprint_arrays, fingerprint_ids
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.triggers import Trigger
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel, logits_agree
from unlearn_audit.models.layers import (
    LayerInfo,
    LayerRecorder,
    find_layers,
    get_layer,
    in_fast_layout,
)

if TYPE_CHECKING:
    from unlearn_audit.store import Store

View = Literal["clean", "hflip", "vflip", "crop90", "trigger"]
TTA_VIEWS: tuple[View, ...] = ("hflip", "vflip", "crop90")
CAM_BATCH = 64  # samples per Grad-CAM batch (it backpropagates, so smaller than inference)


def apply_view(x: torch.Tensor, view: View, *, trigger: Trigger | None = None) -> torch.Tensor:
    """Images ``(N, C, H, W)`` as seen through ``view``."""
    if view == "clean":
        return x
    if view == "hflip":
        return x.flip(-1)
    if view == "vflip":
        return x.flip(-2)
    if view == "crop90":
        height, width = x.shape[-2:]
        crop_h, crop_w = max(1, round(0.9 * height)), max(1, round(0.9 * width))
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        crop = x[..., top : top + crop_h, left : left + crop_w]
        return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
    if view == "trigger":
        if trigger is None:
            raise ConfigError("the trigger view needs a trigger; give `trigger` (a TRIGGER.json).")
        return trigger.apply(x)
    raise ConfigError(f"`view` must be one of clean, hflip, vflip, crop90, trigger; got {view!r}.")


@dataclass(frozen=True, eq=False)
class Outputs:
    """What one model produced on one split through one view.

    Attributes:
        ids: ``(N,)`` sample ids.
        labels: ``(N,)`` true labels.
        logits: ``(N, K)`` float64.
        features: ``(N, D)`` penultimate features, or ``None`` when they cannot be read.
        channels: ``(N, K')`` mean ReLU activation of each last-conv channel, or ``None``.
    """

    ids: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    features: np.ndarray | None
    channels: np.ndarray | None

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as named arrays (the store's form; absent layers are left out)."""
        fields = {"ids": self.ids, "labels": self.labels, "logits": self.logits}
        if self.features is not None:
            fields["features"] = self.features
        if self.channels is not None:
            fields["channels"] = self.channels
        return fields

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Outputs:
        return cls(
            ids=arrays["ids"],
            labels=arrays["labels"],
            logits=arrays["logits"],
            features=arrays.get("features"),
            channels=arrays.get("channels"),
        )

    def take(self, ids: np.ndarray) -> Outputs:
        """The rows of ``ids`` (each must be among ``self.ids``, which are sorted), in order."""
        rows = np.searchsorted(self.ids, ids)
        return Outputs(
            ids=self.ids[rows],
            labels=self.labels[rows],
            logits=self.logits[rows],
            features=None if self.features is None else self.features[rows],
            channels=None if self.channels is None else self.channels[rows],
        )

    def join(self, other: Outputs) -> Outputs:
        """These rows and ``other``'s (disjoint samples of the same model and view), by id."""
        order = np.argsort(np.concatenate([self.ids, other.ids]), kind="stable")

        def both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])[order]

        return Outputs(
            ids=np.concatenate([self.ids, other.ids])[order],
            labels=np.concatenate([self.labels, other.labels])[order],
            logits=np.concatenate([self.logits, other.logits])[order],
            features=both(self.features, other.features),
            channels=both(self.channels, other.channels),
        )

    @property
    def probs(self) -> np.ndarray:
        shifted = self.logits - self.logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)

    @property
    def losses(self) -> np.ndarray:
        """Per-sample cross-entropy."""
        shifted = self.logits - self.logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        return log_norm - shifted[np.arange(len(self.labels)), self.labels]

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels


def readable_layers(
    model: LoadedModel, *, conv_layer: str | None = None, feature_layer: str | None = None
) -> tuple[LayerInfo | None, str]:
    """The layers outputs can record for ``model``, or ``None`` and the reason why not."""
    hookable = model.hookable
    if hookable is None:
        return None, model.readable_note or "TorchScript models run no Python hooks"
    try:
        return find_layers(hookable, conv_layer=conv_layer, feature_layer=feature_layer), ""
    except ConfigError as exc:
        return None, str(exc)


def grad_cam(
    model: LoadedModel,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    conv_layer: str | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` of ``model`` for ``targets`` at its last convolution (or
    ``conv_layer``), with captum's ``LayerGradCam``: no ReLU on the maps, upsampled bilinearly
    to the input size, no per-image scaling."""
    from captum.attr import LayerAttribution, LayerGradCam

    layers, reason = readable_layers(model, conv_layer=conv_layer)
    if layers is None or layers.conv is None:
        raise ConfigError(reason or "the model has no convolution for Grad-CAM")
    module = model.hookable
    assert module is not None  # readable_layers found layers
    if device is not None:
        module = module.to(device)
    module = module.eval()
    device = next(iter(module.parameters())).device
    if module is not model.module:  # a TorchScript model read through its eager view
        with torch.inference_mode():
            inputs = x.to(device)
            if not logits_agree(model.module.to(device)(inputs), module(inputs)):
                raise ConfigError(
                    "the TorchScript model's eager view disagrees with its own logits, so its "
                    "layers are not read"
                )
    cam = LayerGradCam(module, get_layer(module, layers.conv))
    maps = cam.attribute(x.to(device), target=targets.to(device), relu_attributions=False)
    maps = LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return maps.detach().sum(dim=1).cpu().numpy().astype(np.float64)


class OutputCollector:
    """Collects and caches outputs; one inference pass per (model, view) of the plan.

    Args:
        dataset: Where the samples come from.
        batch_size: Inference batch size.
        device: Where the models run.
        trigger: Used by the ``"trigger"`` view.
        conv_layer: Convolution to record instead of the last ``Conv2d``.
        feature_layer: Module whose output is the features instead of the last ``Linear``'s
            input.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int = 512,
        device: torch.device | str = "cpu",
        trigger: Trigger | None = None,
        conv_layer: str | None = None,
        feature_layer: str | None = None,
        store: Store | None = None,
    ) -> None:
        self.dataset = dataset
        self.store = store
        # fingerprints of the models whose outputs go into the store (those that do not
        # change between audits: the original, references, shadows)
        self.keep: set[str] = set()
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.trigger = trigger
        self.conv_layer = conv_layer
        self.feature_layer = feature_layer
        # (model fingerprint, fingerprint of the ids of the pass, view) -> passes run
        self.passes: Counter[tuple[str, str, str]] = Counter()
        # (model fingerprint, view) -> samples forwarded through it
        self.forwarded: Counter[tuple[str, str]] = Counter()
        # (model fingerprint, view) -> samples whose outputs came from the store
        self.loaded: Counter[tuple[str, str]] = Counter()
        # (model fingerprint, view) -> samples whose Grad-CAM maps were computed / stored
        self.cams_computed: Counter[tuple[str, str]] = Counter()
        self.cams_loaded: Counter[tuple[str, str]] = Counter()
        self._cams: dict[tuple[str, str, str], np.ndarray] = {}
        # reads the plan did not announce: (model fingerprint, ids fingerprint, view)
        self.unplanned: list[tuple[str, str, str]] = []
        self._planned: dict[tuple[str, str], np.ndarray] = {}
        self._whole: dict[tuple[str, str], Outputs] = {}
        self._cache: dict[tuple[str, str, str], Outputs] = {}
        # TorchScript models whose readable view disagreed with their own logits on a batch:
        # their layers are not read at all (fingerprint -> what happened)
        self.unreadable: dict[str, str] = {}

    def plan(self, reads: Iterable[tuple[LoadedModel, np.ndarray, View]]) -> None:
        """Announce reads: for each (model, ids, view), the samples a check will read. Reads of
        one model through one view merge into one pass over the union of their ids."""
        for model, ids, view in reads:
            key = (model.fingerprint, view)
            known = self._planned.get(key, np.zeros(0, dtype=np.int64))
            merged = np.union1d(known, np.asarray(ids, dtype=np.int64))
            if key in self._whole and len(merged) != len(known):
                del self._whole[key]  # announced after its pass: the next read runs a new one
            self._planned[key] = merged

    def planned(self) -> dict[tuple[str, str], np.ndarray]:
        """The plan: (model fingerprint, view) -> the ids its one pass covers."""
        return dict(self._planned)

    def get(
        self, model: LoadedModel, ids: np.ndarray, ids_fingerprint: str, view: View = "clean"
    ) -> Outputs:
        """Outputs of ``model`` on ``ids`` through ``view``: a slice of the planned pass
        (run on the first read), or a pass of its own for a read the plan did not hold."""
        ids = np.asarray(ids, dtype=np.int64)
        key = (model.fingerprint, ids_fingerprint, view)
        if key in self._cache:
            return self._cache[key]
        union = self._planned.get((model.fingerprint, view))
        if union is not None and bool(np.isin(ids, union).all()):
            whole = self._whole.get((model.fingerprint, view))
            if whole is None:
                whole = self._pass(model, union, fingerprint_ids(union), view)
                self._whole[(model.fingerprint, view)] = whole
            self._cache[key] = whole.take(ids)
        else:
            self.unplanned.append(key)
            self._cache[key] = self._pass(model, ids, ids_fingerprint, view)
        return self._cache[key]

    def _pass(self, model: LoadedModel, ids: np.ndarray, fingerprint: str, view: View) -> Outputs:
        """One pass of ``model`` over ``ids``, or its outputs from the store if kept there."""
        if self.store is None or model.fingerprint not in self.keep:
            return self._forward(model, ids, fingerprint, view)

        def compute() -> tuple[dict[str, np.ndarray], dict[str, str]]:
            out = self._forward(model, ids, fingerprint, view)
            reason = self.unreadable.get(model.fingerprint)
            return out.arrays(), ({"unreadable": reason} if reason else {})

        arrays, notes, stored = self.store.get_or_compute_arrays(
            "outputs", self.entry(model, fingerprint, view), compute
        )
        if stored:
            self.loaded[(model.fingerprint, view)] += len(ids)
            if "unreadable" in notes:
                self.unreadable[model.fingerprint] = notes["unreadable"]
        return Outputs.from_arrays(arrays)

    def grad_cams(
        self, model: LoadedModel, ids: np.ndarray, targets: np.ndarray, view: View = "clean"
    ) -> np.ndarray:
        """Grad-CAM maps ``(N, H, W)`` of ``model`` on ``ids`` through ``view`` for ``targets``:
        computed once per audit, and kept in the store for the models that do not change."""
        ids = np.asarray(ids, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.int64)
        key = (model.fingerprint, fingerprint_arrays([ids, targets]), view)
        if key in self._cams:
            return self._cams[key]

        def compute() -> tuple[dict[str, np.ndarray], dict[str, str]]:
            self.cams_computed[(model.fingerprint, view)] += len(ids)
            maps = []
            for start in range(0, len(ids), CAM_BATCH):
                x, _ = self.dataset.load(ids[start : start + CAM_BATCH], device=self.device)
                inputs = apply_view(x, view, trigger=self.trigger)
                chunk = torch.as_tensor(targets[start : start + CAM_BATCH], device=self.device)
                maps.append(
                    grad_cam(model, inputs, chunk, conv_layer=self.conv_layer, device=self.device)
                )
            return {"maps": np.concatenate(maps)}, {}

        if self.store is None or model.fingerprint not in self.keep:
            maps = compute()[0]["maps"]
        else:
            arrays, _, stored = self.store.get_or_compute_arrays(
                "grad_cams", self.cam_entry(model, ids, targets, view), compute
            )
            maps = arrays["maps"]
            if stored:
                self.cams_loaded[(model.fingerprint, view)] += len(ids)
        self._cams[key] = maps
        return maps

    def cam_entry(
        self, model: LoadedModel, ids: np.ndarray, targets: np.ndarray, view: View
    ) -> dict[str, Any]:
        """Everything stored Grad-CAM maps depend on: those of outputs, with the ids in their
        order and the target of each."""
        ids, targets = np.asarray(ids, dtype=np.int64), np.asarray(targets, dtype=np.int64)
        entry = self.entry(model, fingerprint_arrays([ids, targets]), view)
        return entry | {"batch_size": CAM_BATCH, "output": "grad-cam"}

    def entry(self, model: LoadedModel, fingerprint: str, view: View) -> dict[str, Any]:
        """Everything stored outputs depend on: weights, data, ids, view, layers read (and for
        a TorchScript model the view they are read through), batch size, device kind and the
        code that reads them."""
        return {
            "model": model.fingerprint,
            "readable": model.readable_key,
            "dataset": self.dataset.fingerprint,
            "ids": fingerprint,
            "view": view,
            "trigger": self.trigger.to_dict() if view == "trigger" and self.trigger else None,
            "conv_layer": self.conv_layer,
            "feature_layer": self.feature_layer,
            "batch_size": self.batch_size,
            "device": self.device.type,
            "code": collector_version(),
        }

    def _forward(
        self, model: LoadedModel, ids: np.ndarray, fingerprint: str, view: View
    ) -> Outputs:
        self.passes[(model.fingerprint, fingerprint, view)] += 1
        self.forwarded[(model.fingerprint, view)] += len(ids)
        return self._collect(model, ids, view)

    def layers_of(self, model: LoadedModel) -> tuple[LayerInfo | None, str]:
        """The layers recorded for ``model`` (or ``None`` and why not)."""
        return readable_layers(model, conv_layer=self.conv_layer, feature_layer=self.feature_layer)

    def _collect(self, model: LoadedModel, ids: np.ndarray, view: View) -> Outputs:
        layers, _ = self.layers_of(model)
        if model.fingerprint in self.unreadable:
            layers = None
        record: dict[str, tuple[str, Literal["input", "output"]]] = {}
        if layers is not None:
            record["features"] = (layers.features, layers.features_from)
            if layers.conv is not None:
                record["conv"] = (layers.conv, "output")
        module = model.module.to(self.device).eval()
        # a TorchScript model's layers are read through its eager view, which must give the
        # same logits as the compiled model on every batch (else nothing is read from it)
        view_module = model.hookable if record else None
        mirror = view_module is not None and view_module is not module
        if view_module is not None and mirror:
            view_module.to(self.device).eval()
        logits, features, channels = [], [], []
        hooked = view_module if view_module is not None else module
        with (
            in_fast_layout(module, self.device, self.dataset.input_shape) as layout,
            torch.inference_mode(),
            LayerRecorder(hooked, record) as recorder,
        ):
            for x, _, _ in self.dataset.batches(ids, self.batch_size, device=self.device):
                inputs = apply_view(x, view, trigger=self.trigger).contiguous(memory_format=layout)
                out = module(inputs)
                if (
                    mirror
                    and view_module is not None
                    and record
                    and not logits_agree(out, view_module(inputs))
                ):
                    self.unreadable[model.fingerprint] = (
                        "its eager view disagreed with the compiled model's logits on "
                        f"{view} inputs, so its layers are not read"
                    )
                    record = {}
                logits.append(out.double().cpu())
                if "features" in record:
                    features.append(recorder.get("features").flatten(1).float().cpu())
                if "conv" in record:
                    conv = recorder.get("conv")
                    channels.append(conv.clamp(min=0).mean(dim=(2, 3)).float().cpu())
        readable = bool(record) and model.fingerprint not in self.unreadable
        return Outputs(
            ids=ids,
            labels=self.dataset.labels[ids],
            logits=_stack(logits, (0, model.info.num_classes)),
            features=_stack(features) if features and readable else None,
            channels=_stack(channels) if channels and readable else None,
        )


@functools.cache
def collector_version() -> str:
    """Fingerprint of the code that computes outputs (this module, the layer recorder, model
    loading): part of every stored output's key."""
    from unlearn_audit.models import checkpoints, layers

    return code_fingerprint(__file__, layers.__file__, checkpoints.__file__)


def _stack(parts: list[torch.Tensor], empty: tuple[int, int] = (0, 0)) -> np.ndarray:
    if not parts:
        return np.zeros(empty)
    return torch.cat(parts).numpy()
