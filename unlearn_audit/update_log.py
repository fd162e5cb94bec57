"""Per-step parameter updates recorded during training, for amnesiac unlearning.

Amnesiac unlearning (Graves, Nagisetty & Ganesh, AAAI 2021) subtracts, from the trained
weights, every update made by a batch that held a sample to forget. That needs, for each
optimiser step, the parameter delta (after minus before) and the ids in its batch.
``unlearn-audit train --log-updates`` records them with an :class:`UpdateRecorder` and writes
an :class:`UpdateLog` next to the checkpoint (``model.safetensors`` ->
``model.updates.safetensors``). With candidate ids (``--log-candidates``) only the steps whose
batch holds a candidate are kept: storage is one model's worth of floats per kept step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file
from torch import nn

from unlearn_audit._hashing import fingerprint_ids
from unlearn_audit._io import write_atomic
from unlearn_audit.errors import CheckpointError, CheckpointNotFoundError

LOG_FORMAT = "unlearn-audit-updates/1"
LOG_SUFFIX = ".updates.safetensors"


def update_log_path(checkpoint: str | Path) -> Path:
    """Where the log of ``checkpoint`` lives: ``m.safetensors`` -> ``m.updates.safetensors``."""
    path = Path(checkpoint)
    return path.with_name(path.name.removesuffix(".safetensors") + LOG_SUFFIX)


@dataclass
class UpdateLog:
    """The recorded updates of one training run.

    Attributes:
        names: Parameter names (of the :class:`Classifier`, e.g. ``net.features.0.weight``).
        shapes: Their shapes.
        steps: ``(K,)`` 1-based optimiser step of each kept update.
        deltas: ``(K, P)`` float32: the flattened parameter change of each kept step.
        batch_ids: The sample ids of each kept step's batch.
        candidates: The ids whose batches were kept, or ``None`` for every step.
        model_fingerprint: Fingerprint of the model the run produced.
    """

    names: list[str]
    shapes: list[tuple[int, ...]]
    steps: np.ndarray
    deltas: torch.Tensor
    batch_ids: list[np.ndarray]
    candidates: np.ndarray | None
    model_fingerprint: str

    def steps_with(self, ids: np.ndarray) -> np.ndarray:
        """Indices (into ``deltas``) of the kept steps whose batch holds any of ``ids``."""
        return np.array(
            [k for k, batch in enumerate(self.batch_ids) if np.isin(batch, ids).any()],
            dtype=np.int64,
        )

    def summed_delta(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The sum of the deltas of ``rows``, as tensors by parameter name."""
        total = self.deltas[torch.from_numpy(rows)].sum(0) if len(rows) else None
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = int(np.prod(shape))
            part = torch.zeros(size) if total is None else total[offset : offset + size]
            out[name] = part.reshape(shape)
            offset += size
        return out


