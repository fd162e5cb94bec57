"""Atomic file writes: write to a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from unlearn_audit.errors import OutputError, UnlearnAuditError

# errors of writing the temporary file that say the place is unusable, not that the writer broke
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any error the temporary file is removed, so ``path`` is either the old file or the
    complete new one, never a half-written one. Missing folders are created.

    Raises:
        OutputError: The folder cannot be made or written (a parent is a file, permission
            denied, disk full), or ``path`` is a folder; the message names the path.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(_cannot_write(target, exc)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except UnlearnAuditError:
            raise
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            raise OutputError(_cannot_write(target, exc)) from None
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(_cannot_write(target, exc)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def out_dir_problem(folder: str | Path) -> str | None:
    """Why files cannot be written into ``folder`` (made if missing), or ``None`` if they can.

    Looks without creating anything: ``folder`` or its first existing parent must be a folder
    that this process may write into.
    """
    here = Path(folder)
    for place in (here, *here.parents):
        if place.exists():
            break
    if not place.is_dir():
        if place == here:
            return f"{str(place)!r} is a file, not a folder"
        return f"{str(place)!r} is a file, so no folder can be made inside it"
    if not os.access(place, os.W_OK | os.X_OK):
        return f"{str(place)!r} is not writable by this user"
    return None


def _cannot_write(target: Path, exc: OSError) -> str:
    """The one-line message for an OSError met while writing ``target``."""
    if isinstance(exc, IsADirectoryError) or target.is_dir():
        return f"cannot write {str(target)!r}: it is a folder; give a file path instead."
    why = out_dir_problem(target.parent) or (exc.strerror or str(exc)).lower()
    return (
        f"cannot write {str(target)!r}: {why}; choose an output path in a folder you can "
        "write to (missing folders are created)."
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)
