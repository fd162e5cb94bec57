"""The registry, hyperparameter checks, scope checks and guards of :func:`methods.unlearn`."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import torch

import methods.base as base
from methods import METHODS, MethodSpec, parse_hyperparameters, register_method, unlearn
from methods.base import check_hyperparameters
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError, RegistryError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.registry import Registry

SPEC = MethodSpec(
    name="toy",
    scope=("class", "sample"),
    needs=("retain",),
    defaults={"lr": 0.01, "epochs": 5, "early_stop": True, "mode": "fast"},
    paper="none",
    summary="a toy",
    run=lambda *args, **kwargs: None,  # type: ignore[arg-type,return-value]
)


@pytest.fixture()
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry[MethodSpec]:
    """A private METHODS, so toy methods never leak into the real registry."""
    fresh: Registry[MethodSpec] = Registry("method")
    monkeypatch.setattr(base, "METHODS", fresh)
    return fresh


def _nudge(original: LoadedModel) -> Classifier:
    """A copy of the original with one weight changed."""
    module = copy.deepcopy(original.module)
    with torch.no_grad():
        next(module.parameters()).add_(1e-3)
    return module


def test_bundled_methods_are_registered() -> None:
    assert {"finetune", "neggrad", "neggrad-plus", "random-labels"} <= set(METHODS.names())
    for name, spec in METHODS.items():
        assert isinstance(spec, MethodSpec)
        assert spec.name == name
        assert spec.scope and set(spec.scope) <= {"class", "sample"}
        assert spec.paper and spec.summary and "\n" not in spec.summary


def test_unknown_method_suggests_close_names(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    with pytest.raises(RegistryError, match="Did you mean 'neggrad'"):
        unlearn("negrad", original, digits, class_splits)


def test_parse_hyperparameters() -> None:
    parsed = parse_hyperparameters(["lr=0.01", " batch-size = 64 ", "note=a=b", "empty="])
    assert parsed == {"lr": "0.01", "batch_size": "64", "note": "a=b", "empty": ""}
    assert parse_hyperparameters([]) == parse_hyperparameters(None) == {}


def test_one_registry_and_one_parser_for_the_core_and_the_methods() -> None:
    """The CLI (core) and this package share the registry and the --hp parser."""
    import unlearn_audit.hyperparameters
    import unlearn_audit.registry

    assert METHODS is unlearn_audit.registry.METHOD_PLUGINS
    assert parse_hyperparameters is unlearn_audit.hyperparameters.parse_hyperparameters


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        (["lr0.01"], r"^`hp` must be key=value, e.g. lr=0.01; got 'lr0.01'\.$"),
        (["=0.01"], r"`hp` must be key=value"),
        (["lr=1", "lr=2"], r"gives 'lr' twice"),
    ],
)
def test_parse_hyperparameters_errors(pairs: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_hyperparameters(pairs)


def test_hyperparameters_are_converted_to_the_defaults_types() -> None:
    values = check_hyperparameters(
        SPEC, {"lr": "1e-3", "epochs": "3", "early_stop": "false", "mode": "slow"}
    )
    assert values == {"lr": 0.001, "epochs": 3, "early_stop": False, "mode": "slow"}
    assert type(values["lr"]) is float and type(values["epochs"]) is int
    assert check_hyperparameters(SPEC, {"lr": 1, "epochs": 2.0}) == {
        "lr": 1.0,
        "epochs": 2,
        "early_stop": True,
        "mode": "fast",
    }
    assert check_hyperparameters(SPEC, None) == SPEC.defaults


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"lr": "fast"}, r"^`lr` must be a number; got 'fast'\.$"),
        ({"lr": "inf"}, r"^`lr` must be a finite number; got 'inf'\.$"),
        ({"lr": True}, r"^`lr` must be a number; got True\.$"),
        ({"epochs": "2.5"}, r"^`epochs` must be an integer; got '2.5'\.$"),
        ({"epochs": None}, r"^`epochs` must be an integer; got None\.$"),
        ({"early_stop": "maybe"}, r"^`early_stop` must be true or false; got 'maybe'\.$"),
        ({"mode": 3}, r"^`mode` must be a string; got 3\.$"),
    ],
)
def test_bad_hyperparameter_values(given: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_hyperparameters(SPEC, given)


def test_unknown_hyperparameter_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        check_hyperparameters(SPEC, {"learning_rate": 0.1})
    message = str(info.value)
    assert "'learning_rate'" in message
    assert "Known: early_stop, epochs, lr, mode." in message


def test_class_only_method_refuses_a_sample_request(
    registry: Registry[MethodSpec],
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    sample_splits: Splits,
) -> None:
    @register_method("class-only", scope=("class",), needs=(), defaults={}, paper="-", summary="-")
    def class_only(
        original: LoadedModel,
        dataset: Dataset,
        splits: Splits,
        *,
        seed: int,
        device: torch.device,
        progress: bool,
    ) -> Classifier:
        return _nudge(original)

    assert registry.get("class-only") is class_only
    with pytest.raises(ConfigError, match="supports only class requests, but this is a sample"):
        unlearn("class-only", original, digits, sample_splits)
    result = unlearn("class-only", original, digits, class_splits)
    assert result.model.fingerprint != original.fingerprint


def test_register_method_checks_the_signature(registry: Registry[MethodSpec]) -> None:
    with pytest.raises(TypeError, match="scope"):
        register_method("bad", scope=("everything",), needs=(), defaults={}, paper="", summary="")  # type: ignore[arg-type]

    def no_lr(original: Any, dataset: Any, splits: Any, *, seed: int, device: Any, progress: bool):  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(TypeError, match="do not match"):
        register_method(
            "bad", scope=("class",), needs=(), defaults={"lr": 0.1}, paper="", summary=""
        )(no_lr)
    assert "bad" not in registry


def test_guards_against_methods_that_misbehave(
    registry: Registry[MethodSpec], original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    snapshot = copy.deepcopy(original.module.state_dict())

    def in_place(original, dataset, splits, *, seed, device, progress):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            next(original.module.parameters()).add_(1.0)
        return original.module

    def not_a_classifier(original, dataset, splits, *, seed, device, progress):  # type: ignore[no-untyped-def]
        return original.module.net

    register_method("in-place", scope=("class",), needs=(), defaults={}, paper="", summary="")(
        in_place
    )
    register_method("bare", scope=("class",), needs=(), defaults={}, paper="", summary="")(
        not_a_classifier
    )
    try:
        with pytest.raises(RuntimeError, match="modified the original model in place"):
            unlearn("in-place", original, digits, class_splits)
    finally:
        original.module.load_state_dict(snapshot)  # the session fixture must stay intact
    with pytest.raises(TypeError, match="not a Classifier"):
        unlearn("bare", original, digits, class_splits)


def test_refuses_splits_of_another_dataset_and_bad_seeds(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    other = dataclasses.replace(class_splits, dataset_fingerprint="0" * 16)
    with pytest.raises(ConfigError, match="splits were made for another dataset"):
        unlearn("finetune", original, digits, other)
    with pytest.raises(ConfigError, match=r"`seed` must be an integer >= 0; got -1\."):
        unlearn("finetune", original, digits, class_splits, seed=-1)
