"""The one parser of ``--hp KEY=VALUE`` pairs, shared by the CLI and the bundled methods.

The values stay strings; each method converts them to its defaults' types when it checks them
(``methods.check_hyperparameters``).
"""

from __future__ import annotations

from collections.abc import Iterable

from unlearn_audit._validation import fail
from unlearn_audit.errors import ConfigError


def parse_hyperparameters(hp: Iterable[str] | None) -> dict[str, str]:
    """Parse ``key=value`` strings into a dict of strings (converted later by type).

    Dashes in keys become underscores, so ``batch-size=64`` names ``batch_size``; spaces around
    keys and values are dropped, and a value may hold ``=`` (``note=a=b``).

    Args:
        hp: The ``key=value`` strings (the CLI's ``--hp``); ``None`` gives ``{}``.

    Raises:
        ConfigError: A pair without ``=``, with an empty key, or a key given twice.
    """
    parsed: dict[str, str] = {}
    for pair in hp or ():
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise fail("hp", "key=value, e.g. lr=0.01", pair)
        if key in parsed:
            raise ConfigError(f"`hp` gives {key!r} twice; give each hyperparameter once.")
        parsed[key] = value.strip()
    return parsed
