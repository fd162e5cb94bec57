"""The evidence types every layer shares: what a check needs (:class:`Needs`), what it found
(:class:`CheckResult`), and the policy's judgement of a claim (:class:`Verdict`).

A leaf: it imports nothing of the toolkit, so checks, the policy, results and reports all
depend on it and never on each other's internals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

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


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of dataclass ``cls`` (newer files may hold more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Verdict:
    """The policy's judgement of one claim.

    Attributes:
        claim: Claim name (``forgotten``, ``utility_kept``, ...).
        status: ``PASS``, ``WARN``, ``FAIL``, ``N/A`` (not run by the user's choice, or
            nothing to judge) or ``INCONCLUSIVE`` (it applies, but these models could not be
            judged: see ``remedy``).
        statement: The claim in plain words.
        evidence: What was measured and compared, in words.
        measured: The measured value (or ``None``).
        interval: Its 95% interval ``[low, high]`` (or ``None``).
        reference: The reference value it is compared with (or ``None``).
        threshold: The policy thresholds used.
        cause: For N/A and INCONCLUSIVE: ``not_run``, ``not_applicable`` or ``unjudgeable``.
        remedy: For INCONCLUSIVE (and some N/A): what to give so the claim can be judged.
    """

    claim: str
    status: str
    statement: str
    evidence: str = ""
    measured: float | None = None
    interval: list[float | None] | None = None
    reference: float | None = None
    threshold: dict[str, float] = field(default_factory=dict)
    cause: str = ""
    remedy: str = ""


def reference_role(index: int) -> str:
    """Role name of the ``index``-th reference: ``reference``, ``reference_2``, ..."""
    return "reference" if index == 0 else f"reference_{index + 1}"
