"""The evidence types every layer shares: what a check needs (:class:`Needs`), what it found
(:class:`CheckResult`), and the policy's judgement of a claim (:class:`Verdict`).

Also the parts of typed evidence every check uses: an :class:`Estimate` with its interval, a
:class:`Gap` between the unlearned model and its yardstick (what the policy grades), a report
:class:`Table`, and the :class:`Evidence` base class.

A leaf: it imports nothing of the toolkit but the JSON codec and the errors, so checks, the
policy, results and reports all depend on it and never on each other's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from unlearn_audit._codec import CodecError, from_json, to_json

if TYPE_CHECKING:
    import numpy as np

Status = Literal["ok", "na"]
# Why a check (or a claim) has no result. ``not_run``: the user chose so (profile, --checks);
# ``not_applicable``: the request has nothing to judge (no trigger, a sample request for a
# class-level claim); ``unjudgeable``: it applies, but these models or data do not allow it
# (a TorchScript file hides its features, an architecture is unknown). Only the last makes an
# audit inconclusive.
Cause = Literal["not_run", "not_applicable", "unjudgeable"]
CAUSES: tuple[str, ...] = ("not_run", "not_applicable", "unjudgeable")


@dataclass(frozen=True)
class Read:
    """Outputs a check reads: of which models, on which split, through which view.

    Attributes:
        split: A split name (``forget``, ``retain``, ``test``, ``population``, ...), ``*`` for
            every split of the request, ``unseen_forget``: the unseen samples of the
            forgotten data (``test_forget_class`` for class requests, else ``test``), or
            ``unseen_retain``: those of the retained data (``test_retain_class``, else
            ``test``).
        view: ``clean``, a test-time augmentation (``hflip``, ``vflip``, ``crop90``) or
            ``trigger``.
        models: ``audited`` (original, unlearned, references), ``original`` alone, or
            ``shadows`` (the bank).
    """

    split: str
    view: str = "clean"
    models: Literal["audited", "original", "shadows"] = "audited"

    def splits(self, names: Sequence[str], request: str) -> list[str]:
        """The concrete split names this read covers, for a request of kind ``request``."""
        if self.split == "*":
            return list(names)
        if self.split == "unseen_forget":
            return ["test_forget_class" if request == "class" else "test"]
        if self.split == "unseen_retain":
            return ["test_retain_class" if request == "class" else "test"]
        return [self.split]


@dataclass(frozen=True, eq=False)
class CamRead:
    """Grad-CAM maps a check reads (they backpropagate, so they are not part of the outputs'
    pass): the samples, one target class per sample, the view, and the roles of the models.

    The audit plans them like outputs: computed once per (model, samples, targets, view), and
    kept in the store for the models that do not change between audits.
    """

    ids: np.ndarray
    targets: np.ndarray
    view: str = "clean"
    roles: tuple[str, ...] = ("original", "unlearned", "reference")


@dataclass(frozen=True)
class Needs:
    """What a check needs before it can run, as data the audit plans and builds from.

    Attributes:
        references: Models retrained without the forget set (required: N/A without them).
        compare: Uses references as a yardstick when there are any (built if the profile
            trains), but runs without them.
        shadows: The shadow bank (membership attacks).
        training: Trains or fine-tunes models itself (relearn).
        features: Penultimate features of the models (and channel means with ``conv``).
        conv: A convolution layer (Grad-CAM, class-channel relevance).
        trigger: A backdoor trigger.
        gradients: Backpropagates through the models (saliency).
        reads: The outputs it reads through the audit's one pass per model, split and view.
    """

    references: bool = False
    compare: bool = False
    shadows: bool = False
    training: bool = False
    features: bool = False
    conv: bool = False
    trigger: bool = False
    gradients: bool = False
    reads: tuple[Read, ...] = ()

    @classmethod
    def union(cls, needs: Iterable[Needs]) -> Needs:
        """What a set of checks needs together: any flag one needs, every read once."""
        flags: dict[str, bool] = {f.name: False for f in fields(cls) if f.name != "reads"}
        reads: dict[Read, None] = {}
        for need in needs:
            for name in flags:
                flags[name] = flags[name] or getattr(need, name)
            reads |= dict.fromkeys(need.reads)
        return cls(**flags, reads=tuple(reads))


@dataclass(frozen=True)
class Estimate:
    """A measured value with its 95% interval (``None`` where undefined: no samples, NaN).

    ``count`` and ``total`` are the counts behind a rate (``count`` of ``total``), when it is one.
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    count: int | None = None
    total: int | None = None

    @classmethod
    def of(cls, value: float, low: float | None = None, high: float | None = None) -> Estimate:
        """An estimate from plain numbers; NaN becomes ``None``."""
        return cls(_finite(value), _finite(low), _finite(high))

    @classmethod
    def pooled(cls, estimates: Sequence[Estimate]) -> Estimate:
        """Several models' estimates of one quantity (reference seeds): the mean value and the
        widest interval."""
        values = [e.value for e in estimates if e.value is not None]
        lows = [e.low for e in estimates if e.low is not None]
        highs = [e.high for e in estimates if e.high is not None]
        bounded = len(lows) == len(highs) == len(estimates)
        return cls(
            sum(values) / len(values) if values else None,
            min(lows) if bounded and lows else None,
            max(highs) if bounded and highs else None,
        )

    @property
    def bounded(self) -> bool:
        """Value and both interval ends are known."""
        return None not in (self.value, self.low, self.high)

    def text(self, digits: int = 3) -> str:
        """``0.912 [0.880, 0.940]`` (``—`` for unknown parts)."""
        if self.value is None:
            return "—"
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


