"""The audit pipeline (:func:`audit`): plan what the checks need, build or load it, collect
outputs once, run the checks, judge the evidence against the policy.

    result = audit(original="o.safetensors", unlearned="u.safetensors",
                   dataset=load_dataset("digits"), request=ForgetRequest.classes(3))
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import unlearn_audit
from unlearn_audit._hashing import fingerprint_ids, package_code
from unlearn_audit._validation import check_positive_int
from unlearn_audit.checks import CHECKS, CheckResult, Needs, evidence_type
from unlearn_audit.context import AuditConfig, AuditContext, Missing, ShadowBank, shadow_pool
from unlearn_audit.data.datasets import Dataset, Normalization
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.data.triggers import Trigger
from unlearn_audit.errors import ConfigError, UnlearnAuditError
from unlearn_audit.evidence import Read, reference_role
from unlearn_audit.executors import Executor, TrainingJob, make_executor
from unlearn_audit.models.checkpoints import LoadedModel, check_model_fits, load_checkpoint
from unlearn_audit.models.layers import tensors_kept
from unlearn_audit.outputs import OutputCollector, View
from unlearn_audit.plan import AuditPlan, PlannedPass, PlannedTraining
from unlearn_audit.policy import Policy, judge
from unlearn_audit.results import DEFAULT_RECIPE_NOTE, AuditResult, NullAudit
from unlearn_audit.store import NotStored, Store
from unlearn_audit.train import (
    Recipe,
    autograd_on,
    default_recipe,
    load_recipe,
    resolve_device,
)

ModelLike = LoadedModel | nn.Module | str | Path


def _load(
    model: ModelLike,
    dataset: Dataset,
    role: str,
    normalization: Normalization | str | None,
) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return check_model_fits(model, dataset)
    if isinstance(model, str | Path):
        return load_checkpoint(model, dataset=dataset)
    if isinstance(model, nn.Module):
        return LoadedModel.from_module(model, dataset=dataset, normalization=normalization)
    raise ConfigError(
        f"`{role}` must be a checkpoint path, a LoadedModel or a torch.nn.Module; got "
        f"{type(model).__name__}."
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
            "with `member_ids`."
        )


_REFERENCE_REMEDY = "give a model retrained without the forget set (or none: the audit trains them)"
_SHADOW_REMEDY = "give shadow models trained on population samples only"


def _check_stand_ins(
    models: list[tuple[str, LoadedModel, np.ndarray | None]],
    taken: dict[str, str],
    splits: Splits,
    dataset: Dataset,
    remedy: str,
) -> None:
    """Refuse given models that cannot stand for what they are given as (references: models
    retrained without the forget set; shadows: models that never saw it): one already in the
    audit under another role (``taken``: fingerprint -> role; the original or the unlearned
    model as its own yardstick makes every gap zero, a model given twice is judged against
    itself), or one whose checkpoint records training on other data, on the original's members
    (forget set included), or on other samples than the ids given for it. ``models``: (name,
    model, member ids or ``None``); each is added to ``taken``."""
    from unlearn_audit.data.splits import members_fingerprint

    for name, model, ids in models:
        fingerprint, info = model.fingerprint, model.info
        if fingerprint in taken:
            raise ConfigError(
                f"{name} is the same model as the {taken[fingerprint]} (fingerprint "
                f"{fingerprint}); {remedy}."
            )
        taken[fingerprint] = name.removeprefix("the ")
        if info.dataset_fingerprint not in (None, splits.dataset_fingerprint):
            raise ConfigError(
                f"{name} was trained on other data ({info.dataset}, fingerprint "
                f"{info.dataset_fingerprint}) than the dataset given "
                f"({splits.dataset_fingerprint}); {remedy}."
            )
        recorded = info.members_fingerprint
        if recorded is not None and len(splits.forget) and recorded == splits.members_fingerprint:
            raise ConfigError(
                f"{name} records that it was trained on the original's members (fingerprint "
                f"{recorded}), the forget set included; {remedy}."
            )
        if (
            recorded is not None
            and ids is not None
            and recorded != members_fingerprint(dataset, ids)
        ):
            raise ConfigError(
                f"{name} records that it was trained on other samples (fingerprint {recorded}) "
                f"than the {len(ids)} member ids given for it; give the ids it was trained on."
            )


def resolve_recipe(
    original: LoadedModel,
    dataset: Dataset,
    recipe: Recipe | dict[str, Any] | str | Path | None,
    *,
    override_recipe: bool = False,
    arch: str | None = None,
) -> tuple[Recipe, str]:
    """The recipe references and shadows are trained with, and where it came from.

    ``given`` (the ``recipe`` argument) wins; it must agree with a recipe the original's
    checkpoint records unless ``override_recipe``. Without one, the recorded recipe is used
    (``recorded``), else the toolkit's default for the dataset and architecture (``default``).

    Raises:
        ConfigError: The given recipe contradicts the recorded one without ``override_recipe``.
    """
    if isinstance(recipe, str | Path):
        recipe = load_recipe(recipe)
    elif isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    recorded = Recipe.from_dict(original.info.recipe) if original.info.recipe else None
    if recipe is not None:
        if recorded is not None and recorded != recipe and not override_recipe:
            raise ConfigError(
                "the recipe given contradicts the one recorded in the original's checkpoint ("
                + "; ".join(recipe.differences(recorded))
                + " given vs recorded); drop the recipe to use the recorded one, or pass "
                "`override_recipe` to train references with the given one."
            )
        return recipe, "given"
    if recorded is not None:
        return recorded, "recorded"
    return default_recipe(dataset.name, original.info.arch or arch or ""), "default"


def default_recipe_note(recipe: Recipe) -> str:
    """The words every output uses when references were trained with a guessed recipe."""
    return (
        f"{DEFAULT_RECIPE_NOTE} ({recipe.describe()}), because nothing records how the original "
        "was trained; pass --recipe (API: recipe=) to match the original"
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
    return Needs.union(CHECKS.get(name).needs for name in names)


_NO_ARCH = (
    "the original was loaded from TorchScript or a pickle, so its architecture is unknown and "
    "no {what} can be trained like it"
)


def _training_job(
    ctx: AuditContext, member_ids: np.ndarray, *, role: str, seed: int
) -> TrainingJob:
    """A model like the original (its architecture, recipe and normalisation) on other data."""
    info = ctx.original.info
    arch, arch_kwargs = (
        (info.arch, info.arch_kwargs) if info.arch else (ctx.train_arch or (None, {}))
    )
    if arch is None:
        raise ConfigError(_NO_ARCH.format(what=f"{role} models"))
    return TrainingJob.create(
        role=role,
        seed=seed,
        arch=arch,
        arch_kwargs=arch_kwargs,
        recipe=ctx.recipe(),
        member_ids=member_ids,
        normalization=ctx.original.normalization,
    )


def _train_or_plan(
    ctx: AuditContext,
    member_ids: np.ndarray,
    *,
    role: str,
    seed: int,
    progress: bool,
    jobs: list[PlannedTraining] | None,
) -> LoadedModel | None:
    """Train (or load) a model like the original; when planning (``jobs`` given) only look it
    up in the store, record the job, and return the stored model or ``None``."""
    job = _training_job(ctx, member_ids, role=role, seed=seed)
    if jobs is None:
        return job.train(ctx.dataset, store=ctx.store, device=ctx.device, progress=progress)
    try:
        model = job.train(ctx.dataset, store=ctx.store.lookup_only(), device=ctx.device)
    except NotStored:
        model = None
    jobs.append(PlannedTraining(role, seed, len(member_ids), model is not None, model, job))
    return model


def _build_references(
    ctx: AuditContext, progress: bool, jobs: list[PlannedTraining] | None = None
) -> None:
    """References of seeds ``seed``, ``seed + 1``, ..., passing over two kinds of seed:

    - the original's own training seed, when it records one: a retrain from the original's
      initialisation stays closer to the original than retrains in general (digits, class 3,
      audit seeds 0-3: CKA to the original on the forgotten class 0.49 on average against 0.43
      for nine other seeds each, LiRA AUC 0.52 against 0.50), so it would pull the yardstick
      toward the original, in a fake's favour, and the null audit's stand-in (the first
      reference) would not be a typical retrain;
    - a seed whose retrain is the unlearned model itself (the same weights: a retrain with the
      audit's recipe and seed), since a model cannot be its own yardstick: every gap would be
      zero by construction, and its membership scores would count it among its own out
      models."""
    wanted, seed = ctx.config.num_references or 0, ctx.config.seed
    found, passed_over = 0, False
    original_seed = ctx.original.info.seed
    while found < wanted:
        if seed == original_seed:
            ctx.notes.append(
                f"reference seeds pass over {seed}, the original's own training seed: a "
                "retrain from the original's initialisation stays closer to it than retrains "
                "in general and would pull the yardstick toward the original"
            )
            seed += 1
            continue
        model = _train_or_plan(
            ctx, ctx.splits.retain, role="reference", seed=seed, progress=progress, jobs=jobs
        )
        # once only: a second seed with the same weights would mean seeds change nothing
        if not passed_over and model is not None and model.fingerprint == ctx.unlearned.fingerprint:
            passed_over = True
            if jobs is not None:
                jobs.pop()  # stored, and not a reference: nothing to plan for it
            ctx.notes.append(
                f"the unlearned model is the audit's own retrain of seed {seed} (the same "
                f"weights as that reference): the references use other seeds, since a model "
                "cannot be its own yardstick"
            )
        else:
            found += 1
            if jobs is None and model is not None:
                ctx.references.append(model)
        seed += 1
    ctx.references_trained = jobs is None


def shadow_member_ids(
    splits: Splits, labels: np.ndarray, count: int, seed: int
) -> list[np.ndarray]:
    """The member ids of the ``count`` shadow models an audit with ``seed`` trains: each a
    random draw (sorted) from :func:`shadow_pool`."""
    pool, size, _ = shadow_pool(splits, labels)
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(pool, size=size, replace=False)) for _ in range(count)]


def shadow_seed(seed: int, k: int) -> int:
    """Training seed of the ``k``-th shadow model of an audit with ``seed``."""
    return seed + 1000 + k


def _build_shadows(
    ctx: AuditContext, progress: bool, jobs: list[PlannedTraining] | None = None
) -> None:
    count, seed = ctx.config.num_shadows or 0, ctx.config.seed
    in_ids = shadow_member_ids(ctx.splits, ctx.dataset.labels, count, seed)
    seeds = [shadow_seed(seed, k) for k in range(count)]
    models = [
        _train_or_plan(ctx, ids, role="shadow", seed=seed, progress=progress, jobs=jobs)
        for ids, seed in zip(in_ids, seeds, strict=True)
    ]
    if jobs is None:  # a plan holds the stored ones in its jobs only
        ctx.shadows = ShadowBank(models=[m for m in models if m], in_ids=in_ids, seeds=seeds)


def _given_shadows(
    shadows: ShadowBank | list[tuple[ModelLike, Any]],
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    normalization: Normalization | str | None,
) -> ShadowBank:
    """The user's shadow models, checked: same task and architecture as the original, member
    ids inside the population."""
    pairs = (
        list(zip(shadows.models, shadows.in_ids, strict=True))
        if isinstance(shadows, ShadowBank)
        else list(shadows)
    )
    if not pairs:
        raise ConfigError("`shadows` is empty; give at least one (model, member ids) pair.")
    population = splits.population
    models, halves = [], []
    for k, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ConfigError(
                f"`shadows[{k}]` must be a (model, member ids) pair; got {type(pair).__name__}."
            )
        model = _load(pair[0], dataset, f"shadow {k + 1}", normalization)
        ids = np.unique(np.asarray(pair[1], dtype=np.int64))
        outside = np.setdiff1d(ids, population)
        if len(ids) == 0 or len(outside) > 0:
            raise ConfigError(
                f"the member ids of shadow {k + 1} must lie inside the population split "
                f"({len(population)} ids); {len(outside)} of {len(ids)} do not (e.g. "
                f"{outside[:3].tolist()}); train shadows on population samples only (see "
                "`unlearn-audit splits --out-dir`)."
            )
        arch, theirs = original.info.arch, model.info.arch
        if (
            arch
            and theirs
            and (arch, original.info.arch_kwargs) != (theirs, model.info.arch_kwargs)
        ):
            raise ConfigError(
                f"shadow {k + 1} is a {theirs!r} {model.info.arch_kwargs or ''} model but the "
                f"original is {arch!r} {original.info.arch_kwargs or ''}; shadow models must "
                "share the original's architecture."
            )
        _check_models(original, {f"shadow {k + 1}": model}, splits)
        models.append(model)
        halves.append(ids)
    return ShadowBank(models=models, in_ids=halves, given=True)


@autograd_on
def audit(
    *,
    original: ModelLike,
    unlearned: ModelLike,
    dataset: Dataset,
    request: ForgetRequest | Splits,
    references: list[ModelLike] | None = None,
    shadows: ShadowBank | list[tuple[ModelLike, Any]] | None = None,
    profile: str = "standard",
    trigger: Trigger | str | Path | None = None,
    checks: list[str] | tuple[str, ...] | None = None,
    policy: Policy | str | Path | None = None,
    store: Store | None = None,
    seed: int = 0,
    num_references: int | None = None,
    num_shadows: int | None = None,
    null_audit: bool = True,
    member_ids: np.ndarray | None = None,
    recipe: Recipe | dict[str, Any] | str | Path | None = None,
    override_recipe: bool = False,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    normalization: Normalization | str | None = "dataset",
    conv_layer: str | None = None,
    feature_layer: str | None = None,
    device: str = "auto",
    inference_batch_size: int | None = None,
    executor: Executor | str | None = None,
    progress: bool = False,
    created: str | None = None,
    command_line: list[str] | None = None,
    on_check: Callable[[str, CheckResult], None] | None = None,
) -> AuditResult:
    """Audit ``unlearned`` against ``original`` for a forget request.

    Args:
        original: The model before unlearning: a checkpoint path, a :class:`LoadedModel`, or
            a plain ``nn.Module`` (see ``normalization``).
        unlearned: The model under audit (same kinds).
        dataset: The data the models were trained on.
        request: What was to be forgotten, or ready-made splits.
        references: Models retrained without the forget set; trained when not given (except
            in the ``quick`` profile).
        shadows: The owner's shadow models instead of training them: ``(model, member ids)``
            pairs (ids inside the population split) or a :class:`ShadowBank`.
        profile: ``quick``, ``standard`` or ``full``.
        trigger: Backdoor trigger; default the one the original's checkpoint records.
        checks: Check names to run; default all.
        policy: Policy thresholds (a TOML path or a :class:`Policy`); default the built-in one.
        store: Where trained references and shadows, and the outputs of the models that do
            not change between audits (original, references, shadows), are kept; default the
            user's store; ``Store.off()`` keeps nothing.
        seed: Seed of everything the audit trains or draws.
        num_references: References to train when none are given.
        num_shadows: Size of the shadow bank.
        null_audit: With two or more references (the standard profile trains two), also
            judge the first reference as if it were the unlearned model, against the others
            and the same shadows, and mark every claim a true retrain does not pass as
            uncalibrated (``result.null_audit``, ``result.uncalibrated``).
        member_ids: Members of the original when not its dataset's training part.
        recipe: How the original was trained (a :class:`Recipe`, its fields, or a TOML/JSON
            file): references and shadows are trained with it. Default the recipe the
            original records, else the toolkit's default, which the result then says.
        override_recipe: Use ``recipe`` even where it contradicts the recorded one.
        arch: Architecture (zoo name or ``module:factory``) to train references and shadows
            with when the original records none (TorchScript, pickled or in-memory modules).
        arch_kwargs: Arguments of ``arch``.
        normalization: Input normalisation of plain ``nn.Module`` arguments: ``"dataset"``
            (the dataset's usual one, default), ``None``, ``"MEAN,STD"`` or a Normalization.
        conv_layer: Convolution for Grad-CAM and channel relevance (default the last).
        feature_layer: Module whose output is the features (default the last Linear's input).
        device: ``auto``, ``cpu`` or ``cuda``.
        inference_batch_size: Samples per forward pass (default 512 on CPU, 2048 on CUDA).
        executor: Where the references and shadow models the store lacks are trained:
            ``"local"`` (default: here, one after another), ``"ray"`` (a local Ray cluster)
            or an executor such as :class:`~unlearn_audit.executors.RayExecutor` (an existing
            cluster, CPUs and GPUs per job).
        progress: Progress bars for training.
        created: Timestamp written into the result (default now, UTC).
        command_line: The command line that ran the audit, for the record (the CLI passes it).
        on_check: Called with each check's name and result as soon as it has run (the CLI's
            report worker draws that check's figures meanwhile).

    Returns:
        The :class:`AuditResult`; ``result.outcome`` is ``FAIL`` when a claim failed,
        ``INCONCLUSIVE`` when none failed but an applicable claim could not be judged from
        these models, ``PARTIAL`` when an applicable claim was not judged by the audit's
        settings (a quick profile, a subset of checks), else ``WARN`` or ``PASS``.
    """
    arguments = dict(locals())  # exactly the parameters: _prepare and plan_audit share them
    timings: dict[str, float] = {}
    start = time.perf_counter()
    ctx, policy = _prepare(arguments)
    config, shadow_bank, given_references = ctx.config, ctx.shadows, len(ctx.references)
    splits, resolved_device = ctx.splits, ctx.device
    names = _check_names(config)
    needs = _needs(names)
    timings["load"] = time.perf_counter() - start

    start = time.perf_counter()
    hits, misses = ctx.store.hits, ctx.store.misses
    elsewhere = _build_elsewhere(ctx, needs, make_executor(executor), progress)
    _build(ctx, needs, progress)
    timings["build"] = time.perf_counter() - start
    built = {
        "trained": ctx.store.misses - misses + elsewhere,
        "reused": ctx.store.hits - hits - elsewhere,  # (those just trained elsewhere are loaded)
        "given_references": given_references,
        "given_shadows": len(shadow_bank.models) if shadow_bank else 0,
    }
    if _trained_with_default_recipe(ctx):
        ctx.notes.insert(0, default_recipe_note(ctx.recipe()))

    # outputs of the models that do not change between audits are kept in the store
    stable = [ctx.original, *ctx.references, *(ctx.shadows.models if ctx.shadows else [])]
    ctx.collector.keep = {model.fingerprint for model in stable}
    ctx.collector.plan(_planned_reads(ctx, names))

    results: dict[str, CheckResult] = {}
    for name in tqdm(names, desc="checks", disable=None if progress else True, leave=False):
        check_start = time.perf_counter()
        results[name] = _run_check(ctx, name)
        results[name].seconds = time.perf_counter() - check_start
        timings[f"check:{name}"] = results[name].seconds
        if on_check is not None:
            on_check(name, results[name])

    start = time.perf_counter()
    null = _null_audit(ctx, names, policy, progress)
    if null is not None:
        timings["null_audit"] = time.perf_counter() - start

    start = time.perf_counter()
    verdicts = judge(_judgeable(ctx, results), splits.request.kind, policy, missing=ctx.missing)
    models = _describe_models(ctx)
    ctx.notes.extend(_readability_notes(ctx, results))
    timings["judge"] = time.perf_counter() - start
    result = AuditResult(
        config=config.to_dict()
        | {
            "policy": policy.source,
            "models_built": built,
            "outputs": {
                "forwarded": sum(ctx.collector.forwarded.values()),
                "from_store": sum(ctx.collector.loaded.values()),
                "grad_cam_computed": sum(ctx.collector.cams_computed.values()),
                "grad_cam_from_store": sum(ctx.collector.cams_loaded.values()),
            },
            "recipe": ctx.recipe().to_dict(),
            "recipe_source": ctx.recipe_source,
        },
        dataset={
            "name": dataset.name,
            "fingerprint": dataset.fingerprint,
            "source": dataset.source,
            "num_classes": dataset.num_classes,
            "input_shape": list(dataset.input_shape),
        },
        request=splits.summary() | {"description": splits.request.describe()},
        models=models,
        checks=results,
        verdicts=verdicts,
        timings=timings,
        versions=_versions(),
        created=created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=ctx.notes,
        record=_record(ctx, policy, resolved_device, command_line),
    )
    result.null_audit = null
    result.limitations = _limitations(ctx, result)
    return result


def _runs_null_audit(config: AuditConfig, references: int) -> bool:
    return config.null_audit and references >= 2


def _null_audit(
    ctx: AuditContext, names: list[str], policy: Policy, progress: bool
) -> NullAudit | None:
    """The checks again with the first reference in the unlearned model's place, judged
    against the other references and the same shadows: what the audit says about a true
    retrain. Its outputs are the ones the audit already has; only the probes of the second
    reference (relearn curve, Grad-CAM maps) are new, and kept in the store."""
    if not _runs_null_audit(ctx.config, len(ctx.references)):
        return None
    null = dataclasses.replace(
        ctx,
        unlearned=ctx.references[0],
        references=ctx.references[1:],
        missing=dict(ctx.missing),
        notes=[],
        unlearned_is_retrain=True,
    )

    def compute() -> dict[str, Any]:
        return {
            name: _run_check(null, name).to_dict()
            for name in tqdm(
                names, desc="null audit", disable=None if progress else True, leave=False
            )
        }

    # its evidence depends on none of the unlearned model: kept in the store, judged afresh
    stored = ctx.store.get_or_compute("null_audits", _null_audit_key(ctx, names), compute)
    results = {
        name: CheckResult.from_dict(stored[name], evidence_type(name), f"null_audit.{name}")
        for name in names
    }
    return NullAudit(
        stands_in=reference_role(0),
        yardstick=[reference_role(i) for i in range(1, len(ctx.references))],
        verdicts=judge(
            _judgeable(null, results), ctx.splits.request.kind, policy, missing=null.missing
        ),
    )


def _null_audit_key(ctx: AuditContext, names: list[str]) -> dict[str, Any]:
    """Everything the null audit's evidence depends on: the original, references and shadows
    (weights and code, what their layers are read through, the shadows' members), the data
    and splits, the layers read, the trigger, the recipe of the probes, the audit's options,
    what was missing, and the package's code."""
    bank = ctx.shadows
    collector = ctx.collector.entry(ctx.original, "", "clean")
    return {
        # each with what its layers are read through (a TorchScript model's view)
        "models": [(m.fingerprint, m.readable_key) for m in (ctx.original, *ctx.references)],
        "shadows": [
            (m.fingerprint, m.readable_key, fingerprint_ids(ids))
            for m, ids in (zip(bank.models, bank.in_ids, strict=True) if bank else ())
        ],
        "collector": {k: v for k, v in collector.items() if k not in ("model", "readable", "ids")},
        "splits": ctx.splits.fingerprints,
        "request": ctx.splits.request.describe(),
        "trigger": ctx.trigger.to_dict() if ctx.trigger else None,
        "forget_triggered": ctx.forget_triggered,
        "recipe": ctx.recipe().to_dict(),
        "train_arch": ctx.train_arch,
        "config": ctx.config.to_dict() | {"checks": names},
        "missing": {what: dataclasses.asdict(m) for what, m in sorted(ctx.missing.items())},
        "code": package_code(),
    }


def limit_threads(device: torch.device) -> int:
    """On CPU, at most one torch thread per core this process may use; returns the count.

    torch starts with one thread per physical core of the machine, which in a container or
    under ``taskset`` can be many more than the cores the process is given: the threads then
    take turns on those cores, many times slower. A lower setting (the user's, or
    ``OMP_NUM_THREADS``) is kept. On CUDA the models run on the GPU and nothing changes.
    """
    if device.type == "cpu" and hasattr(os, "sched_getaffinity"):
        available = len(os.sched_getaffinity(0))
        if torch.get_num_threads() > available:
            torch.set_num_threads(available)
    return torch.get_num_threads()


def _check_names(config: AuditConfig) -> list[str]:
    return list(config.checks) if config.checks is not None else CHECKS.names()


def _prepare(args: dict[str, Any]) -> tuple[AuditContext, Policy]:
    """Everything an audit (or its plan) knows before it builds anything: options checked,
    splits drawn, models loaded and checked, recipe and trigger resolved."""
    a = SimpleNamespace(**args)
    resolved_device = resolve_device(a.device)
    limit_threads(resolved_device)
    batch_size = a.inference_batch_size
    if batch_size is None:
        batch_size = 2048 if resolved_device.type == "cuda" else 512
    check_positive_int(batch_size, "inference_batch_size", minimum=1)
    config = AuditConfig(
        profile=a.profile,
        checks=tuple(a.checks) if a.checks is not None else None,
        seed=a.seed,
        num_references=a.num_references,
        num_shadows=a.num_shadows,
        device=a.device,
        batch_size=batch_size,
        null_audit=bool(a.null_audit),
    )
    for name in config.checks or ():
        CHECKS.get(name)  # an unknown name is a did-you-mean error
    policy = a.policy if isinstance(a.policy, Policy) else Policy.load(a.policy)
    dataset = a.dataset
    splits = (
        a.request
        if isinstance(a.request, Splits)
        else make_splits(dataset, a.request, member_ids=a.member_ids)
    )
    original = _load(a.original, dataset, "original", a.normalization)
    unlearned = _load(a.unlearned, dataset, "unlearned", a.normalization)
    given = [_load(r, dataset, "reference", a.normalization) for r in a.references or []]
    _check_models(
        original,
        {"unlearned": unlearned} | {reference_role(i): r for i, r in enumerate(given)},
        splits,
    )
    taken = {original.fingerprint: "original", unlearned.fingerprint: "unlearned model"}
    _check_stand_ins(
        [(f"the {reference_role(i)}", r, None) for i, r in enumerate(given)],
        taken,
        splits,
        dataset,
        _REFERENCE_REMEDY,
    )
    shadow_bank = (
        _given_shadows(a.shadows, original, dataset, splits, a.normalization)
        if a.shadows is not None
        else None
    )
    training_recipe, recipe_source = resolve_recipe(
        original, dataset, a.recipe, override_recipe=a.override_recipe, arch=a.arch
    )
    if shadow_bank is not None:
        _check_stand_ins(
            [
                (f"shadow {k + 1}", m, ids)
                for k, (m, ids) in enumerate(
                    zip(shadow_bank.models, shadow_bank.in_ids, strict=True)
                )
            ],
            taken,
            splits,
            dataset,
            _SHADOW_REMEDY,
        )
    trigger_spec = _trigger(original, a.trigger, dataset)
    store = a.store if a.store is not None else Store()
    ctx = AuditContext(
        dataset=dataset,
        splits=splits,
        original=original,
        unlearned=unlearned,
        references=given,
        shadows=shadow_bank,
        trigger=trigger_spec,
        config=config,
        collector=OutputCollector(
            dataset,
            batch_size=config.batch_size,
            device=resolved_device,
            trigger=trigger_spec,
            conv_layer=a.conv_layer,
            feature_layer=a.feature_layer,
            store=store,
        ),
        store=store,
        device=resolved_device,
        training_recipe=training_recipe,
        recipe_source=recipe_source,
        train_arch=(a.arch, dict(a.arch_kwargs or {})) if a.arch else None,
    )
    return ctx, policy


def plan_audit(**kwargs: Any) -> AuditPlan:
    """What :func:`audit` would do with the same arguments, without training or running
    anything: the references and shadow models it needs and which the store holds, its
    forward passes (one per model and view, over the union of the samples read) and which
    outputs are stored, the relearn probes, and the checks that will run or be N/A.

    Raises:
        ConfigError: An argument :func:`audit` does not take, or any error the audit would
            raise before building (bad request, models that do not fit, ...).
    """
    import inspect

    try:
        bound = inspect.signature(audit).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"plan_audit takes the arguments of audit(): {exc}.") from None
    bound.apply_defaults()
    ctx, policy = _prepare(dict(bound.arguments))
    names = _check_names(ctx.config)
    plan = AuditPlan()
    _build(ctx, _needs(names), False, plan.training)
    known: dict[str, LoadedModel | None] = dict(ctx.roles())
    if ctx.references:
        references = len(ctx.references)
    else:
        jobs = [job for job in plan.training if job.role == "reference"]
        known |= {reference_role(i): job.model for i, job in enumerate(jobs)}
        references = len(jobs)
    if ctx.shadows is not None:
        known |= {f"shadow_{k + 1}": m for k, m in enumerate(ctx.shadows.models)}
        shadows = len(ctx.shadows.models)
    else:
        jobs = [job for job in plan.training if job.role == "shadow"]
        known |= {f"shadow_{k + 1}": job.model for k, job in enumerate(jobs)}
        shadows = len(jobs)
    present = {"references": references > 0, "shadows": shadows > 0}
    unmet_checks = {name: _unmet(ctx, name, CHECKS.get(name).needs, present) for name in names}
    for name, unmet in unmet_checks.items():
        plan.checks[name] = "" if unmet is None else unmet.reason
    plan.unjudged = _unjudged_claims(ctx, policy, unmet_checks, present["references"])
    audited = ["original", "unlearned", *(reference_role(i) for i in range(references))]
    null_audit = _runs_null_audit(ctx.config, references)
    union = _reads_by_role(ctx, names, _roles(audited, shadows), present)
    keep = {m.fingerprint for role, m in known.items() if m is not None and role != "unlearned"}
    for (role, view), ids in union.items():
        model = known.get(role)
        stored: bool | None = None
        if model is not None:
            stored = model.fingerprint in keep and ctx.store.holds_arrays(
                "outputs", ctx.collector.entry(model, fingerprint_ids(ids), view)
            )
        plan.passes.append(PlannedPass(role, view, len(ids), stored, ids=ids))
    for name in names:
        if plan.checks[name]:
            continue
        for read in CHECKS.get(name)().cam_reads(ctx):
            roles = list(read.roles)
            if null_audit and "reference" in roles:  # the null audit's yardstick
                roles.append(reference_role(1))
            for role in roles:
                if role not in audited:
                    continue
                model = known.get(role)
                stored = None
                if model is not None:
                    stored = model.fingerprint in keep and ctx.store.holds_arrays(
                        "grad_cams",
                        ctx.collector.cam_entry(
                            model, read.ids, read.targets, cast(View, read.view)
                        ),
                    )
                plan.passes.append(
                    PlannedPass(role, read.view, len(read.ids), stored, "grad-cam", read.ids)
                )
    if "relearn" in names and not plan.checks["relearn"]:
        # relearn and feature relearn, for the unlearned and a reference (and the null audit's)
        plan.fine_tunes = 6 if null_audit else 4
    return plan


def _unjudged_claims(
    ctx: AuditContext,
    policy: Policy,
    unmet: dict[str, CheckResult | None],
    references: bool,
) -> dict[str, str]:
    """Claim -> why it applies to the request but the audit's settings leave it unjudged: its
    check left out (``--checks``) or not run for want of what the settings do not provide
    (references, shadows, training), or, with no reference, a claim judged against one."""
    found = {}
    for claim in policy.claims.values():
        if ctx.splits.request.kind not in claim.requests:
            continue
        check = claim.check
        if check not in unmet:
            if not _inapplicable(ctx, CHECKS.get(check).needs):
                found[claim.name] = f"the {check} check is left out (--checks)"
        elif (result := unmet[check]) is not None:
            if result.cause == "not_run":
                found[claim.name] = f"the {check} check will not run ({result.reason})"
        elif not references and claim.measure not in evidence_type(check).ORIGINAL_YARDSTICK:
            missing = ctx.missing.get("references")
            found[claim.name] = missing.reason if missing else "no reference model"
    return found


def _trained_with_default_recipe(ctx: AuditContext) -> bool:
    """The audit trained references or shadows, and with a recipe nobody gave or recorded."""
    trained_shadows = ctx.shadows is not None and not ctx.shadows.given
    return ctx.recipe_source == "default" and (ctx.references_trained or trained_shadows)


def _build(
    ctx: AuditContext, needs: Needs, progress: bool, jobs: list[PlannedTraining] | None = None
) -> None:
    """References and the shadow bank the checks need: given, from the store, or trained.

    What cannot be had goes into ``ctx.missing`` with its cause: the user's choice (profile,
    counts of zero) or models that do not allow it (an architecture nobody named). A training
    run that fails (a recipe that diverges) is an error, not a missing piece.
    """
    config = ctx.config
    if (needs.references or needs.compare) and not ctx.references:
        _build_part(
            ctx,
            "references",
            config.num_references or 0,
            _build_references,
            progress,
            jobs,
            label=("reference model", "reference", "--references"),
            given="references with --reference",
        )
        if "references" in ctx.missing and needs.compare:
            ctx.notes.append("no reference model: checks report no yardstick")
    if needs.shadows and ctx.shadows is None:
        _build_part(
            ctx,
            "shadows",
            config.num_shadows or 0,
            _build_shadows,
            progress,
            jobs,
            label=("shadow bank", "shadow models", "--shadows"),
            given="shadow models with --shadow and --shadow-members",
        )


def _build_elsewhere(ctx: AuditContext, needs: Needs, executor: Executor, progress: bool) -> int:
    """With an executor other than the local one, train what :func:`_build` would train the
    store lacks there first (the build then loads it); returns how many models it trained."""
    if executor.name == "local":
        return 0  # the build trains them itself, as it goes
    planned: list[PlannedTraining] = []
    _build(dataclasses.replace(ctx, missing={}, notes=[]), needs, False, planned)
    jobs = [p.job for p in planned if not p.stored and p.job is not None]
    return executor.run(jobs, ctx.dataset, ctx.store, device=ctx.device, progress=progress)


def _build_part(
    ctx: AuditContext,
    what: str,
    count: int,
    build: Any,
    progress: bool,
    jobs: list[PlannedTraining] | None,
    *,
    label: tuple[str, str, str],
    given: str,
) -> None:
    name, noun, flag = label
    if not ctx.config.trains or count == 0:
        why = (
            f"the {ctx.config.profile} profile trains no {noun}"
            if not ctx.config.trains
            else f"none was asked for ({flag} 0)"
        )
        ctx.missing[what] = Missing("not_run", f"no {name}: {why}", f"give {given}")
        return
    if ctx.original.info.arch is None and ctx.train_arch is None:
        ctx.missing[what] = Missing(
            "unjudgeable",
            f"no {name}: " + _NO_ARCH.format(what=noun),
            "give the original's architecture with --arch (API: arch=) so they can be trained "
            f"like it, or give {given}",
        )
        return
    build(ctx, progress, jobs)


# what the audit itself reads: each model's accuracy on its members and on test
_DESCRIBE_READS = (
    Read("forget"),
    Read("retain"),
    Read("test"),
    Read("population", models="shadows"),
    Read("test", models="shadows"),
)


def _planned_reads(
    ctx: AuditContext, names: list[str]
) -> list[tuple[LoadedModel, np.ndarray, View]]:
    """Every (model, ids, view) the checks that will run declare, and the audit's own, merged
    into one read per (model, view)."""
    models = dict(ctx.roles())
    if ctx.shadows is not None:
        models |= {f"shadow_{k + 1}": m for k, m in enumerate(ctx.shadows.models)}
    roles = _roles(list(dict(ctx.roles())), len(ctx.shadows.models) if ctx.shadows else 0)
    present = {"references": bool(ctx.references), "shadows": ctx.shadows is not None}
    union = _reads_by_role(ctx, names, roles, present)
    return [(models[role], ids, view) for (role, view), ids in union.items()]


def _roles(audited: list[str], shadows: int) -> dict[str, list[str]]:
    """Role names by the ``models`` field of a :class:`Read`."""
    return {
        "audited": audited,
        "original": ["original"],
        "shadows": [f"shadow_{k + 1}" for k in range(shadows)],
    }


def _reads_by_role(
    ctx: AuditContext, names: list[str], roles: dict[str, list[str]], present: dict[str, bool]
) -> dict[tuple[str, View], np.ndarray]:
    """(role, view) -> the union of the ids read through it by the audit itself and by the
    checks whose needs are met (``present``: whether references and shadows will be there)."""
    reads = list(_DESCRIBE_READS)
    for name in names:
        check = CHECKS.get(name)
        if _unmet(ctx, name, check.needs, present) is None:
            reads.extend(check.needs.reads)
    union: dict[tuple[str, View], np.ndarray] = {}
    for read in dict.fromkeys(reads):
        if read.view == "trigger" and ctx.trigger is None:
            continue
        view = cast(View, read.view)
        for split in read.splits(ctx.splits.names(), ctx.splits.request.kind):
            ids = ctx.splits.get(split)
            for role in roles[read.models]:
                known = union.get((role, view), np.zeros(0, dtype=np.int64))
                union[(role, view)] = np.union1d(known, ids)
    return union


def _unmet(
    ctx: AuditContext, name: str, needs: Needs, present: dict[str, bool] | None = None
) -> CheckResult | None:
    """The N/A result of a check whose needs the audit cannot meet, else ``None``
    (``present`` overrides whether references and shadows are there, for plans)."""
    present = present or {"references": bool(ctx.references), "shadows": ctx.shadows is not None}
    for what, wanted in (("shadows", needs.shadows), ("references", needs.references)):
        if wanted and not present[what]:
            missing = ctx.missing.get(what, Missing("not_run", f"no {what}"))
            return CheckResult.not_applicable(
                name, missing.reason, cause=missing.cause, remedy=missing.remedy
            )
    if needs.training and not ctx.config.trains:
        return CheckResult.not_applicable(
            name, f"the {ctx.config.profile} profile trains nothing", cause="not_run"
        )
    if _inapplicable(ctx, needs):
        return CheckResult.not_applicable(name, _NO_TRIGGER, cause="not_applicable")
    return None


_NO_TRIGGER = "no backdoor trigger: train the original with --backdoor or give --trigger"


def _inapplicable(ctx: AuditContext, needs: Needs) -> bool:
    """Whether a check with ``needs`` has nothing to judge in this audit, whatever its
    settings: it needs a backdoor trigger and there is none."""
    return needs.trigger and ctx.trigger is None


def _judgeable(ctx: AuditContext, results: dict[str, CheckResult]) -> dict[str, CheckResult]:
    """``results``, and for each check left out of the audit (``--checks``) that would not
    apply to it anyway (the backdoor check without a trigger), its N/A result: its claims then
    read "not applicable", not "not judged by the audit's settings"."""
    found = dict(results)
    for name in CHECKS.names():
        if name not in found and _inapplicable(ctx, CHECKS.get(name).needs):
            found[name] = CheckResult.not_applicable(name, _NO_TRIGGER, cause="not_applicable")
    return found


def _run_check(ctx: AuditContext, name: str) -> CheckResult:
    check = CHECKS.get(name)()
    unmet = _unmet(ctx, name, check.needs)
    if unmet is not None:
        return unmet
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
        "arch_kwargs": info.arch_kwargs,
        "dataset_fingerprint": info.dataset_fingerprint,
        "members_fingerprint": info.members_fingerprint,
        "seed": info.seed,
        "recipe": info.recipe,
    }


def _accuracy(ctx: AuditContext, model: LoadedModel, split: str, ids: Any = None) -> float | None:
    """Accuracy of ``model`` on a split (or the ``ids`` part of it), through the collector."""
    out = ctx.outputs(model, split)
    correct = out.correct if ids is None else out.correct[np.isin(out.ids, ids)]
    return float(np.mean(correct)) if len(correct) else None


def _describe_models(ctx: AuditContext) -> dict[str, Any]:
    """Every model of the audit with its origin, recipe, seed, member-id fingerprint and its
    accuracy on its own training samples and on test, so a reader can see at a glance whether
    the references resemble the original."""
    models: dict[str, Any] = {}
    members = np.concatenate([ctx.splits.forget, ctx.splits.retain])
    for role, model in ctx.roles():
        entry = _describe(model)
        if role == "original":
            trained = [_accuracy(ctx, model, "forget"), _accuracy(ctx, model, "retain")]
            n_forget = len(ctx.splits.forget)
            entry["accuracy"] = {
                "members": None
                if None in trained
                else (trained[0] * n_forget + trained[1] * (len(members) - n_forget))  # type: ignore[operator]
                / len(members),
                "test": _accuracy(ctx, model, "test"),
            }
            entry["origin"] = "given"
        else:
            entry["accuracy"] = {
                "members": _accuracy(ctx, model, "retain"),
                "test": _accuracy(ctx, model, "test"),
            }
            entry["origin"] = (
                "trained by the audit"
                if role.startswith("reference") and ctx.references_trained
                else "given"
            )
        models[role] = entry
    if ctx.unlearned.fingerprint != ctx.original.fingerprint:
        kept = tensors_kept(ctx.original.module, ctx.unlearned.module)
        models["unlearned"]["original_tensors_kept"] = list(kept)
    if ctx.shadows is not None:
        for k, (model, in_ids) in enumerate(
            zip(ctx.shadows.models, ctx.shadows.in_ids, strict=True)
        ):
            entry = _describe(model)
            entry["members_fingerprint"] = entry["members_fingerprint"] or fingerprint_ids(in_ids)
            entry["accuracy"] = {
                "members": _accuracy(ctx, model, "population", in_ids),
                "test": _accuracy(ctx, model, "test"),
            }
            entry["origin"] = "given" if ctx.shadows.given else "trained by the audit"
            models[f"shadow_{k + 1}"] = entry
    for entry in models.values():
        if entry["origin"] == "trained by the audit":
            entry["recipe_source"] = ctx.recipe_source
    return models


def _readability_notes(ctx: AuditContext, results: dict[str, CheckResult]) -> list[str]:
    """One note per model whose layers could not be read, naming the checks that lost them."""
    notes = []
    for role, model in ctx.roles():
        if model.hookable is not None and model.fingerprint not in ctx.collector.unreadable:
            if model.is_compiled:
                notes.append(f"{role} (TorchScript): layers {model.readable_note}")
            continue
        if not model.is_compiled and model.fingerprint not in ctx.collector.unreadable:
            continue
        lost = [
            n for n in ("representation", "saliency") if n in results and results[n].status == "na"
        ]
        notes.append(
            f"{role} (TorchScript): only its logits could be read, as "
            f"{ctx.unreadable_reason(model)}"
            + (f"; checks that lost its layers: {', '.join(lost)}" if lost else "")
        )
    return notes


_VERSIONED = (
    "unlearn-audit",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-learn",
    "captum",
)


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["unlearn-audit"] = unlearn_audit.__version__
    return versions


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record(
    ctx: AuditContext, policy: Policy, device: torch.device, command_line: list[str] | None
) -> dict[str, Any]:
    """What a compliance reader needs to reproduce and trust the audit."""
    files: dict[str, Any] = {}
    roles = list(ctx.roles())
    if ctx.shadows is not None and ctx.shadows.given:
        roles += [(f"shadow_{k + 1}", m) for k, m in enumerate(ctx.shadows.models)]
    for role, model in roles:
        if model.source and Path(model.source).is_file():
            files[role] = {"file": Path(model.source).name, "sha256": _sha256(model.source)}
        else:
            files[role] = {"file": None, "sha256": None, "note": "in memory (no file)"}
    device_name = str(device)
    if device.type == "cuda":
        device_name += f" ({torch.cuda.get_device_name(device)})"
    seeds: dict[str, Any] = {"audit": ctx.config.seed}
    if ctx.splits.request.kind == "random":
        seeds["request"] = getattr(ctx.splits.request, "seed", None)
    seeds["references"] = [m.info.seed for m in ctx.references]
    if ctx.shadows is not None:
        seeds["shadows"] = ctx.shadows.seeds or [m.info.seed for m in ctx.shadows.models]
    return {
        "device": device_name,
        "command_line": list(command_line) if command_line is not None else None,
        "files": files,
        "policy": {"source": policy.source, "sha256": policy.sha256},
        "recipe": {"source": ctx.recipe_source, "recipe": ctx.recipe().to_dict()},
        "seeds": seeds,
    }


def _limitations(ctx: AuditContext, result: AuditResult) -> list[str]:
    """What this audit could not show, in plain words (the report's "limitations" section)."""
    items = []
    for verdict in result.verdicts:
        if verdict.status in ("N/A", "INCONCLUSIVE"):
            line = f"{verdict.claim} was not judged ({verdict.status}): {verdict.evidence}"
            if verdict.remedy:
                line += f"; remedy: {verdict.remedy}"
            items.append(line)
    for name, check in result.checks.items():
        if check.status == "na" and check.cause != "not_run":
            items.append(f"the {name} check could not run: {check.reason}")
        if check.evidence is not None:
            items.extend(check.evidence.limitations())
    note = result.recipe_note
    if note is not None:
        items.append(note)
    if len(ctx.references) == 1:
        items.append(
            "one reference seed: the seed-to-seed spread of a retrained model is not measured, "
            "so a gap within that spread may be judged as a difference (use --references 2 or more)"
        )
    return items
