"""AuditResult: the source of truth of an audit, serialised to JSON with a schema version."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from unlearn_audit._codec import CodecError
from unlearn_audit._io import write_atomic
from unlearn_audit._result_schema import RESULT_FIX, validate_result_dict
from unlearn_audit.errors import ConfigError
from unlearn_audit.evidence import CheckResult, Verdict, known_fields

__all__ = [
    "DEFAULT_RECIPE_NOTE",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "AuditResult",
    "CheckResult",
    "NullAudit",
    "Verdict",
]

SCHEMA_VERSION = 2  # 2: typed evidence per check (was metrics, per_sample, figures)


def finite_json(value: Any) -> Any:
    """``value`` (JSON-like) with NaN and infinite floats as ``None``, as JSON has them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    return value


OUTCOMES = ("PASS", "WARN", "INCONCLUSIVE", "FAIL")
# how every output begins the note that references were trained with a guessed recipe
DEFAULT_RECIPE_NOTE = "references and shadow models were trained with the default recipe"


@dataclass
class NullAudit:
    """The audit's verdicts on a true retrain: the first reference judged as if it were the
    unlearned model, against the other references and the same shadow models.

    A claim a true retrain does not PASS cannot tell a good unlearning from a bad one in this
    setting (too few samples, references that disagree, shadows unlike the models): its real
    verdict is uncalibrated.

    Attributes:
        stands_in: The role judged as the unlearned model (``reference``).
        yardstick: The roles it was compared with (``reference_2``, ...).
        verdicts: Its verdicts, claim by claim.
    """

    stands_in: str
    yardstick: list[str]
    verdicts: list[Verdict]

    def status(self, claim: str) -> str | None:
        """The null audit's verdict on ``claim`` (``None`` when it judged no such claim)."""
        return next((v.status for v in self.verdicts if v.claim == claim), None)

    def summary(self, claim: str) -> str:
        """``claim (WARN: 0.585 vs 0.438)``: its verdict on ``claim`` with the stand-in's value
        and the yardstick's, the gap a true retrain shows in this setting."""
        verdict = next((v for v in self.verdicts if v.claim == claim), None)
        if verdict is None:
            return f"{claim} (not judged)"
        if verdict.measured is None or verdict.reference is None:
            return f"{claim} ({verdict.status})"
        return f"{claim} ({verdict.status}: {verdict.measured:.3f} vs {verdict.reference:.3f})"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NullAudit:
        values = known_fields(cls, data)
        values["verdicts"] = [Verdict(**known_fields(Verdict, v)) for v in data["verdicts"]]
        return cls(**values)


# a judged verdict (not N/A, not inconclusive) the null audit must PASS to be calibrated
_JUDGED = ("PASS", "WARN", "FAIL")


