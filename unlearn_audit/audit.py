"""The audit pipeline: plan what the checks need, build or load it, collect outputs once, run
the checks, judge the evidence against the policy.

    result = audit(original="o.safetensors", unlearned="u.safetensors",
                   dataset=load_dataset("digits"), request=ForgetRequest.classes(3))
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import unlearn_audit
from unlearn_audit._validation import check_choice, check_positive_int
from unlearn_audit.checks import CHECKS, CheckResult, Needs
from unlearn_audit.checks.base import reference_role
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.data.triggers import Trigger
from unlearn_audit.errors import ConfigError, UnlearnAuditError
from unlearn_audit.models.checkpoints import LoadedModel, check_model_fits, load_checkpoint
from unlearn_audit.outputs import OutputCollector, Outputs, View
from unlearn_audit.policy import Policy, judge
from unlearn_audit.results import AuditResult
from unlearn_audit.store import Store
from unlearn_audit.train import Recipe, default_recipe, resolve_device, train_classifier

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"train": False, "references": 0, "shadows": 0, "per_sample": False},
    "standard": {"train": True, "references": 1, "shadows": 4, "per_sample": False},
    "full": {"train": True, "references": 3, "shadows": 8, "per_sample": True},
}


@dataclass(frozen=True)
class AuditConfig:
    """Options of one audit (every one recorded in the result).

    Attributes:
        profile: ``quick`` (trains nothing), ``standard`` (default) or ``full``.
        checks: Names of the checks to run; default every registered check.
        seed: Seed of everything the audit draws or trains (references use ``seed + i``).
        num_references: References to train when none are given (profile default).
        num_shadows: Shadow models (profile default).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: Inference batch size.
        per_sample: Keep per-sample values for every forget sample (``full`` profile).
    """

    profile: str = "standard"
    checks: tuple[str, ...] | None = None
    seed: int = 0
    num_references: int | None = None
    num_shadows: int | None = None
    device: str = "auto"
    batch_size: int = 512
    per_sample: bool | None = None

    def __post_init__(self) -> None:
        check_choice(self.profile, "profile", tuple(PROFILES))
        if self.checks is not None:
            object.__setattr__(self, "checks", tuple(self.checks))
            for name in self.checks:
                CHECKS.get(name)
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
    """Shadow models of the original's architecture and recipe, each trained on a random half
    of the population (``in_ids[k]``); the rest of the population is its "out" data."""

    models: list[LoadedModel]
    in_ids: list[np.ndarray]


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
    references_trained: bool = False
    notes: list[str] = field(default_factory=list)

    def outputs(self, model: LoadedModel, split: str, view: View = "clean") -> Outputs:
        """Outputs of ``model`` on the split called ``split`` through ``view`` (cached)."""
        return self.collector.get(
            model, self.splits.get(split), self.splits.fingerprints[split], view
        )

    def roles(self) -> list[tuple[str, LoadedModel]]:
        """``(role, model)`` for original, unlearned and each reference (``reference``,
        ``reference_2``, ...)."""
        roles = [("original", self.original), ("unlearned", self.unlearned)]
        roles += [(reference_role(i), ref) for i, ref in enumerate(self.references)]
        return roles

    def recipe(self) -> Recipe:
        """The original's training recipe (or the default for its dataset and architecture)."""
        if self.original.info.recipe:
            return Recipe.from_dict(self.original.info.recipe)
        return default_recipe(self.dataset.name, self.original.info.arch or "")

    @property
    def is_class_request(self) -> bool:
        return self.splits.request.kind == "class"


def _load(model: LoadedModel | str | Path, dataset: Dataset, role: str) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return check_model_fits(model, dataset)
    if isinstance(model, str | Path):
        return load_checkpoint(model, dataset=dataset)
    raise ConfigError(
        f"`{role}` must be a checkpoint path or a LoadedModel; got {type(model).__name__}."
    )


def _check_models(original: LoadedModel, others: dict[str, LoadedModel], splits: Splits) -> None:
    for role, model in others.items():
        if model.info.num_classes != original.info.num_classes:
            raise ConfigError(
                f"the {role} model has {model.info.num_classes} classes but the original has "
                f"{original.info.num_classes}; audit models of the same task."
            )
        if model.info.input_shape != original.info.input_shape:
            raise ConfigError(
                f"the {role} model takes inputs {model.info.input_shape} but the original takes "
                f"{original.info.input_shape}; audit models of the same task."
            )
    trained_on = original.info.dataset_fingerprint
    if trained_on is not None and trained_on != splits.dataset_fingerprint:
        raise ConfigError(
            f"the original was trained on other data ({original.info.dataset}, fingerprint "
            f"{trained_on}) than the dataset given ({splits.dataset_fingerprint}); audit it on "
            "the data it was trained on."
        )
    recorded = original.info.members_fingerprint
    if recorded is not None and recorded != splits.members_fingerprint:
        raise ConfigError(
            f"the original was trained on other members (fingerprint {recorded}) than the "
            f"request assumes ({splits.members_fingerprint}); give the ids it was trained on "
            "with --member-ids."
        )


