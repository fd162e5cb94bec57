"""Stochastic-teacher and bad-teacher unlearning, and the random network both distil from.

The `original` small-cnn classifies 0.978 of the forget-class (digit 3) test samples and 0.989
of the other test samples; on the three-class request (1, 3, 8) 0.985 and 0.989; on the 10%
random request it gets 1.000 of the forget set and 0.987 of test. A model retrained without
the forget set gets 0.000 on a forgotten class, and 0.97-1.00 of forgotten random samples.

Margins were checked over seeds 0-3 at the defaults; the tests run seed 0. Observed:

- bad-teacher, class 3: forget-class test 0.000, forget set 0.000; retain-class test
  0.986-0.992. Classes 1, 3, 8: forget-class test 0.100-0.138 (about chance: the incompetent
  teacher is close to uniform, so its argmax is a coin toss, not "never the true class"),
  forget set 0.16-0.23; retain-class test 0.985-0.989. 10% random: test 0.955-0.965, forget
  set 0.97-0.98; the forget set's mean CE rises from 0.0003 to 0.11-0.13 (the unlearned
  model's test CE is 0.13-0.14, a retrained model's CE on these samples 0.006-0.08: the
  high-entropy push of the pitfalls). 10 epochs take test to 0.94-0.95.
- stochastic-teacher (erase Adam 1e-2 with BatchNorm statistics frozen, rebuild Adam 3e-4 for
  6 epochs), class 3: the erase alone (``epochs=0``) stops after one epoch at forget-set and
  forget-class test accuracy 0.000, and takes the retain classes down with it (0.105-0.153);
  the rebuild restores them, retain-class test 0.980-0.989, and the class stays at 0.000.
  Classes 1, 3, 8: forget-class test 0.000 after the rebuild, retain-class test 0.948-0.989.
  With the settings METHODS.md suggests (Adam 1e-4, statistics not frozen, rebuild 1e-4 for 3
  epochs) the class came back to 0.956-0.978: see the method's docstring.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import methods._training
import methods.teachers
from methods import METHODS as METHODS_REGISTRY
from methods import unlearn
from methods._training import random_subset
from methods.teachers import mixed_teacher_logits, random_network
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import model_fingerprint
from unlearn_audit.train import accuracy

assert methods.teachers  # registrations

SEED = 0
CPU = torch.device("cpu")
METHODS = ("stochastic-teacher", "bad-teacher")


def _class_accuracy(model: nn.Module, dataset: Dataset, splits: Splits) -> dict[str, float]:
    return {
        name: accuracy(model, dataset, splits.get(name))
        for name in ("forget", "test_forget_class", "test_retain_class")
    }


def _run(
    method: str, original: LoadedModel, dataset: Dataset, splits: Splits, **hp: Any
) -> nn.Module:
    return unlearn(method, original, dataset, splits, hyperparameters=hp, seed=SEED).model.module


@pytest.fixture(scope="module")
def three_classes(digits: Dataset) -> Splits:
    return make_splits(digits, ForgetRequest.classes("1,3,8"))


@pytest.fixture(scope="module")
def three_class_accuracy(original: LoadedModel, digits: Dataset, three_classes: Splits) -> float:
    return accuracy(original.module, digits, three_classes.get("test_retain_class"))


# --- the random network ----------------------------------------------------------------------


def test_random_network_is_a_fresh_seeded_copy_of_the_architecture(original: LoadedModel) -> None:
    state = torch.random.get_rng_state()
    first = random_network(original, seed=3, method="x")
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    again = random_network(original, seed=3, method="x")
    other = random_network(original, seed=4, method="x")
    assert model_fingerprint(first) == model_fingerprint(again) != model_fingerprint(other)
    assert model_fingerprint(first) != original.fingerprint
    assert first.normalization == original.normalization
    shapes = {k: v.shape for k, v in original.module.state_dict().items()}
    assert {k: v.shape for k, v in first.state_dict().items()} == shapes


@pytest.mark.parametrize("method", METHODS)
def test_an_original_without_architecture_is_refused(
    method: str, original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    scripted = replace(original, info=replace(original.info, arch=None))
    spec = METHODS_REGISTRY.get(method)
    with pytest.raises(ConfigError, match=rf"^{method} needs an architecture"):
        spec.run(
            scripted, digits, class_splits, seed=0, device=CPU, progress=False, **spec.defaults
        )


# --- bad teacher -----------------------------------------------------------------------------


def test_mixed_teacher_logits_pick_each_rows_teacher() -> None:
    good = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    bad = torch.zeros(3, 2)
    tags = torch.tensor([True, False, True])
    mixed = mixed_teacher_logits(good, bad, tags)
    assert torch.equal(mixed, torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]))
    # the repo's mixture of softened posteriors, tag * p_bad + (1 - tag) * p_good
    gen = torch.Generator().manual_seed(0)
    good, bad = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    tags = torch.rand(8, generator=gen) < 0.5
    for temperature in (1.0, 4.0):
        tag = tags.float()[:, None]
        repo = tag * (bad / temperature).softmax(1) + (1 - tag) * (good / temperature).softmax(1)
        ours = (mixed_teacher_logits(good, bad, tags) / temperature).softmax(1)
        assert torch.allclose(ours, repo, atol=1e-6)


def test_bad_teacher_trains_on_forget_and_a_retain_subset(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[np.ndarray] = []
    real = methods._training.fit

    def spy(model: nn.Module, dataset: Dataset, ids: np.ndarray, *args: Any, **kw: Any) -> Any:
        seen.append(np.asarray(ids))
        return real(model, dataset, ids, *args, **kw)

    monkeypatch.setattr(methods._training, "fit", spy)
    _run("bad-teacher", original, digits, class_splits, epochs=1)
    (ids,) = seen
    assert np.isin(class_splits.forget, ids).all()
    rest = np.setdiff1d(ids, class_splits.forget)
    assert np.isin(rest, class_splits.retain).all()
    expected = random_subset(class_splits.retain, 0.3, np.random.default_rng(SEED))
    assert np.array_equal(rest, expected)


def test_bad_teacher_forgets_a_class_and_keeps_the_rest(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    acc = _class_accuracy(_run("bad-teacher", original, digits, class_splits), digits, class_splits)
    assert acc["test_forget_class"] <= 0.05
    assert acc["forget"] <= 0.05
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.02


def test_bad_teacher_forgets_three_classes_to_about_chance(
    original: LoadedModel, digits: Dataset, three_classes: Splits, three_class_accuracy: float
) -> None:
    acc = _class_accuracy(
        _run("bad-teacher", original, digits, three_classes), digits, three_classes
    )
    assert acc["test_forget_class"] <= 0.2  # chance is 0.1; retraining gives 0
    assert acc["forget"] <= 0.3
    assert acc["test_retain_class"] >= three_class_accuracy - 0.02


def test_bad_teacher_on_random_samples_keeps_test_accuracy(
    original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    model = _run("bad-teacher", original, digits, sample_splits)
    before = accuracy(original.module, digits, sample_splits.test)
    assert accuracy(model, digits, sample_splits.test) >= before - 0.05
    # the forget set is not driven to 0, but its outputs are pulled towards the random
    # network's: its cross-entropy rises well above the original's
    assert accuracy(model, digits, sample_splits.forget) >= 0.9
    with torch.no_grad():
        x, y, _ = next(digits.batches(sample_splits.forget, len(sample_splits.forget)))
        after = nn.functional.cross_entropy(model.eval()(x), y).item()
        start = nn.functional.cross_entropy(original.module(x), y).item()
    assert after >= 10 * start


# --- stochastic teacher ----------------------------------------------------------------------


def test_stochastic_teacher_erase_stops_at_chance(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    epochs: list[int] = []
    real = methods._training.fit

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        epochs.append(len(result.history.epochs))
        return result

    monkeypatch.setattr(methods._training, "fit", spy)
    erased = _run("stochastic-teacher", original, digits, class_splits, epochs=0)
    acc = _class_accuracy(erased, digits, class_splits)
    assert acc["forget"] <= 0.1
    assert acc["test_forget_class"] <= 0.1
    # without the early stop the erase runs all its epochs
    _run("stochastic-teacher", original, digits, class_splits, epochs=0, early_stop=False)
    assert epochs[0] < 30 and epochs[1] == 30


def _bn_statistics(model: nn.Module) -> list[torch.Tensor]:
    return [
        buffer
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for buffer in (module.running_mean, module.running_var)
        if buffer is not None
    ]


def test_stochastic_teacher_erase_changes_weights_not_statistics(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    before = _bn_statistics(original.module)
    assert before  # small-cnn has BatchNorm
    frozen = _run("stochastic-teacher", original, digits, class_splits, epochs=0)
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_statistics(frozen), strict=True))
    assert model_fingerprint(frozen) != original.fingerprint  # the weights moved
    drifting = _run("stochastic-teacher", original, digits, class_splits, epochs=0, freeze_bn=False)
    assert not all(torch.equal(a, b) for a, b in zip(before, _bn_statistics(drifting), strict=True))


def test_stochastic_teacher_rebuild_keeps_the_rest_and_the_class_stays_forgotten(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    acc = _class_accuracy(
        _run("stochastic-teacher", original, digits, class_splits), digits, class_splits
    )
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.02
    assert acc["test_forget_class"] <= 0.05


def test_stochastic_teacher_on_three_classes(
    original: LoadedModel, digits: Dataset, three_classes: Splits, three_class_accuracy: float
) -> None:
    model = _run("stochastic-teacher", original, digits, three_classes)
    acc = _class_accuracy(model, digits, three_classes)
    assert acc["test_retain_class"] >= three_class_accuracy - 0.06
    assert acc["test_forget_class"] <= 0.05


def test_stochastic_teacher_takes_only_class_requests(
    original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    with pytest.raises(ConfigError, match="supports only class requests"):
        unlearn("stochastic-teacher", original, digits, sample_splits)


# --- both ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_the_seed_fixes_the_result(
    method: str, original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    def run(seed: int) -> str:
        hp = {"epochs": 1}
        result = unlearn(method, original, digits, class_splits, hyperparameters=hp, seed=seed)
        return result.model.fingerprint

    first = run(0)
    assert run(0) == first
    assert run(1) != first
    assert model_fingerprint(original.module) == original.fingerprint


BAD = [
    (method, {key: value}, rf"^`{key}` must be")
    for method in METHODS
    for key, value in (("epochs", -1), ("lr", 0), ("lr", -1), ("batch_size", 0))
] + [
    ("stochastic-teacher", {"erase_lr": 0}, r"^`erase_lr` must be a number > 0; got 0\.0\."),
    ("stochastic-teacher", {"erase_epochs": 0}, r"^`erase_epochs` must be an integer >= 1"),
    ("stochastic-teacher", {"alpha": -1}, r"^`alpha` must be a finite number >= 0; got -1\.0\."),
    ("stochastic-teacher", {"early_stop": "maybe"}, r"^`early_stop` must be true or false"),
    ("stochastic-teacher", {"freeze_bn": "maybe"}, r"^`freeze_bn` must be true or false"),
    ("bad-teacher", {"epochs": 0}, r"^`epochs` must be an integer >= 1; got 0\."),
    ("bad-teacher", {"temperature": 0}, r"^`temperature` must be a finite number > 0"),
    ("bad-teacher", {"retain_fraction": 0}, r"^`retain_fraction` must be a number in \(0, 1\]"),
    ("bad-teacher", {"retain_fraction": 1.5}, r"^`retain_fraction` must be a number in \[0, 1\]"),
]


@pytest.mark.parametrize(("method", "hp", "message"), BAD)
def test_bad_hyperparameters(
    method: str,
    hp: dict[str, Any],
    message: str,
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
) -> None:
    with pytest.raises(ConfigError, match=message):
        unlearn(method, original, digits, class_splits, hyperparameters=hp)
