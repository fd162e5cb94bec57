"""What a check may read during an audit: the :class:`AuditContext`, and the settings and
models it holds (:class:`AuditConfig`, :class:`ShadowBank`, :class:`Missing`).

A leaf below the checks: checks import it (for types), it imports no check and not the
pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from unlearn_audit._validation import check_choice, check_positive_int
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.data.triggers import Trigger
from unlearn_audit.evidence import Cause, reference_role
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.outputs import OutputCollector, Outputs, View
from unlearn_audit.recipe import Recipe
from unlearn_audit.store import Store

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"train": False, "references": 0, "shadows": 0, "per_sample": False},
    "standard": {"train": True, "references": 2, "shadows": 4, "per_sample": False},
    "full": {"train": True, "references": 3, "shadows": 8, "per_sample": True},
}


@dataclass(frozen=True)
class AuditConfig:
    """Options of one audit (every one recorded in the result).

    Attributes:
        profile: ``quick`` (trains nothing), ``standard`` (default) or ``full``.
        checks: Names of the checks to run; default every registered check.
        seed: Seed of everything the audit draws or trains (references use ``seed + i``,
            passing over the original's own training seed and a seed whose retrain is the
            unlearned model itself).
        num_references: References to train when none are given (profile default).
        num_shadows: Shadow models (profile default).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: Inference batch size.
        per_sample: Keep per-sample values for every forget sample (``full`` profile).
        null_audit: With two or more references, also judge the first as if it were the
            unlearned model, against the others (see :func:`unlearn_audit.pipeline.audit`).
    """

    profile: str = "standard"
    checks: tuple[str, ...] | None = None
    seed: int = 0
    num_references: int | None = None
    num_shadows: int | None = None
    device: str = "auto"
    batch_size: int = 512
    per_sample: bool | None = None
    null_audit: bool = True

    def __post_init__(self) -> None:
        check_choice(self.profile, "profile", tuple(PROFILES))
        if self.checks is not None:  # the names are checked against the registry by the pipeline
            object.__setattr__(self, "checks", tuple(self.checks))
        defaults = PROFILES[self.profile]
        for name, key in (("num_references", "references"), ("num_shadows", "shadows")):
            if getattr(self, name) is None:
                object.__setattr__(self, name, defaults[key])
            check_positive_int(getattr(self, name), name, minimum=0)
        if self.per_sample is None:
            object.__setattr__(self, "per_sample", defaults["per_sample"])

    @property
    def trains(self) -> bool:
        return bool(PROFILES[self.profile]["train"])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = list(self.checks) if self.checks is not None else None
        return data


@dataclass
class ShadowBank:
    """Shadow models of the original's architecture and recipe, each trained on a random draw
    from the population (``in_ids[k]``, see :func:`shadow_pool`); the rest of the population is
    its "out" data.

    Attributes:
        models: The shadow models.
        in_ids: Each one's member ids (within the population).
        given: True when the user gave them (nothing was trained for them).
        seeds: Each one's training seed, when the audit trained it.
    """

    models: list[LoadedModel]
    in_ids: list[np.ndarray]
    given: bool = False
    seeds: list[int] = field(default_factory=list)


def shadow_pool(splits: Splits, labels: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Where the shadow models of an audit draw their members from, and how many each takes.

    Shadows imitate the model whose "out" behaviour the attacks need (Shokri et al. 2017): on
    a random or id request the original, so each trains on as many samples as it had members;
    on a class request the retrained world, so the pool leaves out the forgotten classes (a
    shadow that learned them would be an "out" model of the original's world, and a true
    retrain would look unlike it) and each trains on as many samples as retain holds. The
    size is capped at half the pool, so that every pool sample is "out" for about half the
    shadows.

    Returns:
        ``(pool, size, wanted)``: the pool's ids, each shadow's member count, and the count it
        would have had without the cap (``size < wanted`` when capped).
    """
    pool = splits.population
    if splits.forget_classes:
        pool = pool[~np.isin(labels[pool], splits.forget_classes)]
        wanted = len(splits.retain)
    else:
        wanted = len(splits.members)
    return pool, min(wanted, len(pool) // 2), wanted


@dataclass(frozen=True)
class Missing:
    """Why something an audit needs (references, shadows) is not there, and what to do."""

    cause: Cause
    reason: str
    remedy: str = ""


@dataclass
class AuditContext:
    """Everything a check may read. Checks get outputs only through :meth:`outputs`."""

    dataset: Dataset
    splits: Splits
    original: LoadedModel
    unlearned: LoadedModel
    references: list[LoadedModel]
    shadows: ShadowBank | None
    trigger: Trigger | None
    config: AuditConfig
    collector: OutputCollector
    store: Store
    device: torch.device
    training_recipe: Recipe = field(default_factory=Recipe)
    recipe_source: str = "default"
    train_arch: tuple[str, dict[str, Any]] | None = None
    references_trained: bool = False
    missing: dict[str, Missing] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # the unlearned model is a retrain (the null audit's stand-in), so the references may
    # treat it as one: the membership attacks count it among their out models
    unlearned_is_retrain: bool = False

    def outputs(self, model: LoadedModel, split: str, view: View = "clean") -> Outputs:
        """Outputs of ``model`` on the split called ``split`` through ``view`` (cached)."""
        return self.collector.get(
            model, self.splits.get(split), self.splits.fingerprints[split], view
        )

    def kept(
        self,
        kind: str,
        models: list[LoadedModel],
        reads: list[tuple[str, View]],
        compute: Callable[[], dict[str, Any]],
        **depends: Any,
    ) -> dict[str, Any]:
        """``compute()``, a JSON-able result that depends on nothing but the outputs of
        ``models`` on ``reads`` (split, view) and on ``depends`` (settings, the code that
        computes it: JSON-able): kept in the store under ``kind`` when the unlearned model is
        not among ``models`` (the original's and the references' results do not change
        between audits of other unlearned models), computed otherwise. The key holds every
        output's own key (weights, data, ids, view, layers, collector code) and the seed."""
        if any(model is self.unlearned for model in models):
            return compute()
        parts = {
            "outputs": [
                self.collector.entry(model, self.splits.fingerprints[split], view)
                for model in models
                for split, view in reads
            ],
            "seed": self.config.seed,
            **depends,
        }
        return self.store.get_or_compute(kind, parts, compute)

    def roles(self) -> list[tuple[str, LoadedModel]]:
        """``(role, model)`` for original, unlearned and each reference (``reference``,
        ``reference_2``, ...)."""
        roles = [("original", self.original), ("unlearned", self.unlearned)]
        roles += [(reference_role(i), ref) for i, ref in enumerate(self.references)]
        return roles

    def recipe(self) -> Recipe:
        """The recipe references, shadows and probes are trained with: the one given, else the
        one the original records, else the default (see ``recipe_source``)."""
        return self.training_recipe

    def unreadable_reason(self, model: LoadedModel) -> str:
        """Why the layers of ``model`` cannot be read (empty when they can)."""
        if model.fingerprint in self.collector.unreadable:
            return self.collector.unreadable[model.fingerprint]
        return self.collector.layers_of(model)[1]

    @property
    def forget_triggered(self) -> bool:
        """The original learned the forget samples with the trigger and its target label (a
        backdoor planted through the forget set: ``train --backdoor``, or ``--trigger`` for a
        foreign original), unless it records a poisoned set other than this forget set."""
        from unlearn_audit._hashing import fingerprint_ids

        if self.trigger is None:
            return False
        poisoned = self.original.info.extra.get("poisoned")
        return not poisoned or poisoned.get("fingerprint") == fingerprint_ids(self.splits.forget)

    @property
    def is_class_request(self) -> bool:
        return self.splits.request.kind == "class"
