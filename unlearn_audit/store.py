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

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unlearn_audit._hashing import fingerprint_json
from unlearn_audit.errors import StoreError, UnlearnAuditError
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint

ENV_VAR = "UNLEARN_AUDIT_CACHE"
STORE_VERSION = 1


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

    Args:
        root: Folder of the store; see :func:`default_cache_dir` for the default.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

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
                f"cannot write to the store at {self.root} ({exc}); use --cache-dir or set "
                f"{ENV_VAR} to a writable folder."
            ) from None

    def get_or_train(self, parts: dict[str, Any], train: Callable[[], LoadedModel]) -> LoadedModel:
        """Load the model stored for ``parts``, or call ``train()`` and store its result."""
        key = self.key(parts)
        arch = parts.get("arch")
        model = self.load(key, arch=arch if isinstance(arch, str) else None)
        if model is not None:
            self.hits += 1
            return model
        self.misses += 1
        model = train()
        self.save(key, model)
        return model

    def _discard(self, path: Path, reason: str) -> None:
        warnings.warn(
            f"store entry {path} is corrupted: {reason}; rebuilding it.", CacheWarning, stacklevel=3
        )
        path.unlink(missing_ok=True)


def _recorded_fingerprint(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return (fh.metadata() or {}).get("fingerprint")
