"""Typed JSON for dataclasses: write any evidence dataclass as plain JSON, read it back by its
type hints, and name the first wrong field by its dotted path.

Handles what evidence holds: dataclasses, ``dict[str, T]``, ``list[T]``, ``tuple[T, ...]``,
``X | None`` and other unions, ``Literal``, ``float``, ``int``, ``str``, ``bool`` and ``Any``
(passed through). A float field takes an int (JSON writes ``1.0`` as ``1`` nowhere, but a user's
file may). Keys a dataclass does not know are ignored (a newer file may hold more); a field
without a default that is absent is an error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from unlearn_audit.errors import ConfigError

T = TypeVar("T")
_HINTS: dict[type, dict[str, Any]] = {}


class CodecError(ConfigError):
    """A JSON value does not have the type its field declares."""

    def __init__(self, path: str, value: Any, expected: str) -> None:
        self.path, self.value, self.expected = path, value, expected
        if value is _ABSENT:
            super().__init__(f"`{path}` is missing.")
        else:
            super().__init__(f"`{path}` must be {expected}; got {shown(value)}.")


_ABSENT = object()


def shown(value: Any) -> str:
    """``value`` as it reads in a JSON file, shortened to 60 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def to_json(obj: Any) -> Any:
    """``obj`` as plain JSON values: dataclasses become objects, tuples lists, NaN ``None``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(key): to_json(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(value) for value in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if getattr(obj, "shape", ()) != () and hasattr(obj, "tolist"):  # a numpy array
        return to_json(obj.tolist())
    if hasattr(obj, "item"):  # a numpy scalar
        return to_json(obj.item())
    raise TypeError(f"{type(obj).__name__} is not JSON evidence")


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "null"
    if origin is dict or tp is dict:
        return "an object"
    if origin in (list, tuple) or tp in (list, tuple):
        return "a list"
    if origin is Literal:
        return " or ".join(json.dumps(arg) for arg in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "an object"
    return "a JSON value"


def from_json(tp: Any, data: Any, path: str = "") -> Any:
    """``data`` (parsed JSON) as a value of type ``tp``.

    Raises:
        CodecError: The first value whose type is wrong, by dotted path.
    """
    if tp is Any or tp is object:
        return data
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return from_json(arg, data, path)
            except CodecError:
                continue
        raise CodecError(path, data, _describe(tp))
    if origin is Literal:
        if data in get_args(tp):
            return data
        raise CodecError(path, data, _describe(tp))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp, data, path)
    if origin is dict or tp is dict:
        if not isinstance(data, dict):
            raise CodecError(path, data, "an object")
        value_type = get_args(tp)[1] if get_args(tp) else Any
        return {key: from_json(value_type, value, f"{path}.{key}") for key, value in data.items()}
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(data, list):
            raise CodecError(path, data, "a list")
        args = get_args(tp)
        item_type = args[0] if args else Any
        if item_type is float and all(type(value) in (float, int) for value in data):
            items = [float(value) for value in data]  # long lists of scores: no path per item
        else:
            items = [from_json(item_type, value, f"{path}[{i}]") for i, value in enumerate(data)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if tp is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
        raise CodecError(path, data, "a number")
    if tp in (int, str, bool):
        if isinstance(data, tp) and not (tp is int and isinstance(data, bool)):
            return data
        raise CodecError(path, data, _describe(tp))
    raise TypeError(f"{path}: no JSON reading for {tp!r}")


def _dataclass(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, dict):
        raise CodecError(path, data, "an object")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    prefix = f"{path}." if path else ""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.name in data:
            values[f.name] = from_json(hints[f.name], data[f.name], prefix + f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise CodecError(prefix + f.name, _ABSENT, "")
    return cls(**values)


__all__ = ["CodecError", "from_json", "shown", "to_json"]