@dataclass
class AuditResult:
    """Everything an audit found, JSON-serialisable; reports are rendered from it alone."""

    config: dict[str, Any]
    dataset: dict[str, Any]
    request: dict[str, Any]
    models: dict[str, Any]
    checks: dict[str, CheckResult]
    verdicts: list[Verdict]
    timings: dict[str, float]
    versions: dict[str, str]
    created: str
    notes: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    limitations: list[str] = field(default_factory=list)
    null_audit: NullAudit | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def outcome(self) -> str:
        """``FAIL`` when a claim failed; else ``INCONCLUSIVE`` when an applicable claim could
        not be judged from these models; else ``PARTIAL`` when an applicable claim was not
        judged because the audit was set not to gather its evidence (``--profile quick``,
        ``--checks``); else ``WARN`` when one warned; else ``PASS``. Absence of evidence is
        never a pass."""
        statuses = {v.status for v in self.verdicts}
        for outcome in ("FAIL", "INCONCLUSIVE"):
            if outcome in statuses:
                return outcome
        if self.unjudged or all(v.status == "N/A" for v in self.verdicts):
            return "PARTIAL"
        return "WARN" if "WARN" in statuses else "PASS"

    @property
    def passed(self) -> bool:
        """Every claim that applies was judged, and none failed (warnings pass)."""
        return self.outcome in ("PASS", "WARN")

    @property
    def inconclusive(self) -> list[Verdict]:
        """The claims that apply but could not be judged from these models."""
        return [v for v in self.verdicts if v.status == "INCONCLUSIVE"]

    @property
    def unjudged(self) -> list[Verdict]:
        """The claims that apply to the request but were not judged, because the audit was set
        not to gather their evidence (a profile that trains no references or shadows, a
        subset of checks): N/A by the audit's settings, not by the request."""
        return [v for v in self.verdicts if v.status == "N/A" and v.cause == "not_run"]

    @property
    def identical(self) -> bool:
        """The unlearned model's weights are the original's (same fingerprint)."""
        models = self.models
        return bool(
            "unlearned" in models
            and "original" in models
            and models["unlearned"].get("fingerprint") == models["original"].get("fingerprint")
        )

    @property
    def recipe_note(self) -> str | None:
        """The note that references and shadows were trained with the default recipe."""
        return next((n for n in self.notes if n.startswith(DEFAULT_RECIPE_NOTE)), None)

    @property
    def uncalibrated(self) -> list[str]:
        """Claims judged here whose null audit (a true retrain judged the same way) did not
        PASS: in this setting their verdict cannot tell good unlearning from bad."""
        if self.null_audit is None:
            return []
        return [
            v.claim
            for v in self.verdicts
            if v.status in _JUDGED and self.null_audit.status(v.claim) not in (None, "PASS")
        ]

    def headline(self) -> list[str]:
        """What a reader must see before any table: identical models, the original's weights kept
        whole inside the unlearned one, an inconclusive audit, uncalibrated claims."""
        lines = []
        if self.identical:
            lines.append(
                "The unlearned model is identical to the original: its weights and code have the "
                f"same fingerprint ({self.models['unlearned']['fingerprint']}), so nothing was "
                "unlearned."
            )
        kept = self.models.get("unlearned", {}).get("original_tensors_kept")
        if not self.identical and kept and kept[1] and kept[0] == kept[1]:
            lines.append(
                f"The unlearned model holds all {kept[1]} of the original's weight tensors "
                "unchanged: it differs from the original only by what was added around them "
                "(a wrapper, a mask, a hook), so whatever it forgot, it forgot at its outputs, "
                "and the original's weights, with all they learned, are still in it."
            )
        for verdict in self.inconclusive:
            line = f"INCONCLUSIVE: {verdict.claim} could not be judged: {verdict.evidence}."
            if verdict.remedy:
                line += f" Remedy: {verdict.remedy}."
            lines.append(line)
        if self.unjudged:
            skipped = "; ".join(f"{v.claim} ({v.evidence})" for v in self.unjudged)
            judged = [v.claim for v in self.verdicts if v.status in ("PASS", "WARN", "FAIL")]
            lines.append(
                f"PARTIAL: {len(self.unjudged)} of the claims that apply "
                f"{'was' if len(self.unjudged) == 1 else 'were'} not judged, by this "
                f"audit's settings: {skipped}. Only {', '.join(judged) or 'no claim'} "
                f"{'was' if len(judged) == 1 else 'were'} judged, so this audit does not show "
                "that the data was forgotten. Remedy: the standard profile (the default; it "
                "trains references and shadow models), or give them (--reference, --shadow), "
                "and every check."
            )
        if self.uncalibrated:
            assert self.null_audit is not None
            statuses = ", ".join(self.null_audit.summary(claim) for claim in self.uncalibrated)
            lines.append(
                f"UNCALIBRATED: judged the same way, a true retrain ({self.null_audit.stands_in} "
                f"against {', '.join(self.null_audit.yardstick)}) does not pass {statuses}; "
                "in this setting those verdicts cannot tell good unlearning from bad (two "
                "retrains differ by that much here). Remedy: more references (--references), "
                "more shadow models, or a larger forget set."
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, checks={}))
        data["checks"] = {name: check.to_dict() for name, check in self.checks.items()}
        return data

    def to_json(self) -> str:
        """JSON text; NaN and infinite values (an undefined rate, a threshold above every
        score) become ``null``, as JSON has no such numbers."""
        return json.dumps(finite_json(self.to_dict()), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResult:
        # names the first wrong field instead of a deep AttributeError
        validate_result_dict(data, schema_version=SCHEMA_VERSION, result_type=cls)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"audit result has schema version {version!r}; this unlearn-audit reads version "
                f"{SCHEMA_VERSION}. Re-run the audit with this version."
            )
        from unlearn_audit.checks import evidence_type

        values = known_fields(cls, data)
        try:
            values["checks"] = {
                name: CheckResult.from_dict(entry, evidence_type(name), f"checks.{name}")
                for name, entry in data["checks"].items()
            }
        except CodecError as exc:
            raise ConfigError(f"{exc} {RESULT_FIX}") from None
        values["verdicts"] = [Verdict(**known_fields(Verdict, v)) for v in data["verdicts"]]
        null = data.get("null_audit")
        if null is not None:
            try:
                values["null_audit"] = NullAudit.from_dict(null)
            except (KeyError, TypeError) as exc:
                raise ConfigError(f"`null_audit` is malformed ({exc}). {RESULT_FIX}") from None
        return cls(**values)

    def to_dict_json(self) -> dict[str, Any]:
        """:meth:`to_dict` as it reads back from JSON (non-finite numbers as ``None``)."""
        return json.loads(self.to_json())

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically."""
        text = self.to_json()
        return write_atomic(path, lambda tmp: tmp.write_text(text))

    @classmethod
    def load(cls, path: str | Path) -> AuditResult:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"audit result {str(path)!r} does not exist.") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not an audit result ({exc}).") from None
        return cls.from_dict(data)


def unjudged_claims(results: Iterable[AuditResult]) -> list[str]:
    """The claims that some of ``results`` left unjudged by their settings, in policy order."""
    return list(dict.fromkeys(v.claim for result in results for v in result.unjudged))