@dataclass(frozen=True)
class Gap:
    """One quantity of the unlearned model against its yardstick, as the policy grades it.

    Attributes:
        quantity: What is measured, in words (``"forget-class test accuracy"``).
        measured: The audited model's estimate.
        yardstick: The yardstick's (the references' mean with their widest interval, or the
            original's).
        worse: Which side of the yardstick is worse: ``"above"``, ``"below"`` or
            ``"either"`` (both directions count: under- and over-forgetting).
        yardstick_name: ``"reference"`` or ``"original"`` (or ``"limit"`` for an absolute
            bound), for the evidence text.
        unresolved: Set when the sample cannot resolve the quantity at all (why).
        short: A short name among the claim's gaps (``"retain"``, ``"CKA"``), for tables.
    """

    quantity: str
    measured: Estimate
    yardstick: Estimate
    worse: Literal["above", "below", "either"] = "above"
    yardstick_name: str = "reference"
    unresolved: str = ""
    short: str = ""


@dataclass(frozen=True)
class Table:
    """A small table of the report: a title, a header row and rows of text cells."""

    title: str
    header: list[str]
    rows: list[list[str]]


class NoReference(Exception):
    """The evidence has no reference to compare with; the audit says why references are missing."""


class Unmeasurable(Exception):
    """A measure cannot be taken from this evidence.

    Args:
        reason: Why, in words.
        cause: ``"not_applicable"`` (nothing to judge) or ``"unjudgeable"``.
        remedy: What to give so that it can be taken.
    """

    def __init__(self, reason: str, cause: Cause = "unjudgeable", remedy: str = "") -> None:
        super().__init__(reason)
        self.reason, self.cause, self.remedy = reason, cause, remedy


class Evidence:
    """Base of a check's typed evidence: subclass it as a dataclass in the check's module.

    The fields are the check's numbers (estimates with intervals, per-role tables) and its
    figures' data; JSON goes both ways through the type hints (:func:`to_json`,
    :meth:`from_json`). The methods below are how the rest of the toolkit reads it, so that
    nothing outside the check's module spells its field names: the policy and the pytest
    helpers ask :meth:`gaps`, the report :meth:`tables` and :meth:`figures`, the comparison
    :meth:`key_numbers` and :meth:`comparison_figure`.
    """

    #: The measures :meth:`gaps` answers; a policy claim names one with ``measure = "..."``.
    MEASURES: ClassVar[tuple[str, ...]] = ()
    #: The measures judged against the original rather than a reference (a plan can then
    #: tell which claims an audit without references still judges).
    ORIGINAL_YARDSTICK: ClassVar[tuple[str, ...]] = ()
    #: The title of the check's section in the report.
    TITLE: ClassVar[str] = ""
    #: Optional Jinja source rendered in the check's section after its tables, with
    #: ``evidence`` (this object) in scope: for what a table cannot show.
    TEMPLATE: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        """The evidence as plain JSON values."""
        data = to_json(self)
        assert isinstance(data, dict)
        return data

    @classmethod
    def from_json(cls, data: Any, path: str = "evidence") -> Self:
        """Read evidence written by :meth:`to_json`; a wrong field raises ``CodecError``."""
        value = from_json(cls, data, path)
        assert isinstance(value, cls)
        return value

    def gaps(self, measure: str, request: str) -> list[Gap]:
        """How far the unlearned model is from its yardstick on ``measure``.

        Args:
            measure: One of :attr:`MEASURES`.
            request: The request's kind: ``"class"``, ``"random"`` or ``"ids"``.

        Raises:
            NoReference: The yardstick (a reference) is missing.
            Unmeasurable: The measure cannot be taken here (why, and the remedy).
        """
        known = ", ".join(self.MEASURES) or "none"
        raise Unmeasurable(
            f"{type(self).__name__} has no measure {measure!r} (it has: {known})", "unjudgeable"
        )

    def tables(self) -> list[Table]:
        """The report's tables of this evidence."""
        return []

    def figures(self) -> dict[str, Callable[[], Any]]:
        """The report's figures: short key -> a function that draws a matplotlib ``Figure``
        (so that the keys are known without drawing)."""
        return {}

    def key_numbers(self) -> dict[str, float | None]:
        """A few numbers of the unlearned model for the comparison table: label -> value."""
        return {}

    def summary(self) -> str:
        """One line a claim built on another check may quote as supporting evidence."""
        return ""

    def limitations(self) -> list[str]:
        """What this evidence cannot show, in plain words (the report's limitations)."""
        return []

    @classmethod
    def comparison_figure(cls, evidence: Mapping[str, Self]) -> Any:
        """A figure comparing several audits' evidence (name -> evidence), or ``None``."""
        return None


