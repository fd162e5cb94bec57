"""What a check is: a registered plug-in that declares its needs and returns a CheckResult."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from unlearn_audit.evidence import CAUSES, Cause, CheckResult, Needs, Status, reference_role
from unlearn_audit.functional.stats import proportion
from unlearn_audit.registry import Registry

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
__all__ = [
    "CAUSES",
    "CHECKS",
    "Cause",
    "Check",
    "CheckResult",
    "Needs",
    "Status",
    "reference_role",
    "register_check",
]


class Check:
    """Base of every check: subclasses set ``name``, ``needs``, ``description`` and ``run``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs()

    def run(self, ctx: AuditContext) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError


CHECKS: Registry[type[Check]] = Registry("check", group="unlearn_audit.checks")


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator: register a check under its ``name``."""
    CHECKS.register(cls.name, cls)
    return cls


def rate(flags: np.ndarray) -> dict[str, Any]:
    """Share of ``True`` in ``flags`` with its Wilson interval and counts, in the JSON shape."""
    share = proportion(int(np.sum(flags)), int(np.size(flags)))
    return interval(share.value, share.low, share.high, count=share.successes, total=share.total)


def interval(value: float, low: float, high: float, **extra: Any) -> dict[str, Any]:
    """The JSON shape of an estimate with its 95% interval."""
    return {"value": _plain(value), "low": _plain(low), "high": _plain(high), **extra}


def _plain(value: float) -> float | None:
    number = float(value)
    return None if number != number else number  # NaN -> null in JSON