def _trigger(
    original: LoadedModel, trigger: Trigger | str | Path | None, dataset: Dataset
) -> Trigger | None:
    from unlearn_audit.data.triggers import load_trigger

    if isinstance(trigger, str | Path):
        trigger = load_trigger(trigger)
    if trigger is None and "trigger" in original.info.extra:
        trigger = Trigger.from_dict(original.info.extra["trigger"])
    if trigger is not None:
        trigger.check_fits(dataset.input_shape, dataset.num_classes)
    return trigger


def _needs(names: list[str]) -> Needs:
    merged: dict[str, bool] = {}
    for name in names:
        for key, value in asdict(CHECKS.get(name).needs).items():
            merged[key] = merged.get(key, False) or value
    return Needs(**merged)


def _train_like_original(
    ctx: AuditContext, member_ids: np.ndarray, *, role: str, seed: int, progress: bool
) -> LoadedModel:
    info = ctx.original.info
    if info.arch is None:
        raise ConfigError(
            f"cannot train {role} models like the original: it was loaded from TorchScript or a "
            "pickle, so its architecture is unknown; give references with --reference."
        )
    return train_classifier(
        ctx.dataset,
        arch=info.arch,
        arch_kwargs=info.arch_kwargs,
        recipe=ctx.recipe(),
        member_ids=member_ids,
        seed=seed,
        device=ctx.device,
        store=ctx.store,
        role=role,
        normalization=ctx.original.normalization,
        progress=progress,
    )


def _build_references(ctx: AuditContext, progress: bool) -> None:
    for i in range(ctx.config.num_references or 0):
        ctx.references.append(
            _train_like_original(
                ctx,
                ctx.splits.retain,
                role="reference",
                seed=ctx.config.seed + i,
                progress=progress,
            )
        )
    ctx.references_trained = True


