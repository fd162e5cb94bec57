"""Backdoor triggers (BadNets, Gu et al. 2017; the backdoor protocol of seed 004).

A :class:`Trigger` stamps a small patch (``kind="patch"``) or blends a pattern
(``kind="blend"``) into a rectangle of the image, in input scale [0, 1] and NCHW layout, and
names the target label. It is written as a small JSON file::

    {"kind": "patch", "size": 3, "row": 5, "col": 5, "value": 1.0, "target": 0}
    {"kind": "blend", "size": [8, 8], "row": 0, "col": 0, "pattern": "checkerboard",
     "alpha": 0.2, "target": 0}

``pattern`` is a 2-D list (one value per pixel, all channels), a 3-D list (per channel), or
``"checkerboard"``; without it the patch is the constant ``value``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from unlearn_audit._validation import check_choice, check_fraction, fail
from unlearn_audit.errors import ConfigError

_FIELDS = ("kind", "size", "row", "col", "target", "value", "pattern", "alpha")


@dataclass(frozen=True)
class Trigger:
    """A backdoor trigger and its target label.

    Attributes:
        kind: ``"patch"`` replaces the pixels of the rectangle; ``"blend"`` mixes them as
            ``(1 - alpha) * x + alpha * pattern``.
        size: ``(height, width)`` of the rectangle.
        row: Top row of the rectangle.
        col: Left column of the rectangle.
        target: Label the triggered inputs are trained to (and tested for).
        value: Constant pattern value in [0, 1] when ``pattern`` is not given.
        pattern: ``"checkerboard"``, or nested lists ``(H, W)`` or ``(C, H, W)`` in [0, 1].
        alpha: Blend weight in (0, 1] (patches use 1).
    """

    kind: Literal["patch", "blend"]
    size: tuple[int, int]
    row: int
    col: int
    target: int
    value: float = 1.0
    pattern: str | tuple[Any, ...] | None = None
    alpha: float = 1.0
    _array: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_choice(self.kind, "trigger kind", ("patch", "blend"))
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
            raise fail("trigger size", "a positive integer or [height, width]", self.size)
        object.__setattr__(self, "size", size)
        for name in ("row", "col", "target"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise fail(f"trigger {name}", "an integer >= 0", value)
        check_fraction(self.value, "trigger value", inclusive=True)
        if self.kind == "blend":
            check_fraction(self.alpha, "trigger alpha", inclusive=True)
            if self.alpha == 0:
                raise fail("trigger alpha", "a number in (0, 1]", self.alpha)
        elif self.alpha != 1.0:
            raise fail("trigger alpha", "1 for a patch (use kind 'blend' to mix)", self.alpha)
        if isinstance(self.pattern, list):
            object.__setattr__(self, "pattern", _to_tuple(self.pattern))
        object.__setattr__(self, "_array", self._pattern_array())

    def _pattern_array(self) -> np.ndarray:
        height, width = self.size
        if self.pattern is None:
            return np.full((1, height, width), self.value, dtype=np.float32)
        if self.pattern == "checkerboard":
            rows, cols = np.indices((height, width))
            return ((rows + cols) % 2).astype(np.float32)[None]
        if isinstance(self.pattern, str):
            raise fail("trigger pattern", "'checkerboard' or a list of pixel values", self.pattern)
        try:
            array = np.asarray(self.pattern, dtype=np.float32)
        except ValueError:
            raise fail("trigger pattern", "a rectangular list of numbers", "ragged list") from None
        array = array[None] if array.ndim == 2 else array
        if array.ndim != 3 or array.shape[1:] != (height, width):
            raise fail("trigger pattern", f"of shape ({height}, {width}) or (C, {height}, {width})",
                       f"shape {array.shape}")  # fmt: skip
        if array.min() < 0 or array.max() > 1:
            raise fail("trigger pattern", "values in [0, 1] (input scale)", "values outside")
        return array

    def check_fits(self, input_shape: tuple[int, int, int], num_classes: int) -> Trigger:
        """Check that the rectangle lies inside ``(C, H, W)`` images and the target is a class."""
        channels, height, width = input_shape
        bottom, right = self.row + self.size[0], self.col + self.size[1]
        if bottom > height or right > width:
            raise ConfigError(
                f"the trigger covers rows {self.row}..{bottom - 1} and columns {self.col}.."
                f"{right - 1}, outside the {height}x{width} images; move it (row, col) or make "
                "it smaller (size)."
            )
        assert self._array is not None
        if self._array.shape[0] not in (1, channels):
            raise ConfigError(
                f"the trigger pattern has {self._array.shape[0]} channels but the images have "
                f"{channels}; give one channel or {channels}."
            )
        if self.target >= num_classes:
            raise ConfigError(
                f"the trigger target {self.target} is not a class (0..{num_classes - 1})."
            )
        return self

    def mask(self, input_shape: tuple[int, int, int]) -> np.ndarray:
        """Boolean ``(H, W)`` mask of the pixels the trigger changes."""
        mask = np.zeros(input_shape[1:], dtype=bool)
        mask[self.row : self.row + self.size[0], self.col : self.col + self.size[1]] = True
        return mask

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Return a triggered copy of ``x`` ``(N, C, H, W)`` in [0, 1]."""
        assert self._array is not None
        out = x.clone()
        pattern = torch.as_tensor(self._array, dtype=x.dtype, device=x.device)
        rows = slice(self.row, self.row + self.size[0])
        cols = slice(self.col, self.col + self.size[1])
        region = out[:, :, rows, cols]
        out[:, :, rows, cols] = (1 - self.alpha) * region + self.alpha * pattern
        return out

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        data["size"] = list(self.size)
        if isinstance(self.pattern, tuple):
            data["pattern"] = _to_list(self.pattern)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        if not isinstance(data, dict):
            raise fail("trigger", "a JSON object", data)
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"unknown trigger fields {unknown}; known: {list(_FIELDS)}.")
        missing = [name for name in ("kind", "size", "row", "col", "target") if name not in data]
        if missing:
            raise ConfigError(
                f"the trigger is missing {missing}; see `unlearn-audit train --help`."
            )
        values = dict(data)
        if values.get("kind") == "blend" and "alpha" not in values:
            values["alpha"] = 0.2
        return cls(**values)


def load_trigger(path: str | Path) -> Trigger:
    """Read a trigger JSON file (see the module docstring)."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"trigger file {str(path)!r} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"trigger file {str(path)!r} is not valid JSON ({exc}).") from None
    return Trigger.from_dict(data)


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def _to_list(value: Any) -> Any:
    return [_to_list(v) for v in value] if isinstance(value, list | tuple) else value
