"""Amnesiac unlearning (Graves, Nagisetty & Ganesh, AAAI 2021): undo the forgotten batches' updates.

Needs the update log of the original's training (``unlearn-audit train --log-updates``, which
writes ``MODEL.updates.safetensors`` next to the checkpoint). Unlearning subtracts, from the
trained weights, the parameter update of every logged step whose batch held a forgotten sample,
recalibrates BatchNorm on retain and, optionally, repairs with a few epochs of fine-tuning on
retain. Not to be confused with the "amnesiac" label some repositories give to random labels
(METHODS.md section 4).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import cast

import numpy as np
import torch

from methods._training import make_recipe, train_on
from methods.base import register_method
from methods.perturbation import recalibrate_batchnorm
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.update_log import UpdateLog, load_update_log, update_log_path

NO_LOG = (
    "the `amnesiac` method needs the update log of the original's training: train it with "
    "`unlearn-audit train --log-updates --out MODEL.safetensors` (the log goes next to it), or "
    "give the log's path with --hp update_log=PATH."
)


def find_update_log(original: LoadedModel, path: str) -> UpdateLog:
    """The log at ``path``, or next to the original's checkpoint; checked to be the original's.

    Raises:
        ConfigError: No log to be found, or a log written for another model.
    """
    if not path:
        if "update_log" not in original.info.extra or not original.source:
            raise ConfigError(NO_LOG)
        path = str(update_log_path(original.source))
    if not Path(path).expanduser().is_file():
        raise ConfigError(f"update log {path!r} does not exist. {NO_LOG}")
    log = load_update_log(path)
    if log.model_fingerprint != original.fingerprint:
        raise ConfigError(
            f"the update log {path!r} was written while training model "
            f"{log.model_fingerprint}, not this original ({original.fingerprint}); give the "
            "log written with this checkpoint."
        )
    return log


@register_method(
    "amnesiac",
    scope=("class", "sample"),
    needs=("the update log (train --log-updates)", "forget ids", "retain"),
    defaults={
        "update_log": "",
        "epochs": 5,
        "lr": 0.01,
        "batch_size": 64,
        "momentum": 0.9,
        "weight_decay": 5e-4,
    },
    paper="Amnesiac ML of Graves, Nagisetty & Ganesh, AAAI 2021 (lmgraves/AmnesiacML)",
    summary="subtract the logged updates of every batch that held a forgotten sample, then repair",
)
def amnesiac(
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    seed: int,
    device: torch.device,
    progress: bool,
    update_log: str,
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float,
    weight_decay: float,
) -> Classifier:
    """Subtract the forgotten batches' logged updates from a copy of ``original``, then repair.

    Every logged step whose batch holds a forgotten id is undone: its delta (weights after the
    step minus before) is subtracted. With momentum or Adam each step also moved later steps,
    so the subtraction is approximate (METHODS.md section 14, pitfalls). BatchNorm running
    statistics, which the log does not hold, are then re-estimated on retain, and ``epochs``
    of SGD fine-tuning on retain repair what the subtraction broke (the MNIST notebook trains
    10 more epochs; our default 5, at the fine-tune baseline's settings, recovers small-cnn on
    digits; 0 skips the repair). For a class request nearly every batch held the class,
    so the subtraction takes the network most of the way back to its initialisation and the
    repair does the rest.

    Args:
        original: The model the log was written for; not modified.
        dataset: Where the ids come from.
        splits: ``forget`` and ``retain``.
        seed: Seed of the repair's shuffles.
        device: Where to train.
        progress: Show a progress bar.
        update_log: Path of the log; empty: ``MODEL.updates.safetensors`` next to the
            original's checkpoint.
        epochs: Repair epochs on retain (0: none).
        lr: Constant SGD learning rate of the repair.
        batch_size: Retain samples per repair step.
        momentum: SGD momentum.
        weight_decay: L2 penalty.

    Returns:
        The copy with the updates removed (and repaired).

    Raises:
        ConfigError: No log, a log of another model, or forgotten ids that the log's
            candidate list did not cover (their steps were not kept).
    """
    recipe = make_recipe(
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        momentum=momentum,
        weight_decay=weight_decay,
        min_epochs=0,
    )
    log = find_update_log(original, update_log)
    if log.candidates is not None and not np.isin(splits.forget, log.candidates).all():
        missing = int((~np.isin(splits.forget, log.candidates)).sum())
        raise ConfigError(
            f"{missing} forgotten samples were not among the --log-candidates of the original's "
            "training, so the updates of their batches were not kept; retrain with "
            "--log-updates and candidates that cover the request."
        )
    model = copy.deepcopy(original.module)
    params = dict(model.named_parameters())
    if set(log.names) != set(params):
        raise ConfigError(
            "the update log names other parameters than the original has; give the log "
            "written with this checkpoint."
        )
    deltas = log.summed_delta(log.steps_with(splits.forget))
    with torch.no_grad():
        for name, delta in deltas.items():
            params[name].sub_(delta.to(params[name].dtype))
    recalibrate_batchnorm(model, dataset, splits.retain, batch_size)
    if recipe.epochs == 0:
        return cast(Classifier, model)
    return train_on(
        model,
        dataset,
        splits.retain,
        recipe,
        seed=seed,
        device=device,
        progress=progress,
        desc="unlearn amnesiac",
    )
