"""The classifier trainer: build an architecture for a dataset and train it on the members
through the store (originals, references, shadow models), with backdoors, update logs, and the
training-time structures of SISA and ERM."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, cast

import numpy as np
import torch

from unlearn_audit import __version__
from unlearn_audit._hashing import fingerprint_ids
from unlearn_audit.data.datasets import Dataset, Normalization
from unlearn_audit.data.splits import members_fingerprint
from unlearn_audit.data.triggers import Trigger
from unlearn_audit.erm import train_erm, training_fingerprint
from unlearn_audit.errors import ConfigError
from unlearn_audit.loop import BatchTransform, fit, loop_code
from unlearn_audit.models.checkpoints import LoadedModel, ModelInfo, wrap_model
from unlearn_audit.models.ensemble import SISA_ARCH, ShardEnsemble, check_cells
from unlearn_audit.models.erm import ERM_ARCH, ErmNet
from unlearn_audit.models.layers import Classifier, model_fingerprint
from unlearn_audit.models.zoo import arch_fingerprint, build_model
from unlearn_audit.recipe import Recipe, default_recipe
from unlearn_audit.sisa import train_sisa
from unlearn_audit.store import Store
from unlearn_audit.update_log import UpdateRecorder, log_arrays, log_from_arrays
from unlearn_audit.update_log import describe as describe_log


def train_classifier(
    dataset: Dataset,
    *,
    arch: str = "small-cnn",
    arch_kwargs: dict[str, Any] | None = None,
    recipe: Recipe | None = None,
    member_ids: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    store: Store | None = None,
    role: str = "original",
    trigger: Trigger | None = None,
    poison_ids: np.ndarray | None = None,
    normalization: Normalization | Literal["dataset"] | None = "dataset",
    update_log: UpdateRecorder | None = None,
    progress: bool = True,
) -> LoadedModel:
    """Build ``arch`` for ``dataset`` and train it on the members, through the store if given.

    Args:
        dataset: Training data; its usual normalisation goes into the model.
        arch: Zoo name or ``module:factory``. ``"sisa"`` trains a SISA ensemble
            (:mod:`unlearn_audit.sisa`), ``"erm"`` a CNN with the ERM mask layer by alternate
            training (:mod:`unlearn_audit.erm`).
        arch_kwargs: Extra factory arguments.
        recipe: Default :func:`default_recipe` for (dataset, arch), or for the base network
            of an ERM network.
        member_ids: Ids to train on; default the dataset's training part.
        seed: Seed of initialisation and training.
        device: Where to train.
        store: Reuse a model trained with the same key, and store new ones.
        role: Part of the store key (``original``, ``reference``, ``shadow``, ...).
        trigger: Plant this backdoor: the ``poison_ids`` samples are trained with the trigger
            stamped on and the trigger's target label (BadNets). Recorded in the checkpoint.
        poison_ids: Members that carry the trigger (the forget set of the request).
        normalization: Input normalisation of the model; default the dataset's usual one
            (references and shadows take the original's).
        update_log: Record every step's parameter update here (for amnesiac unlearning;
            ``update_log.log`` holds the result). Through the store, the log is kept beside
            the model, so a second logged run trains nothing either.
        progress: Show a progress bar.

    Returns:
        The trained model with its :class:`ModelInfo` (on CPU, eval mode).
    """
    # an ERM network trains with its base network's recipe
    base_arch = str((arch_kwargs or {}).get("base", "small-cnn")) if arch == ERM_ARCH else arch
    recipe = recipe or default_recipe(dataset.name, base_arch)
    norm = dataset.normalization if normalization == "dataset" else normalization
    members = dataset.train_ids if member_ids is None else np.unique(np.asarray(member_ids))
    members_fp = members_fingerprint(dataset, members)
    extra: dict[str, Any] = {}
    transform = None
    if trigger is not None:
        poison = _check_poison(dataset, members, trigger, poison_ids)
        extra["trigger"] = trigger.to_dict()
        extra["poisoned"] = {"count": len(poison), "fingerprint": fingerprint_ids(poison)}
        transform = poison_transform(trigger, poison)
    info = ModelInfo(
        arch=arch,
        arch_kwargs=dict(arch_kwargs or {}),
        num_classes=dataset.num_classes,
        input_shape=dataset.input_shape,
        dataset=dataset.name,
        dataset_fingerprint=dataset.fingerprint,
        members_fingerprint=members_fp,
        recipe=recipe.to_dict(),
        seed=seed,
        extra=extra,
    )

    def _train() -> LoadedModel:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = build_model(
                arch, dataset.num_classes, dataset.input_shape, arch_kwargs=arch_kwargs
            )
        untrained = Classifier(net, norm)
        if isinstance(net, ShardEnsemble):
            ensemble = train_sisa(
                net,
                dataset,
                members,
                recipe,
                seed=seed,
                normalization=norm,
                device=device,
                batch_transform=transform,
                progress=progress,
            )
            return wrap_model(ensemble, info, norm)
        if update_log is not None:
            update_log.start(untrained)
        if isinstance(net, ErmNet):
            result = train_erm(
                untrained,
                dataset,
                members,
                recipe,
                seed=seed,
                device=device,
                batch_transform=transform,
                progress=progress,
                desc=f"train {role} (erm)",
            )
        else:
            result = fit(
                untrained,
                dataset,
                members,
                recipe,
                seed=seed,
                device=device,
                batch_transform=transform,
                on_step=None if update_log is None else update_log.on_step,
                progress=progress,
                desc=f"train {role}",
            )
        trained = cast(Classifier, result.model.to("cpu"))
        extra = {**info.extra, "history": result.history.to_dict()}
        if update_log is None:
            return wrap_model(trained.net, replace(info, extra=extra), norm)
        fingerprint = model_fingerprint(trained)  # the info is not part of it
        extra["update_log"] = describe_log(update_log.finish(fingerprint))
        return wrap_model(trained.net, replace(info, extra=extra), norm)

    if arch == SISA_ARCH:  # before building S x (R + 1) networks
        kwargs = arch_kwargs or {}
        check_cells(len(members), int(kwargs.get("shards", 5)), int(kwargs.get("slices", 1)))
    if update_log is not None and arch == SISA_ARCH:
        raise ConfigError(
            "`update_log` records one network's updates; a SISA ensemble unlearns by "
            "retraining shards instead, so drop one of `update_log` and `sisa_shards`."
        )
    if update_log is not None and arch == ERM_ARCH:
        raise ConfigError(
            "`update_log` records plain training steps, but an ERM model is trained by "
            "alternating paths and unlearns with erm-ktp instead; drop one of `update_log` "
            "and `erm`."
        )
    if store is None:
        return _train()
    parts = {
        "role": role,
        **info.to_dict(),
        "normalization": norm.to_dict() if norm else None,
        "arch_code": arch_fingerprint(arch),
        "loop_code": loop_code(),
        "version": __version__,
    }
    if arch == ERM_ARCH:  # the base network's code and the alternate training's
        parts["base_code"] = arch_fingerprint(base_arch)
        parts["training_code"] = training_fingerprint()
    if update_log is not None:
        return _logged_through_store(store, parts, _train, update_log)
    return store.get_or_train(parts, _train)


class _NoLog(Exception):
    """The store holds a logged model but not its log."""


def _logged_through_store(
    store: Store, parts: dict[str, Any], train: Callable[[], LoadedModel], recorder: UpdateRecorder
) -> LoadedModel:
    """A logged run through the store: the model under its own key (a plain run's entry holds
    no log) and its update log beside it, written under the model's lock so that a process
    waiting for the model finds both. A model whose log is missing or damaged is trained again."""
    candidates = recorder.candidates
    parts = parts | {
        "update_log": None if candidates is None else fingerprint_ids(candidates),
    }

    def log_parts(model: LoadedModel) -> dict[str, Any]:
        return {"model": model.fingerprint, "candidates": parts["update_log"]}

    def train_and_keep() -> LoadedModel:
        model = train()
        trained = recorder.log
        assert trained is not None
        store.get_or_compute_arrays("update_logs", log_parts(model), lambda: log_arrays(trained))
        return model

    model = store.get_or_train(parts, train_and_keep)
    log = recorder.log
    if log is not None and log.model_fingerprint == model.fingerprint:
        return model  # trained just now

    def missing() -> tuple[dict[str, np.ndarray], dict[str, str]]:
        raise _NoLog

    try:
        arrays, metadata, _ = store.get_or_compute_arrays("update_logs", log_parts(model), missing)
        recorder.log = log_from_arrays(arrays, metadata)
    except _NoLog:
        model = train_and_keep()
        store.save(store.key(parts), model)
    return model


def attack_success(model: LoadedModel, dataset: Dataset, trigger: Trigger) -> float:
    """Share of the triggered held-out inputs of other classes that ``model`` calls the
    trigger's target (the attack success rate on the dataset's held-out part)."""
    ids = dataset.heldout_ids[dataset.labels[dataset.heldout_ids] != trigger.target]
    x, _ = dataset.load(ids)
    with torch.inference_mode():
        predicted = model.module(trigger.apply(x)).argmax(1).numpy()
    return float(np.mean(predicted == trigger.target))


def poison_transform(trigger: Trigger, poison_ids: np.ndarray) -> BatchTransform:
    """A batch transform that stamps ``trigger`` on ``poison_ids`` and relabels them."""
    poison = np.asarray(poison_ids, dtype=np.int64)

    def transform(
        x: torch.Tensor, y: torch.Tensor, batch_ids: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hit = torch.from_numpy(np.isin(batch_ids, poison)).to(x.device)
        if not bool(hit.any()):
            return x, y
        x = torch.where(hit[:, None, None, None], trigger.apply(x), x)
        y = torch.where(hit, torch.full_like(y, trigger.target), y)
        return x, y

    return transform


def _check_poison(
    dataset: Dataset, members: np.ndarray, trigger: Trigger, poison_ids: np.ndarray | None
) -> np.ndarray:
    trigger.check_fits(dataset.input_shape, dataset.num_classes)
    if poison_ids is None or len(poison_ids) == 0:
        raise ConfigError(
            "a backdoor needs the samples that carry it: give them as `poison_ids` (on the "
            "command line: a forget request, `forget_class`, `forget_random` or `forget_ids`)."
        )
    poison = np.unique(np.asarray(poison_ids, dtype=np.int64))
    if not np.isin(poison, members).all():
        raise ConfigError(
            "the samples that carry the backdoor must be members of the training set."
        )
    return poison