class UpdateRecorder:
    """Collects an :class:`UpdateLog` while :func:`~unlearn_audit.train.fit` trains.

    Call :meth:`start` with the model before training and pass :meth:`on_step` as fit's
    ``on_step``; :meth:`finish` returns the log.

    Args:
        candidates: Keep only steps whose batch holds one of these ids (``None``: every step).
    """

    def __init__(self, candidates: np.ndarray | None = None) -> None:
        self.candidates = None if candidates is None else np.unique(np.asarray(candidates))
        self._names: list[str] = []
        self._shapes: list[tuple[int, ...]] = []
        self._previous: torch.Tensor | None = None
        self._steps: list[int] = []
        self._deltas: list[torch.Tensor] = []
        self._batches: list[np.ndarray] = []
        self.log: UpdateLog | None = None

    def _flat(self, model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        return torch.cat(
            [params[n].detach().reshape(-1).to("cpu", torch.float32) for n in self._names]
        )

    def start(self, model: nn.Module) -> None:
        """Remember ``model``'s parameters: the state before the first step."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._names = [n for n, _ in named]
        self._shapes = [tuple(p.shape) for _, p in named]
        self._previous = self._flat(model)

    def on_step(self, state: object) -> bool:
        """After each optimiser step: keep its delta if its batch holds a candidate."""
        if self._previous is None:
            raise RuntimeError("UpdateRecorder.start was not called before training")
        model: nn.Module = state.model  # type: ignore[attr-defined]
        batch_ids = np.asarray(state.batch_ids)  # type: ignore[attr-defined]
        current = self._flat(model)
        if self.candidates is None or np.isin(batch_ids, self.candidates).any():
            self._steps.append(int(state.step))  # type: ignore[attr-defined]
            self._deltas.append(current - self._previous)
            self._batches.append(batch_ids.copy())
        self._previous = current
        return False

    def finish(self, model_fingerprint: str) -> UpdateLog:
        """The log of the run that produced the model with ``model_fingerprint`` (also ``.log``)."""
        width = sum(int(np.prod(s)) for s in self._shapes)
        deltas = torch.stack(self._deltas) if self._deltas else torch.zeros(0, width)
        self.log = UpdateLog(
            names=list(self._names),
            shapes=list(self._shapes),
            steps=np.asarray(self._steps, dtype=np.int64),
            deltas=deltas,
            batch_ids=list(self._batches),
            candidates=self.candidates,
            model_fingerprint=model_fingerprint,
        )
        return self.log


def log_arrays(log: UpdateLog) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``log`` as named arrays and string metadata (the file's and the store's form)."""
    lengths = np.array([len(b) for b in log.batch_ids], dtype=np.int64)
    flat_ids = np.concatenate(log.batch_ids) if log.batch_ids else np.zeros(0, np.int64)
    arrays = {
        "deltas": log.deltas.contiguous().numpy(),
        "steps": log.steps.astype(np.int64),
        "batch_ids": flat_ids.astype(np.int64),
        "batch_lengths": lengths,
    }
    if log.candidates is not None:
        arrays["candidates"] = log.candidates.astype(np.int64)
    metadata = {
        "format": LOG_FORMAT,
        "names": json.dumps(log.names),
        "shapes": json.dumps([list(s) for s in log.shapes]),
        "model_fingerprint": log.model_fingerprint,
    }
    return arrays, metadata


def log_from_arrays(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> UpdateLog:
    """The :class:`UpdateLog` of :func:`log_arrays`'s form.

    Raises:
        KeyError, ValueError: Not that form.
    """
    if metadata.get("format") != LOG_FORMAT:
        raise ValueError("no update-log header")
    lengths = np.asarray(arrays["batch_lengths"])
    bounds = np.cumsum(lengths)[:-1]
    candidates = arrays.get("candidates")
    return UpdateLog(
        names=list(json.loads(metadata["names"])),
        shapes=[tuple(s) for s in json.loads(metadata["shapes"])],
        steps=np.asarray(arrays["steps"]),
        deltas=torch.as_tensor(np.asarray(arrays["deltas"])),
        batch_ids=np.split(np.asarray(arrays["batch_ids"]), bounds) if len(lengths) else [],
        candidates=None if candidates is None else np.asarray(candidates),
        model_fingerprint=metadata["model_fingerprint"],
    )


def save_update_log(log: UpdateLog, path: str | Path) -> Path:
    """Write ``log`` to ``path`` (safetensors, atomically)."""
    arrays, metadata = log_arrays(log)
    return write_atomic(path, lambda tmp: save_file(arrays, str(tmp), metadata=metadata))


def load_update_log(path: str | Path) -> UpdateLog:
    """Read a log written by :func:`save_update_log`.

    Raises:
        CheckpointNotFoundError: No such file.
        CheckpointError: Not an update log, or a damaged one.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"update log {str(path)!r} does not exist; train the original with `update_log` "
            "(`unlearn-audit train --log-updates` writes the log next to the checkpoint)."
        )
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        return log_from_arrays(arrays, meta)
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not an update log written with `update_log` ({exc})."
        ) from None


def describe(log: UpdateLog) -> dict[str, object]:
    """What a checkpoint records about its log (``info.extra["update_log"]``)."""
    return {
        "steps_logged": len(log.steps),
        "candidates": None if log.candidates is None else len(log.candidates),
        "candidates_fingerprint": None
        if log.candidates is None
        else fingerprint_ids(log.candidates),
    }
