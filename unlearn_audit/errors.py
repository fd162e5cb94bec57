"""One exception root for the toolkit.

Every error a user can cause derives from :class:`UnlearnAuditError` and also from the builtin
that callers already catch (``ValueError``, ``FileNotFoundError``, ...). The CLI prints the
message of any ``UnlearnAuditError`` on one line and exits 1; anything else is a bug.
"""

from __future__ import annotations


class UnlearnAuditError(Exception):
    """Root of every error raised on purpose by unlearn-audit."""


class ConfigError(UnlearnAuditError, ValueError):
    """An option or argument has an invalid value."""


class RegistryError(UnlearnAuditError, KeyError):
    """A name is not registered (dataset, architecture, check, method)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetError(UnlearnAuditError, ValueError):
    """A dataset is malformed or does not fit the request."""


class DatasetNotFoundError(UnlearnAuditError, FileNotFoundError):
    """A dataset's files are not where they were looked for."""


class RequestError(UnlearnAuditError, ValueError):
    """A forget request cannot be turned into splits."""


class CheckpointError(UnlearnAuditError, ValueError):
    """A checkpoint cannot be loaded or does not fit the model or the dataset."""


class CheckpointNotFoundError(UnlearnAuditError, FileNotFoundError):
    """A checkpoint file does not exist."""


class UnsafeCheckpointError(CheckpointError, PermissionError):
    """Loading the checkpoint would execute code from the file and was not allowed."""


class StoreError(UnlearnAuditError, OSError):
    """The on-disk store cannot be used."""


class OutputError(UnlearnAuditError, OSError):
    """An output file or folder cannot be written where it was asked for."""
