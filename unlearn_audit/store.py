"""A content-addressed on-disk store for trained models.

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
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from unlearn_audit._hashing import fingerprint_json
from unlearn_audit._io import write_atomic
from unlearn_audit.errors import StoreError, UnlearnAuditError
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint

ENV_VAR = "UNLEARN_AUDIT_CACHE"
STORE_VERSION = 1
LOCK_TIMEOUT = 6 * 3600.0  # seconds; training one entry can take hours on a CPU


class CacheWarning(UserWarning):
    """A store entry was unusable and is being rebuilt."""


def default_cache_dir() -> Path:
    """The store root when none is given (see the module docstring)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "unlearn-audit"


class Store:
    """Trained models on disk, addressed by the fingerprint of their training key.

    Two processes may share a store (two CI jobs): an entry is trained under a per-key file
    lock, so it is trained once and the other process waits for it, then loads it.

    Args:
        root: Folder of the store; see :func:`default_cache_dir` for the default.
        lock_timeout: Seconds to wait for another process training the same entry.
    """

    def __init__(
        self, root: str | Path | None = None, *, lock_timeout: float = LOCK_TIMEOUT
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.lock_timeout = lock_timeout
        self.hits = 0
        self.misses = 0
        self.computed_hits = 0

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
        if not path.is_file():
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
        return model

    def save(self, key: str, model: LoadedModel) -> Path:
        """Store ``model`` under ``key`` (atomically)."""
        try:
            return save_checkpoint(model, self.path(key))
        except OSError as exc:
            raise StoreError(
                f"cannot write to the store at {self.root} ({exc}); use another `cache_dir` or set "
                f"{ENV_VAR} to a writable folder."
            ) from None

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
        if path.is_file():
            try:
                entry = json.loads(path.read_text())
                payload = entry["payload"]
                intact = entry["sha256"] == _payload_hash(payload)
            except (OSError, ValueError, KeyError, TypeError):
                intact, payload = False, None
            if intact and isinstance(payload, dict):
                self.computed_hits += 1
                return payload
            self._discard(path, "its content does not match the hash recorded in it")
        payload = compute()
        text = json.dumps({"sha256": _payload_hash(payload), "payload": payload})
        try:
            write_atomic(path, lambda tmp: tmp.write_text(text))
        except OSError as exc:
            raise StoreError(
                f"cannot write to the store at {self.root} ({exc}); use another `cache_dir` or set "
                f"{ENV_VAR} to a writable folder."
            ) from None
        return payload

    def _discard(self, path: Path, reason: str) -> None:
        warnings.warn(
            f"store entry {path} is corrupted: {reason}; rebuilding it.", CacheWarning, stacklevel=3
        )
        path.unlink(missing_ok=True)


def _payload_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _recorded_fingerprint(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return (fh.metadata() or {}).get("fingerprint")
