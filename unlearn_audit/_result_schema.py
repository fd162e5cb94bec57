"""The shape of an audit result's JSON, checked in full before it is turned into objects.

A ``result.json`` that parses but has a wrong field (``"checks": 3``) would otherwise fail deep
inside the report with an ``AttributeError``; :func:`validate_result_dict` names the first wrong
field by its dotted path instead (``checks.accuracy.evidence``, ``verdicts[0].status``). Inside a
check's evidence the check's own dataclasses name the field (see :mod:`unlearn_audit._codec`).

Required fields are those without a default in :class:`~unlearn_audit.results.AuditResult`,
:class:`~unlearn_audit.checks.base.CheckResult` and :class:`~unlearn_audit.results.Verdict`.
Fields this module has no type for (newer optional fields) are accepted when they hold plain
JSON: an object, a list, a string, a number, a boolean or null.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from unlearn_audit._codec import shown as _shown
from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import CheckResult, Verdict

RESULT_FIX = "Re-run the audit, or restore result.json as unlearn-audit wrote it."

# a field's check: returns the wrong (path, value, expected) or None
_Problem = tuple[str, Any, str] | None
_Rule = Callable[[str, Any], _Problem]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(test: Callable[[Any], bool], expected: str) -> _Rule:
    def rule(path: str, value: Any) -> _Problem:
        return None if test(value) else (path, value, expected)

    return rule


def _mapping(item: Callable[[Any], bool], expected: str, each: str) -> _Rule:
    """An object whose values all pass ``item``."""

    def rule(path: str, value: Any) -> _Problem:
        if not isinstance(value, dict):
            return path, value, expected
        for key, entry in value.items():
            if not item(entry):
                return f"{path}.{key}", entry, each
        return None

    return rule


def _listing(item: Callable[[Any], bool], expected: str, each: str, *, null: bool = False) -> _Rule:
    """A list whose items all pass ``item`` (or null, if ``null``)."""

    def rule(path: str, value: Any) -> _Problem:
        if value is None and null:
            return None
        if not isinstance(value, list):
            return path, value, expected
        for index, entry in enumerate(value):
            if not item(entry):
                return f"{path}[{index}]", entry, each
        return None

    return rule


def _optional_number(value: Any) -> bool:
    return value is None or _is_number(value)


def _json_value(value: Any) -> bool:
    return value is None or isinstance(value, dict | list | str | bool | int | float)


_STR = _typed(lambda v: isinstance(v, str), "a string")
_OBJECT = _typed(lambda v: isinstance(v, dict), "an object")
_NUMBER_OR_NULL = _typed(_optional_number, "a number or null")
_ANY_JSON = _typed(_json_value, "a JSON value")

_CHECK_FIELDS: dict[str, _Rule] = {
    "name": _STR,
    "status": _STR,
    "reason": _STR,
    "cause": _STR,
    "remedy": _STR,
    "evidence": _typed(lambda v: v is None or isinstance(v, dict), "an object or null"),
    "notes": _listing(lambda v: isinstance(v, str), "a list of strings", "a string"),
    "seconds": _NUMBER_OR_NULL,
}

_VERDICT_FIELDS: dict[str, _Rule] = {
    "claim": _STR,
    "status": _STR,
    "statement": _STR,
    "evidence": _STR,
    "measured": _NUMBER_OR_NULL,
    "interval": _listing(
        _optional_number, "a list [low, high] or null", "a number or null", null=True
    ),
    "reference": _NUMBER_OR_NULL,
    "threshold": _mapping(_optional_number, "an object of numbers", "a number or null"),
}


def _check_entry(path: str, value: Any) -> _Problem:
    return _record(path, value, _CHECK_FIELDS, CheckResult, "a check result (an object)")


def _verdict(path: str, value: Any) -> _Problem:
    return _record(path, value, _VERDICT_FIELDS, Verdict, "a verdict (an object)")


def _checks(path: str, value: Any) -> _Problem:
    if not isinstance(value, dict):
        return path, value, "an object of check results"
    for name, entry in value.items():
        problem = _check_entry(f"{path}.{name}", entry)
        if problem is not None:
            return problem
    return None


def _verdicts(path: str, value: Any) -> _Problem:
    if not isinstance(value, list):
        return path, value, "a list of verdicts"
    for index, entry in enumerate(value):
        problem = _verdict(f"{path}[{index}]", entry)
        if problem is not None:
            return problem
    return None


def _null_audit(path: str, value: Any) -> _Problem:
    if value is None:
        return None
    if not isinstance(value, dict):
        return path, value, "an object (the null audit) or null"
    for name in ("stands_in", "yardstick", "verdicts"):
        if name not in value:
            return f"{path}.{name}", None, "present"
    if not isinstance(value["stands_in"], str):
        return f"{path}.stands_in", value["stands_in"], "a string"
    if not isinstance(value["yardstick"], list) or not all(
        isinstance(role, str) for role in value["yardstick"]
    ):
        return f"{path}.yardstick", value["yardstick"], "a list of strings"
    return _verdicts(f"{path}.verdicts", value["verdicts"])


_TOP_FIELDS: dict[str, _Rule] = {
    "config": _OBJECT,
    "dataset": _OBJECT,
    "request": _OBJECT,
    "models": _mapping(
        lambda v: isinstance(v, dict), "an object of model descriptions", "an object"
    ),
    "checks": _checks,
    "verdicts": _verdicts,
    "timings": _mapping(_optional_number, "an object of seconds", "a number or null"),
    "versions": _mapping(
        lambda v: v is None or isinstance(v, str), "an object of strings", "a string"
    ),
    "created": _STR,
    "notes": _listing(lambda v: isinstance(v, str), "a list of strings", "a string"),
    "null_audit": _null_audit,
    "schema_version": _typed(_is_number, "an integer"),
}


def _required(cls: type) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def _record(path: str, value: Any, rules: dict[str, _Rule], cls: type, what: str) -> _Problem:
    """Check an object against ``rules``; ``cls``'s fields without a default are required."""
    if not isinstance(value, dict):
        return path, value, what
    # a missing required field first: it is the likelier damage than a wrong type
    prefix = f"{path}." if path else ""
    for name in _required(cls):
        if name not in value:
            return f"{prefix}{name}", _MISSING, ""
    for name, entry in value.items():
        problem = rules.get(name, _ANY_JSON)(f"{prefix}{name}", entry)
        if problem is not None:
            return problem
    return None


_MISSING = object()  # stands for the value of a required field that is absent


def validate_result_dict(data: Any, *, schema_version: int, result_type: type) -> None:
    """Check the whole of a parsed ``result.json``; the first wrong field is named.

    A document of another schema version is left to the caller's version check.

    Raises:
        ConfigError: ``"`checks` must be an object of check results; got 3. ..."``, or
            ``"`verdicts` is missing ..."``.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"an audit result must be a JSON object; got {_shown(data)}. {RESULT_FIX}"
        )
    if data.get("schema_version") != schema_version:
        return
    problem = _record("", data, _TOP_FIELDS, result_type, "")
    if problem is None:
        return
    path, value, expected = problem
    if value is _MISSING:
        raise ConfigError(f"`{path}` is missing from the audit result. {RESULT_FIX}")
    raise ConfigError(f"`{path}` must be {expected}; got {_shown(value)}. {RESULT_FIX}")
