"""A content-addressed on-disk store for trained models, for results of models that do not
change between audits (their outputs), and for every audited model's relearn curves.

Entries are keyed by a fingerprint of everything that determines the trained weights: the
dataset fingerprint, architecture and its arguments, normalisation, recipe, member ids and seed
(and a ``role``: original, reference, shadow, ...). A second request with the same key loads the
stored model instead of training. Writes are atomic; an entry whose weights no longer match the
fingerprint recorded in it is reported, deleted and rebuilt, never used.

The root is, in order: the ``root`` argument (``--cache-dir``), the ``UNLEARN_AUDIT_CACHE``
environment variable, ``$XDG_CACHE_HOME/unlearn-audit``, ``~/.cache/unlearn-audit``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from unlearn_audit._hashing import fingerprint_json
from unlearn_audit._io import write_atomic
from unlearn_audit.errors import StoreError, UnlearnAuditError
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint

ENV_VAR = "UNLEARN_AUDIT_CACHE"
STORE_VERSION = 1
LOCK_TIMEOUT = 6 * 3600.0  # seconds; training one entry can take hours on a CPU


class NotStored(Exception):
    """Raised by a look-up-only store (:meth:`Store.lookup_only`) for a model it does not
    hold, instead of training it."""


class CacheWarning(UserWarning):
    """A store entry was unusable and is being rebuilt."""


def default_cache_dir() -> Path:
    """The store root when none is given (see the module docstring)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "unlearn-audit"


@dataclass(frozen=True)
class StoreEntry:
    """One file of the store: its kind (``models``, ``outputs``, ``relearn_curves``, ...),
    path, size in bytes and when it was last used (written or read; seconds since the epoch)."""

    kind: str
    path: Path
    size: int
    used: float


