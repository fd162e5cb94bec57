"""AuditResult: the source of truth of an audit, serialised to JSON with a schema version."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unlearn_audit._io import write_atomic
from unlearn_audit.checks.base import CheckResult
from unlearn_audit.errors import ConfigError

SCHEMA_VERSION = 1


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@dataclass
class Verdict:
    """The policy's judgement of one claim.

    Attributes:
        claim: Claim name (``forgotten``, ``utility_kept``, ...).
        status: ``PASS``, ``WARN``, ``FAIL`` or ``N/A``.
        statement: The claim in plain words.
        evidence: What was measured and compared, in words.
        measured: The measured value (or ``None``).
        interval: Its 95% interval ``[low, high]`` (or ``None``).
        reference: The reference value it is compared with (or ``None``).
        threshold: The policy thresholds used.
    """

    claim: str
    status: str
    statement: str
    evidence: str = ""
    measured: float | None = None
    interval: list[float | None] | None = None
    reference: float | None = None
    threshold: dict[str, float] = field(default_factory=dict)


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
    schema_version: int = SCHEMA_VERSION

    @property
    def passed(self) -> bool:
        """No claim failed."""
        return all(v.status != "FAIL" for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = {name: check.to_dict() for name, check in self.checks.items()}
        return data

    def to_json(self) -> str:
        """JSON text; NaN and infinite values (an undefined rate, a threshold above every
        score) become ``null``, as JSON has no such numbers."""
        return json.dumps(_finite(self.to_dict()), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResult:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"audit result has schema version {version!r}; this unlearn-audit reads version "
                f"{SCHEMA_VERSION}. Re-run the audit with this version."
            )
        values = dict(data)
        values["checks"] = {n: CheckResult.from_dict(c) for n, c in data["checks"].items()}
        values["verdicts"] = [Verdict(**v) for v in data["verdicts"]]
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
