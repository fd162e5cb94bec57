"""What every registered method promises, whatever it does (one epoch each, to stay fast).

Methods that need a training-time structure get an original that has it (an update log, a
SISA bundle); every other method works on the plain `original`.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from methods import METHODS, UnlearnResult, unlearn
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint
from unlearn_audit.models.layers import model_fingerprint
from unlearn_audit.registry import METHOD_PLUGINS
from unlearn_audit.sisa import sisa_ensemble

ALL_METHODS = METHODS.names()
# the training-time structure some methods need, and the option that provides it
PREREQUISITES = {"amnesiac": "--log-updates", "erm-ktp": "--erm", "sisa": "--sisa-shards"}
# invalid values of the hyperparameters many methods share
BAD_VALUES = {"epochs": "-1", "lr": "-1", "batch_size": "0"}


# cheaper settings of the methods whose cost does not come from epochs (CLI-style strings: each
# must arrive with its default's type)
_CHEAPER = {"fisher-forgetting": {"retain_fraction": "0.25"}}


def _quick(method: str) -> dict[str, str]:
    """One epoch where the method has epochs, and the cheaper settings above."""
    epochs = {"epochs": "1"} if "epochs" in METHODS.get(method).defaults else {}
    return epochs | _CHEAPER.get(method, {})


@pytest.fixture
def prepared(request: pytest.FixtureRequest) -> Callable[[str], LoadedModel]:
    """The original each method works on: with an update log, a SISA bundle or an ERM mask
    layer if it needs one. Asked for when a test needs it, so that a worker running a plain
    method does not train (or wait for another worker training) the special originals."""
    special = {"amnesiac": "logged_original", "sisa": "sisa_original", "erm-ktp": "erm_original"}
    return lambda method: request.getfixturevalue(special.get(method, "original"))


def _run(method: str, original: LoadedModel, dataset: Dataset, splits: Splits) -> UnlearnResult:
    return unlearn(method, original, dataset, splits, hyperparameters=_quick(method), seed=0)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_returns_a_new_model_and_records_the_run(
    method: str, prepared: Callable[[str], LoadedModel], digits: Dataset, class_splits: Splits
) -> None:
    original = prepared(method)
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
    given = {k: type(spec.defaults[k])(v) for k, v in _quick(method).items()}
    assert result.hyperparameters == {**spec.defaults, **given}
    assert all(type(result.hyperparameters[k]) is type(spec.defaults[k]) for k in given)
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


def _one_slice_request(sisa_original: LoadedModel, digits: Dataset) -> Splits:
    """Two members of shard 1's last slice (SISA's cost is the slices it retrains)."""
    ensemble = sisa_ensemble(sisa_original.module)
    assert ensemble is not None
    in_last = (ensemble.member_shard == 1) & (ensemble.member_slice == 1)
    return make_splits(digits, ForgetRequest.ids(ensemble.member_ids[in_last][:2].numpy()))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_deterministic_under_the_seed_whatever_the_callers_autograd_mode(
    method: str,
    prepared: Callable[[str], LoadedModel],
    digits: Dataset,
    class_splits: Splits,
    sample_splits: Splits,
) -> None:
    original = prepared(method)
    # a sample request where the method takes one (the harder case for seeding), else a class
    splits = sample_splits if "sample" in METHODS.get(method).scope else class_splits
    if method == "sisa":  # it retrains the slices that held the ids: two ids of one slice
        splits = _one_slice_request(original, digits)
    first = _run(method, original, digits, splits)
    with torch.inference_mode():  # a caller's mode: the method switches autograd back on
        second = _run(method, original, digits, splits)
    assert first.model.fingerprint == second.model.fingerprint
    assert first.model.fingerprint != original.fingerprint


@pytest.mark.parametrize("method", ALL_METHODS)
def test_scope_is_declared_and_enforced(
    method: str,
    prepared: Callable[[str], LoadedModel],
    digits: Dataset,
    class_splits: Splits,
    sample_splits: Splits,
) -> None:
    scope = METHODS.get(method).scope
    assert scope and set(scope) <= {"class", "sample"}
    if "sample" not in scope:
        with pytest.raises(ConfigError, match=r"supports only class requests.*sample request"):
            unlearn(method, prepared(method), digits, sample_splits, hyperparameters=_quick(method))
    if "class" not in scope:
        with pytest.raises(ConfigError, match=r"supports only sample requests.*class request"):
            unlearn(method, prepared(method), digits, class_splits, hyperparameters=_quick(method))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_unknown_hyperparameter(
    method: str, original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    with pytest.raises(ConfigError, match=rf"method '{method}' has no hyperparameter 'nope'.*"):
        unlearn(method, original, digits, class_splits, hyperparameters={"nope": "1"})


@pytest.mark.parametrize(
    ("method", "key"),
    [(m, k) for m in ALL_METHODS for k in BAD_VALUES if k in METHODS.get(m).defaults],
)
def test_bad_shared_hyperparameters(
    method: str,
    key: str,
    prepared: Callable[[str], LoadedModel],
    digits: Dataset,
    class_splits: Splits,
) -> None:
    with pytest.raises(ConfigError, match=rf"^`{key}` must be"):
        unlearn(
            method, prepared(method), digits, class_splits, hyperparameters={key: BAD_VALUES[key]}
        )


@pytest.mark.parametrize(("method", "option"), sorted(PREREQUISITES.items()))
def test_missing_prerequisite_names_the_training_option(
    method: str, option: str, original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    with pytest.raises(ConfigError, match=f"needs .*{option}"):
        unlearn(method, original, digits, class_splits)


def test_saved_result_keeps_the_record(
    original: LoadedModel, digits: Dataset, class_splits: Splits, tmp_path: Path
) -> None:
    """What `unlearn-audit unlearn` does: run, then save_checkpoint."""
    result = _run("finetune", original, digits, class_splits)
    path = save_checkpoint(result.model, tmp_path / "unlearned.safetensors")
    loaded = load_checkpoint(path, dataset=digits)
    assert loaded.fingerprint == result.model.fingerprint
    assert loaded.info.extra["unlearning"] == result.model.info.extra["unlearning"]


def _entry_points() -> dict[str, str]:
    """What pyproject.toml declares under [project.entry-points."unlearn_audit.methods"]: the
    core (CLI) finds the bundled methods there, since it may not import this package."""
    with open(Path(__file__).parents[2] / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    return dict(project["entry-points"]["unlearn_audit.methods"])


@pytest.mark.parametrize(("name", "target"), sorted(_entry_points().items()))
def test_entry_point_targets_are_the_specs(name: str, target: str) -> None:
    module, _, attr = target.partition(":")
    assert getattr(importlib.import_module(module), attr) is METHODS.get(name)


def test_every_method_has_an_entry_point() -> None:
    assert sorted(_entry_points()) == ALL_METHODS


def test_the_core_finds_every_bundled_method() -> None:
    """The CLI's registry (entry points only) lists the same methods as this package."""
    assert METHOD_PLUGINS.names() == ALL_METHODS
    assert all(METHOD_PLUGINS.get(name) is METHODS.get(name) for name in ALL_METHODS)


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
