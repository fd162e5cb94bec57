"""The plan of an audit: the cost before the cost (``unlearn-audit audit --plan``).

:func:`unlearn_audit.pipeline.plan_audit` fills an :class:`AuditPlan` without training or
running anything: which references and shadow models the audit needs and which of them the store
already holds, the one forward pass per (model, view) over the union of the samples the checks
read (and which outputs are stored), and which checks will run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from unlearn_audit.executors import TrainingJob
    from unlearn_audit.models.checkpoints import LoadedModel


@dataclass(frozen=True)
class PlannedTraining:
    """A model the audit needs: its role, seed, training samples, whether it is stored (and
    then the stored model, not part of the plan's JSON)."""

    role: str
    seed: int
    samples: int
    stored: bool
    model: LoadedModel | None = field(default=None, compare=False, repr=False)
    job: TrainingJob | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PlannedPass:
    """One pass: a model (by role) through a view over ``samples`` samples; ``stored`` when
    its results are in the store (``None`` while the model itself is still to train).
    ``kind``: ``outputs`` (the forward pass every check reads) or ``grad-cam`` (a forward and
    backward pass for saliency maps)."""

    role: str
    view: str
    samples: int
    stored: bool | None
    kind: str = "outputs"
    ids: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class AuditPlan:
    """What an audit will do, before it does it.

    Attributes:
        training: References and shadow models the audit needs (given ones are not listed).
        passes: The forward passes, one per (model, view).
        checks: Check name -> ``""`` when it will run, else why it will be N/A.
        fine_tunes: Relearn fine-tuning probes the check asks for (relearn and feature
            relearn, for the unlearned model and the first reference; the reference's
            curves are read from the store when an earlier audit stored them).
        unjudged: Claim -> why it applies but will not be judged with these settings (the
            audit's outcome will then be ``PARTIAL``).
    """

    training: list[PlannedTraining] = field(default_factory=list)
    passes: list[PlannedPass] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)
    fine_tunes: int = 0
    unjudged: dict[str, str] = field(default_factory=dict)

    @property
    def to_train(self) -> list[PlannedTraining]:
        return [job for job in self.training if not job.stored]

    @property
    def to_forward(self) -> int:
        """Samples that will go through a model (passes whose outputs are not stored)."""
        return sum(p.samples for p in self.passes if p.kind == "outputs" and not p.stored)

    @property
    def cams_to_compute(self) -> int:
        """Samples whose Grad-CAM maps will be computed (not stored)."""
        return sum(p.samples for p in self.passes if p.kind == "grad-cam" and not p.stored)

    def describe(self) -> str:
        """The plan in plain lines, for the terminal."""
        stored = len(self.training) - len(self.to_train)
        lines = [
            f"training: {len(self.to_train)} models to train, {stored} in the store",
        ]
        for job in self.training:
            state = "stored" if job.stored else "to train"
            lines.append(f"  {job.role:10} seed {job.seed:<6} {job.samples:7d} samples  {state}")
        for kind, title, what in (
            ("outputs", "forward passes", "to forward"),
            ("grad-cam", "Grad-CAM passes", "to compute"),
        ):
            passes = [p for p in self.passes if p.kind == kind]
            if not passes and kind != "outputs":
                continue
            todo = sum(p.samples for p in passes if not p.stored)
            in_store = sum(p.samples for p in passes if p.stored)
            lines.append(
                f"{title}: {len(passes)} (one per model and view), "
                f"{todo} samples {what}, {in_store} from the store"
            )
            for p in passes:
                state = {True: "stored", False: "to run", None: "after training"}[p.stored]
                lines.append(f"  {p.role:12} {p.view:8} {p.samples:7d} samples  {state}")
        lines.append(f"relearn fine-tuning probes: {self.fine_tunes}")
        runs = [name for name, why in self.checks.items() if not why]
        lines.append(f"checks that run: {', '.join(runs) or 'none'}")
        lines += [f"  N/A {name}: {why}" for name, why in self.checks.items() if why]
        if self.unjudged:
            lines.append(
                f"claims that apply but will not be judged (outcome PARTIAL): "
                f"{', '.join(self.unjudged)}"
            )
            lines += [f"  {claim}: {why}" for claim, why in self.unjudged.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "training": [_plain(job, "model", "job") for job in self.training],
            "passes": [_plain(p, "ids") for p in self.passes],
            "checks": dict(self.checks),
            "fine_tunes": self.fine_tunes,
            "unjudged": dict(self.unjudged),
            "to_train": len(self.to_train),
            "to_forward": self.to_forward,
            "cams_to_compute": self.cams_to_compute,
        }


def _plain(item: Any, *leave_out: str) -> dict[str, Any]:
    """The fields of a plan row, without those that hold a model, a job or an array."""
    return {f.name: getattr(item, f.name) for f in fields(item) if f.name not in leave_out}
