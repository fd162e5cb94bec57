"""What a check is: a registered plug-in that declares its needs and returns a CheckResult."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from unlearn_audit.functional.stats import proportion
from unlearn_audit.registry import Registry

if TYPE_CHECKING:
    from unlearn_audit.audit import AuditContext

Status = Literal["ok", "na"]
# Why a check (or a claim) has no result. ``not_run``: the user chose so (profile, --checks);
# ``not_applicable``: the request has nothing to judge (no trigger, a sample request for a
# class-level claim); ``unjudgeable``: it applies, but these models or data do not allow it
# (a TorchScript file hides its features, an architecture is unknown). Only the last makes an
# audit inconclusive.
Cause = Literal["not_run", "not_applicable", "unjudgeable"]
CAUSES: tuple[str, ...] = ("not_run", "not_applicable", "unjudgeable")


@dataclass(frozen=True)
class Needs:
    """What a check needs before it can run; the audit plans and builds these first.

    Attributes:
        references: Models retrained without the forget set (required: N/A without them).
        compare: Uses references as a yardstick when there are any (built if the profile
            trains), but runs without them.
        shadows: The shadow bank (membership attacks).
        training: Trains or fine-tunes models itself (relearn).
        features: Penultimate features of the models.
        conv: A convolution layer (Grad-CAM, class-channel relevance).
        trigger: A backdoor trigger.
        gradients: Backpropagates through the models (saliency).
    """

    references: bool = False
    compare: bool = False
    shadows: bool = False
    training: bool = False
    features: bool = False
    conv: bool = False
    trigger: bool = False
    gradients: bool = False


@dataclass
class CheckResult:
    """The evidence one check gathered.

    Attributes:
        name: The check's registry name.
        status: ``"ok"``, or ``"na"`` when its inputs are missing (``reason`` says which).
        reason: Why the check is N/A (empty when ok).
        cause: When N/A, which kind (see :data:`Cause`); empty when ok.
        remedy: When N/A for want of something the user can give, how to give it.
        metrics: JSON-able values: per quantity and model role, ``{"value", "low", "high"}``.
        per_sample: JSON-able per-sample values (ids with scores).
        figures: JSON-able data for the report's figures.
        notes: Caveats the reader must know.
        seconds: Wall time of the check.
    """

    name: str
    status: Status = "ok"
    reason: str = ""
    cause: str = ""
    remedy: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    per_sample: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def not_applicable(
        cls, name: str, reason: str, *, cause: Cause = "unjudgeable", remedy: str = ""
    ) -> CheckResult:
        """An N/A result; the default cause is the loud one (the claim becomes inconclusive)."""
        return cls(name=name, status="na", reason=reason, cause=cause, remedy=remedy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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


def reference_role(index: int) -> str:
    """Role name of the ``index``-th reference: ``reference``, ``reference_2``, ..."""
    return "reference" if index == 0 else f"reference_{index + 1}"


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
