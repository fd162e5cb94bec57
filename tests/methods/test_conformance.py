"""What every registered method promises, whatever it does (one epoch each, to stay fast)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from methods import METHODS, UnlearnResult, unlearn
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint
from unlearn_audit.models.layers import model_fingerprint

ALL_METHODS = METHODS.names()
QUICK = {"epochs": "1"}  # a CLI-style string: it must arrive as the int 1


def _run(method: str, original: LoadedModel, dataset: Dataset, splits: Splits) -> UnlearnResult:
    return unlearn(method, original, dataset, splits, hyperparameters=QUICK, seed=0)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_returns_a_new_model_and_records_the_run(
    method: str, original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    before = {k: v.clone() for k, v in original.module.state_dict().items()}

    result = _run(method, original, digits, class_splits)

    model = result.model
    assert model is not original and model.module is not original.module
    assert model.fingerprint != original.fingerprint
    assert model.fingerprint == model_fingerprint(model.module)
    # the original is untouched: same fingerprint, same tensors
    assert model_fingerprint(original.module) == original.fingerprint
    after = original.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the new model is ready for the audit: CPU, eval mode, same normalisation
    assert not model.module.training
    assert all(t.device.type == "cpu" for t in model.module.state_dict().values())
    assert model.normalization == original.normalization
    # hyperparameters: the defaults with the override, converted to the default's type
    spec = METHODS.get(method)
    assert result.hyperparameters == {**spec.defaults, "epochs": 1}
    assert type(result.hyperparameters["epochs"]) is int
    # info: the original's, plus the record the efficiency check reads
    record = model.info.extra["unlearning"]
    assert record == {
        "method": method,
        "hyperparameters": result.hyperparameters,
        "seconds": result.seconds,
        "seed": 0,
    }
    assert isinstance(record["seconds"], float) and record["seconds"] > 0
    json.dumps(model.info.to_dict())
    rest = {k: v for k, v in model.info.extra.items() if k != "unlearning"}
    assert rest == original.info.extra
    assert model.info.arch == original.info.arch
    assert model.info.members_fingerprint == original.info.members_fingerprint
    assert "unlearning" not in original.info.extra


@pytest.mark.parametrize("method", ALL_METHODS)
def test_deterministic_under_the_seed(
    method: str, original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    first = _run(method, original, digits, sample_splits)
    second = _run(method, original, digits, sample_splits)
    assert first.model.fingerprint == second.model.fingerprint
    assert first.model.fingerprint != original.fingerprint


@pytest.mark.parametrize("method", ALL_METHODS)
def test_unknown_hyperparameter(
    method: str, original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    with pytest.raises(ConfigError, match=rf"method '{method}' has no hyperparameter 'nope'.*"):
        unlearn(method, original, digits, class_splits, hyperparameters={"nope": "1"})


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize(("key", "value"), [("epochs", "0"), ("lr", "-1"), ("batch_size", "0")])
def test_bad_shared_hyperparameters(
    method: str,
    key: str,
    value: str,
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
) -> None:
    with pytest.raises(ConfigError, match=rf"^`{key}` must be"):
        unlearn(method, original, digits, class_splits, hyperparameters={key: value})


def test_saved_result_keeps_the_record(
    original: LoadedModel, digits: Dataset, class_splits: Splits, tmp_path: Path
) -> None:
    """What `unlearn-audit unlearn` does: run, then save_checkpoint."""
    result = _run("finetune", original, digits, class_splits)
    path = save_checkpoint(result.model, tmp_path / "unlearned.safetensors")
    loaded = load_checkpoint(path, dataset=digits)
    assert loaded.fingerprint == result.model.fingerprint
    assert loaded.info.extra["unlearning"] == result.model.info.extra["unlearning"]


# What pyproject.toml declares under [project.entry-points."unlearn_audit.methods"]: the core
# (CLI) finds the bundled methods there, since it may not import this package.
ENTRY_POINTS = {
    "finetune": "methods.finetune:finetune",
    "neggrad": "methods.neggrad:neggrad",
    "neggrad-plus": "methods.neggrad:neggrad_plus",
    "random-labels": "methods.random_labels:random_labels",
}


@pytest.mark.parametrize(("name", "target"), sorted(ENTRY_POINTS.items()))
def test_entry_point_targets_are_the_specs(name: str, target: str) -> None:
    module, _, attr = target.partition(":")
    assert getattr(importlib.import_module(module), attr) is METHODS.get(name)


def test_every_method_has_an_entry_point() -> None:
    assert sorted(ENTRY_POINTS) == ALL_METHODS


def test_apply_is_what_entry_point_consumers_call(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    spec = METHODS.get("neggrad")
    result = spec.apply(
        original,
        digits,
        class_splits,
        hyperparameters={"lr": "0.001", "epochs": "2"},
        seed=3,
        device=torch.device("cpu"),
        progress=False,
    )
    direct = unlearn(
        "neggrad",
        original,
        digits,
        class_splits,
        hyperparameters={"lr": 0.001, "epochs": 2},
        seed=3,
    )
    assert result.model.fingerprint == direct.model.fingerprint
    assert result.model.info.extra["unlearning"]["hyperparameters"]["lr"] == 0.001
    assert result.model.info.extra["unlearning"]["seed"] == 3