def _build_shadows(ctx: AuditContext, progress: bool) -> None:
    population = ctx.splits.population
    rng = np.random.default_rng(ctx.config.seed)
    models, halves = [], []
    for k in range(ctx.config.num_shadows or 0):
        in_ids = np.sort(rng.choice(population, size=len(population) // 2, replace=False))
        halves.append(in_ids)
        models.append(
            _train_like_original(
                ctx, in_ids, role="shadow", seed=ctx.config.seed + 1000 + k, progress=progress
            )
        )
    ctx.shadows = ShadowBank(models=models, in_ids=halves)


def audit(
    *,
    original: LoadedModel | str | Path,
    unlearned: LoadedModel | str | Path,
    dataset: Dataset,
    request: ForgetRequest | Splits,
    references: list[LoadedModel | str | Path] | None = None,
    profile: str = "standard",
    trigger: Trigger | str | Path | None = None,
    checks: list[str] | tuple[str, ...] | None = None,
    policy: Policy | str | Path | None = None,
    store: Store | None = None,
    seed: int = 0,
    num_references: int | None = None,
    num_shadows: int | None = None,
    member_ids: np.ndarray | None = None,
    conv_layer: str | None = None,
    feature_layer: str | None = None,
    device: str = "auto",
    progress: bool = False,
    created: str | None = None,
) -> AuditResult:
    """Audit ``unlearned`` against ``original`` for a forget request.

    Args:
        original: The model before unlearning (checkpoint path or loaded model).
        unlearned: The model under audit.
        dataset: The data the models were trained on.
        request: What was to be forgotten, or ready-made splits.
        references: Models retrained without the forget set; trained when not given (except
            in the ``quick`` profile).
        profile: ``quick``, ``standard`` or ``full``.
        trigger: Backdoor trigger; default the one the original's checkpoint records.
        checks: Check names to run; default all.
        policy: Policy thresholds (a TOML path or a :class:`Policy`); default the built-in one.
        store: Where trained references and shadows are kept; default the user's store.
        seed: Seed of everything the audit trains or draws.
        num_references: References to train when none are given.
        num_shadows: Size of the shadow bank.
        member_ids: Members of the original when not its dataset's training part.
        conv_layer: Convolution for Grad-CAM and channel relevance (default the last).
        feature_layer: Module whose output is the features (default the last Linear's input).
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: Progress bars for training.
        created: Timestamp written into the result (default now, UTC).

    Returns:
        The :class:`AuditResult`; ``result.passed`` is False when a claim failed.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    config = AuditConfig(
        profile=profile,
        checks=tuple(checks) if checks is not None else None,
        seed=seed,
        num_references=num_references,
        num_shadows=num_shadows,
        device=device,
    )
    resolved_device = resolve_device(device)
    policy = policy if isinstance(policy, Policy) else Policy.load(policy)
    splits = (
        request
        if isinstance(request, Splits)
        else make_splits(dataset, request, member_ids=member_ids)
    )
    original_model = _load(original, dataset, "original")
    unlearned_model = _load(unlearned, dataset, "unlearned")
    given = [_load(r, dataset, "reference") for r in references or []]
    _check_models(
        original_model,
        {"unlearned": unlearned_model} | {reference_role(i): r for i, r in enumerate(given)},
        splits,
    )
    trigger_spec = _trigger(original_model, trigger, dataset)
    ctx = AuditContext(
        dataset=dataset,
        splits=splits,
        original=original_model,
        unlearned=unlearned_model,
        references=given,
        shadows=None,
        trigger=trigger_spec,
        config=config,
        collector=OutputCollector(
            dataset,
            batch_size=config.batch_size,
            device=resolved_device,
            trigger=trigger_spec,
            conv_layer=conv_layer,
            feature_layer=feature_layer,
        ),
        store=store if store is not None else Store(),
        device=resolved_device,
    )
    names = list(config.checks) if config.checks is not None else CHECKS.names()
    needs = _needs(names)
    timings["load"] = time.perf_counter() - start

    start = time.perf_counter()
    hits, misses = ctx.store.hits, ctx.store.misses
    build_notes: dict[str, str] = {}
    if (needs.references or needs.compare) and not ctx.references:
        if config.trains and (config.num_references or 0) > 0:
            try:
                _build_references(ctx, progress)
            except UnlearnAuditError as exc:
                build_notes["references"] = str(exc)
        else:
            build_notes["references"] = (
                f"the {config.profile} profile trains no reference; give one with --reference"
            )
            if needs.compare:
                ctx.notes.append("no reference model: checks report no yardstick")
    if needs.shadows:
        if config.trains and (config.num_shadows or 0) > 0:
            try:
                _build_shadows(ctx, progress)
            except UnlearnAuditError as exc:
                build_notes["shadows"] = str(exc)
        else:
            build_notes["shadows"] = f"the {config.profile} profile trains no shadow models"
    timings["build"] = time.perf_counter() - start
    built = {"trained": ctx.store.misses - misses, "reused": ctx.store.hits - hits}

    results: dict[str, CheckResult] = {}
    for name in tqdm(names, desc="checks", disable=None if progress else True, leave=False):
        check_start = time.perf_counter()
        results[name] = _run_check(ctx, name, build_notes)
        results[name].seconds = time.perf_counter() - check_start
        timings[f"check:{name}"] = results[name].seconds

    start = time.perf_counter()
    verdicts = judge(results, splits, policy)
    timings["judge"] = time.perf_counter() - start
    return AuditResult(
        config=config.to_dict() | {"policy": policy.source, "models_built": built},
        dataset={
            "name": dataset.name,
            "fingerprint": dataset.fingerprint,
            "source": dataset.source,
            "num_classes": dataset.num_classes,
            "input_shape": list(dataset.input_shape),
        },
        request=splits.summary() | {"description": splits.request.describe()},
        models={role: _describe(model) for role, model in ctx.roles()}
        | {
            f"shadow_{k + 1}": _describe(m)
            for k, m in enumerate(ctx.shadows.models if ctx.shadows else [])
        },
        checks=results,
        verdicts=verdicts,
        timings=timings,
        versions={
            "unlearn_audit": unlearn_audit.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        created=created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=ctx.notes,
    )


def _run_check(ctx: AuditContext, name: str, build_notes: dict[str, str]) -> CheckResult:
    check = CHECKS.get(name)()
    needs = check.needs
    if needs.shadows and ctx.shadows is None:
        return CheckResult.not_applicable(name, f"no shadow bank: {build_notes.get('shadows', '')}")
    if needs.references and not ctx.references:
        return CheckResult.not_applicable(
            name, f"no reference model: {build_notes.get('references', '')}"
        )
    if needs.training and not ctx.config.trains:
        return CheckResult.not_applicable(name, f"the {ctx.config.profile} profile trains nothing")
    if needs.trigger and ctx.trigger is None:
        return CheckResult.not_applicable(
            name, "no backdoor trigger: train the original with --backdoor or give --trigger"
        )
    try:
        return check.run(ctx)
    except UnlearnAuditError as exc:
        return CheckResult.not_applicable(name, str(exc))


def _describe(model: LoadedModel) -> dict[str, Any]:
    info = model.info
    return {
        "fingerprint": model.fingerprint,
        "kind": model.kind,
        "source": Path(model.source).name if model.source else "",
        "arch": info.arch,
        "dataset_fingerprint": info.dataset_fingerprint,
        "members_fingerprint": info.members_fingerprint,
        "seed": info.seed,
    }


class _CallableModule(types.ModuleType):
    """Lets ``unlearn_audit.audit(...)`` call :func:`audit` even after ``import
    unlearn_audit.audit`` has bound the package attribute to this module."""

    def __call__(self, *args: Any, **kwargs: Any) -> AuditResult:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