@dataclass
class RawEvidence(Evidence):
    """Evidence of a check this installation does not know (a plug-in that is not installed):
    kept as written, shown as a flat table, and judged by no claim."""

    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self.data))

    @classmethod
    def from_json(cls, data: Any, path: str = "evidence") -> Self:
        if not isinstance(data, dict):
            raise CodecError(path, data, "an object")
        return cls(data=dict(data))

    def tables(self) -> list[Table]:
        rows = [[key, _flat(value)] for key, value in _leaves(self.data)]
        return [Table("Values", ["quantity", "value"], rows)] if rows else []


def _leaves(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        found = []
        for key, value in data.items():
            found += _leaves(value, f"{prefix}{key} " if prefix or key else prefix)
        return found
    if isinstance(data, list) and len(data) > 8:
        return []  # figure data, not a value to read
    return [(prefix.strip(), data)]


def _flat(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else str(value)


@dataclass
class CheckResult:
    """The evidence one check gathered.

    Attributes:
        name: The check's registry name.
        status: ``"ok"``, or ``"na"`` when its inputs are missing (``reason`` says which).
        reason: Why the check is N/A (empty when ok).
        cause: When N/A, which kind (see :data:`Cause`); empty when ok.
        remedy: When N/A for want of something the user can give, how to give it.
        evidence: The check's typed evidence (``None`` when N/A).
        notes: Caveats the reader must know.
        seconds: Wall time of the check.
    """

    name: str
    status: Status = "ok"
    reason: str = ""
    cause: str = ""
    remedy: str = ""
    evidence: Evidence | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def not_applicable(
        cls, name: str, reason: str, *, cause: Cause = "unjudgeable", remedy: str = ""
    ) -> CheckResult:
        """An N/A result; the default cause is the loud one (the claim becomes inconclusive)."""
        return cls(name=name, status="na", reason=reason, cause=cause, remedy=remedy)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["notes"] = list(self.notes)
        data["evidence"] = None if self.evidence is None else self.evidence.to_json()
        return data

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], evidence_type: type[Evidence] = RawEvidence, path: str = ""
    ) -> CheckResult:
        """Read a check result; its evidence as ``evidence_type`` (by the check's name)."""
        values = known_fields(cls, data)
        if values.get("evidence") is not None:
            where = f"{path}.evidence" if path else "evidence"
            values["evidence"] = evidence_type.from_json(values["evidence"], where)
        return cls(**values)


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


def is_reference(role: str) -> bool:
    """``role`` names a reference (``reference``, ``reference_2``, ...)."""
    return role.startswith("reference")


def ordered_roles(roles: Iterable[str]) -> list[str]:
    """Roles in reading order: original, unlearned, reference, then the rest sorted."""
    present = list(roles)
    first = [r for r in ("original", "unlearned", "reference") if r in present]
    return first + sorted(r for r in present if r not in first)


def label(key: str) -> str:
    """A key as words in a table (``test_forget_class`` -> ``test forget class``)."""
    return key.replace("_", " ")
