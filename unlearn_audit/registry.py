"""Named plug-ins: datasets, architectures, checks and methods.

A :class:`Registry` maps names to objects. Built-in entries register themselves with the
:meth:`Registry.register` decorator; third-party packages add entries through the entry point
group named by the registry (``unlearn_audit.datasets``, ``unlearn_audit.archs``, ...), loaded the
first time the registry is read. A plug-in that fails to load is a warning naming it, and is
skipped.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

from unlearn_audit.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with did-you-mean errors.

    Args:
        kind: What the entries are, in words ("dataset"), used in messages.
        group: Entry point group third-party packages register under.
    """

    def __init__(self, kind: str, *, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}
        self._entry_points_loaded = group is None

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(value: T) -> T:
            if name in self._entries and self._entries[name] is not value:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = value
            return value

        if obj is None:
            return _add
        return _add(obj)

    def get(self, name: str) -> T:
        """Return the entry for ``name``.

        Raises:
            RegistryError: ``name`` is unknown; the message lists the closest names.
        """
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}."
        )

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load_entry_points()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def _load_entry_points(self) -> None:
        """Add the entry points of ``group``, once; a plug-in that fails to load is skipped.

        A broken third-party package must not take the listing (or every other entry) down
        with it, so its error becomes a warning that names the plug-in.
        """
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.group or ""):
            if ep.name in self._entries:
                continue
            try:
                self._entries[ep.name] = ep.load()
            except Exception as exc:  # any error of foreign code: ImportError, AttributeError, ...
                first_line = (str(exc).strip().splitlines() or [""])[0]
                warnings.warn(
                    f"skipped the {self.kind} plug-in {ep.name!r} (entry point {ep.name} = "
                    f"{ep.value} in group {ep.group}): it failed to load: "
                    f"{type(exc).__name__}: {first_line}",
                    RuntimeWarning,
                    stacklevel=3,
                )


# Unlearning methods reach the core only through entry points (group ``unlearn_audit.methods``),
# so the core never imports the bundled ``methods`` package. An entry is an object with
# ``name``, ``scope``, ``needs``, ``defaults``, ``paper``, ``summary`` and
# ``apply(original, dataset, splits, *, hyperparameters, seed, device, progress)`` returning an
# object with ``model`` (a LoadedModel) and ``seconds``.
METHOD_PLUGINS: Registry[Any] = Registry("method", group="unlearn_audit.methods")
