"""What a check is: a registered plug-in that declares its needs and its evidence type, and
returns a CheckResult holding that evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from unlearn_audit.evidence import (
    CAUSES,
    CamRead,
    Cause,
    CheckResult,
    Estimate,
    Evidence,
    Needs,
    RawEvidence,
    Status,
    reference_role,
)
from unlearn_audit.registry import Registry

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
__all__ = [
    "CAUSES",
    "CHECKS",
    "CamRead",
    "Cause",
    "Check",
    "CheckResult",
    "Needs",
    "Status",
    "reference_role",
    "register_check",
]


class Check:
    """Base of every check: subclasses set ``name``, ``description``, ``needs``, ``evidence``
    (its :class:`~unlearn_audit.evidence.Evidence` dataclass) and ``run``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs()
    evidence: ClassVar[type[Evidence]] = RawEvidence

    def run(self, ctx: AuditContext) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def cam_reads(self, ctx: AuditContext) -> list[CamRead]:
        """The Grad-CAM maps ``run`` will read through ``ctx.collector.grad_cams`` (they
        depend on the request and the seed, so they are declared per audit, unlike
        ``needs.reads``); the audit's plan lists them."""
        return []


CHECKS: Registry[type[Check]] = Registry("check", group="unlearn_audit.checks")


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator: register a check under its ``name``."""
    CHECKS.register(cls.name, cls)
    return cls


def rate(flags: np.ndarray) -> Estimate:
    """Share of ``True`` in ``flags`` with its Wilson interval and counts."""
    from unlearn_audit.functional.stats import proportion

    share = proportion(int(np.sum(flags)), int(np.size(flags)))
    estimate = Estimate.of(share.value, share.low, share.high)
    return Estimate(estimate.value, estimate.low, estimate.high, share.successes, share.total)