class Store:
    """Trained models on disk, addressed by the fingerprint of their training key.

    Two processes may share a store (two CI jobs): an entry is trained under a per-key file
    lock, so it is trained once and the other process waits for it, then loads it.

    Args:
        root: Folder of the store; see :func:`default_cache_dir` for the default.
        lock_timeout: Seconds to wait for another process training the same entry.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        lock_timeout: float = LOCK_TIMEOUT,
        enabled: bool = True,
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.lock_timeout = lock_timeout
        self.enabled = enabled
        self.trains = True
        self.hits = 0
        self.misses = 0
        self.computed_hits = 0  # results of get_or_compute found stored
        self.array_hits = 0  # arrays of get_or_compute_arrays found stored

    def lookup_only(self) -> Store:
        """The same store, except that a model it does not hold raises :class:`NotStored`
        instead of being trained (for plans: what would have to be trained)."""
        view = Store(self.root, lock_timeout=self.lock_timeout, enabled=self.enabled)
        view.trains = False
        return view

    def holds_arrays(self, kind: str, parts: dict[str, Any]) -> bool:
        """Whether an entry of :meth:`get_or_compute_arrays` exists for ``parts`` (unchecked)."""
        key = self.key({"kind": kind, **parts})
        return self.enabled and (self.root / kind / key[:2] / f"{key}.safetensors").is_file()

    @classmethod
    def off(cls) -> Store:
        """A store that keeps nothing: every model is trained and every result computed
        afresh (``--no-cache``)."""
        return cls(enabled=False)

    def key(self, parts: dict[str, Any]) -> str:
        """Fingerprint of a training key (a JSON-able dict)."""
        return fingerprint_json({"store_version": STORE_VERSION, **parts})

    def path(self, key: str) -> Path:
        return self.root / "models" / key[:2] / f"{key}.safetensors"

    def load(self, key: str, *, arch: str | None = None) -> LoadedModel | None:
        """The stored model for ``key``, or ``None`` if absent or corrupted (then deleted).

        Args:
            arch: The architecture the caller expects; it confirms an import-path
                architecture recorded in the entry (the store never imports code the caller
                did not name).
        """
        path = self.path(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            model = load_checkpoint(path, arch=arch)
            recorded = _recorded_fingerprint(path)
        except UnlearnAuditError as exc:
            self._discard(path, f"unreadable ({exc})")
            return None
        if recorded != model.fingerprint:
            self._discard(path, "its weights do not match the fingerprint recorded in it")
            return None
        self._touch(path)
        return model

    def save(self, key: str, model: LoadedModel) -> Path:
        """Store ``model`` under ``key`` (atomically; nothing when the store is off)."""
        if not self.enabled:
            return self.path(key)
        try:
            return save_checkpoint(model, self.path(key))
        except OSError as exc:
            raise self._unwritable(exc) from None

    def put_checkpoint(self, key: str, data: bytes, *, arch: str | None = None) -> LoadedModel:
        """Store a checkpoint trained elsewhere (its bytes, from
        :func:`~unlearn_audit.models.checkpoints.checkpoint_bytes`) under ``key``, atomically
        and under the entry's lock, and return it as loaded back (its weights checked against
        its fingerprint). An entry another process stored meanwhile is kept.

        Raises:
            StoreError: The bytes are not a valid checkpoint, or the store cannot be written.
        """
        path = self.path(key)
        with self._lock(key):
            model = self.load(key, arch=arch)
            if model is not None:
                return model
            try:
                write_atomic(path, lambda tmp: tmp.write_bytes(data))
            except OSError as exc:
                raise self._unwritable(exc) from None
            model = self.load(key, arch=arch)
        if model is None:
            raise StoreError(f"the checkpoint received for store entry {key} is damaged.")
        return model

    def get_or_train(self, parts: dict[str, Any], train: Callable[[], LoadedModel]) -> LoadedModel:
        """Load the model stored for ``parts``, or call ``train()`` and store its result.

        Training happens under the entry's lock; a process that finds the lock taken waits,
        then loads what the other one stored (a hit).

        Raises:
            StoreError: The store cannot be written, or the lock was held past ``lock_timeout``.
        """
        key = self.key(parts)
        arch = parts.get("arch")
        expected = arch if isinstance(arch, str) else None
        model = self.load(key, arch=expected)
        if model is None and not self.trains:
            raise NotStored(key)
        if not self.enabled:
            self.misses += 1
            return train()
        if model is None:
            with self._lock(key):
                model = self.load(key, arch=expected)  # another process may have trained it
                if model is None:
                    self.misses += 1
                    model = train()
                    self.save(key, model)
                    return model
        self.hits += 1
        return model

    def _unwritable(self, exc: OSError) -> StoreError:
        return StoreError(
            f"cannot write to the store at {self.root} ({exc}); use another `cache_dir` or set "
            f"{ENV_VAR} to a writable folder."
        )

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """Hold the per-key lock ``<root>/locks/<key>.lock`` (released if the process dies)."""
        path = self.root / "locks" / f"{key}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path), timeout=self.lock_timeout)
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"another unlearn-audit has been training store entry {key} for over "
                f"{self.lock_timeout:.0f} s (lock {path}); wait for it to finish, or use another "
                "`cache_dir`."
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot lock the store at {self.root} ({exc}); use another `cache_dir` or set "
                f"{ENV_VAR} to a writable folder."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def get_or_compute(
        self, kind: str, parts: dict[str, Any], compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """A JSON-able result stored under ``kind`` for ``parts``, or ``compute()`` stored.

        For results of models that do not change between audits (a reference's relearn
        curve). Each entry holds the sha256 of its payload; an entry that does not match it
        (or cannot be read) is reported, deleted and computed again, never used.
        """
        key = self.key({"kind": kind, **parts})
        path = self.root / kind / key[:2] / f"{key}.json"
        if not self.enabled:
            return compute()
        if path.is_file():
            try:
                entry = json.loads(path.read_text())
                payload = entry["payload"]
                intact = entry["sha256"] == _payload_hash(payload)
            except (OSError, ValueError, KeyError, TypeError):
                intact, payload = False, None
            if intact and isinstance(payload, dict):
                self.computed_hits += 1
                self._touch(path)
                return payload
            self._discard(path, "its content does not match the hash recorded in it")
        payload = compute()
        text = json.dumps({"sha256": _payload_hash(payload), "payload": payload})
        try:
            write_atomic(path, lambda tmp: tmp.write_text(text))
        except OSError as exc:
            raise self._unwritable(exc) from None
        return payload

    def get_or_compute_arrays(
        self,
        kind: str,
        parts: dict[str, Any],
        compute: Callable[[], tuple[dict[str, np.ndarray], dict[str, str]]],
    ) -> tuple[dict[str, np.ndarray], dict[str, str], bool]:
        """Arrays and string notes stored under ``kind`` for ``parts``, or ``compute()``
        stored; the flag says whether they came from the store.

        For outputs of models that do not change between audits. The entry is one
        safetensors file whose metadata holds the sha256 of its arrays and notes; an entry
        that does not match it (or cannot be read) is reported, deleted and computed again.
        """
        key = self.key({"kind": kind, **parts})
        path = self.root / kind / key[:2] / f"{key}.safetensors"
        if self.enabled and path.is_file():
            stored = _read_arrays(path)
            if stored is not None:
                self.array_hits += 1
                self._touch(path)
                return stored[0], stored[1], True
            self._discard(path, "its content does not match the hash recorded in it")
        arrays, notes = compute()
        if self.enabled:
            from safetensors.numpy import save_file

            metadata = {f"note.{k}": v for k, v in notes.items()}
            metadata["sha256"] = _arrays_hash(arrays, notes)
            contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
            try:
                write_atomic(path, lambda tmp: save_file(contiguous, str(tmp), metadata))
            except OSError as exc:
                raise self._unwritable(exc) from None
        return arrays, notes, False

    def entries(self) -> list[StoreEntry]:
        """Every entry of the store (models, outputs, computed results), oldest use first."""
        found = []
        if self.root.is_dir():
            for path in self.root.glob("*/??/*"):
                kind = path.parent.parent.name
                if path.is_file() and not path.name.startswith(".") and kind != "locks":
                    stat = path.stat()
                    found.append(StoreEntry(kind, path, stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda entry: (entry.used, str(entry.path)))

    def prune(
        self,
        *,
        older_than: float | None = None,
        max_bytes: int | None = None,
        now: float | None = None,
    ) -> list[StoreEntry]:
        """Delete entries unused for ``older_than`` seconds, then the least recently used until
        the store holds at most ``max_bytes``; returns what was deleted."""
        import time

        now = time.time() if now is None else now
        remaining = self.entries()
        removed = [e for e in remaining if older_than is not None and now - e.used > older_than]
        remaining = [e for e in remaining if e not in removed]
        if max_bytes is not None:
            total = sum(e.size for e in remaining)
            while remaining and total > max_bytes:
                oldest = remaining.pop(0)
                removed.append(oldest)
                total -= oldest.size
        for entry in removed:
            entry.path.unlink(missing_ok=True)
        return removed

    def _touch(self, path: Path) -> None:
        """Mark an entry as just used (pruning removes the least recently used first)."""
        with contextlib.suppress(OSError):
            os.utime(path)

    def _discard(self, path: Path, reason: str) -> None:
        warnings.warn(
            f"store entry {path} is corrupted: {reason}; rebuilding it.", CacheWarning, stacklevel=3
        )
        path.unlink(missing_ok=True)


def _payload_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _arrays_hash(arrays: dict[str, np.ndarray], notes: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(notes, sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _read_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """The arrays and notes of an intact entry, else ``None``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            metadata = fh.metadata() or {}
            arrays = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
    except (OSError, SafetensorError, ValueError):
        return None
    notes = {k[len("note.") :]: v for k, v in metadata.items() if k.startswith("note.")}
    if metadata.get("sha256") != _arrays_hash(arrays, notes):
        return None
    return arrays, notes


def _recorded_fingerprint(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return (fh.metadata() or {}).get("fingerprint")
