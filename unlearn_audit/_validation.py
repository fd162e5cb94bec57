"""``check_*`` validators for the public boundary.

Each returns the cleaned value or raises :class:`~unlearn_audit.errors.ConfigError` with one
message shape: "`{param}` must be {expected}; got {value!r}." plus the fix when one is known.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from unlearn_audit.errors import ConfigError


def fail(param: str, expected: str, value: Any, fix: str = "") -> ConfigError:
    """Build the standard error for ``param`` (returned, so callers write ``raise fail(...)``)."""
    message = f"`{param}` must be {expected}; got {value!r}."
    return ConfigError(f"{message} {fix}".strip())


def check_positive_int(value: Any, param: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise fail(param, f"an integer >= {minimum}", value)
    return int(value)


def check_nonnegative(
    value: Any, param: str, *, positive: bool = False, expected: str | None = None
) -> float:
    """Return ``value`` as a finite float >= 0 (> 0 when ``positive``).

    ``expected`` replaces the default wording of the error (e.g. to say what 0 means).
    """
    wording = expected or ("a finite number > 0" if positive else "a finite number >= 0")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(param, wording, value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise fail(param, wording, value)
    return float(value)


def check_fraction(value: Any, param: str, *, inclusive: bool = False) -> float:
    """Return ``value`` as a float in (0, 1) (or [0, 1] when ``inclusive``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise fail(param, "a number between 0 and 1", value) from None
    ok = 0.0 <= number <= 1.0 if inclusive else 0.0 < number < 1.0
    if not ok:
        bounds = "in [0, 1]" if inclusive else "strictly between 0 and 1"
        raise fail(param, f"a number {bounds}", value)
    return number


def check_choice(value: Any, param: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise fail(param, f"one of {', '.join(map(repr, choices))}", value)
    return str(value)


def check_file(value: Any, param: str, *, what: str = "file") -> Path:
    """Return ``value`` as a ``Path`` to an existing regular file."""
    path = Path(value).expanduser()
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"`{param}`: {what} {str(path)!r} {reason}; give the path to a {what}.")
    return path
