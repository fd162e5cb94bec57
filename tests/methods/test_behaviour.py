"""What each method does to a class request (forget digit 3), at its defaults and beyond.

The original classifies about 98% of the forget-class and of the retain-class test samples.
Margins were checked over seeds 0-2 (fine-tune 0-7); the tests run seed 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from methods import unlearn
from methods.neggrad import clamped_ascent_loss
from methods.random_labels import relabel_transform, wrong_labels
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.train import accuracy

from .conftest import FORGET_CLASS


def _test_accuracy(model: LoadedModel, dataset: Dataset, splits: Splits) -> dict[str, float]:
    return {
        name: accuracy(model.module, dataset, splits.get(name))
        for name in ("test_forget_class", "test_retain_class")
    }


def test_finetune_keeps_utility(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    # FT forgets only by catastrophic forgetting: a few epochs at the defaults leave most of
    # the forgotten class recognised (METHODS.md section 2, "weak on class forgetting"), so
    # only "no better than before" is asserted for the forget class.
    model = unlearn("finetune", original, digits, class_splits).model
    acc = _test_accuracy(model, digits, class_splits)
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.05
    # ... up to one sample: fine-tuning on retain can flip one borderline forget-class sample
    # either way (with the torch 2.14.1+cu130 wheel, seed 0 gives 44/45 against the original's
    # 43/45)
    one_sample = 1 / len(class_splits.test_forget_class)
    assert acc["test_forget_class"] <= original_accuracy["test_forget_class"] + one_sample + 1e-9


def test_neggrad_defaults_change_little(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    # lr 1e-4 with batch 256 is 5 steps on the 98 forget samples of digits: mild by design
    model = unlearn("neggrad", original, digits, class_splits).model
    acc = _test_accuracy(model, digits, class_splits)
    # ... up to one sample: fine-tuning on retain can flip one borderline forget-class sample
    # either way (with the torch 2.14.1+cu130 wheel, seed 0 gives 44/45 against the original's
    # 43/45)
    one_sample = 1 / len(class_splits.test_forget_class)
    assert acc["test_forget_class"] <= original_accuracy["test_forget_class"] + one_sample + 1e-9
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.05


def test_neggrad_stops_once_the_class_is_forgotten(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    stopped = unlearn(
        "neggrad", original, digits, class_splits, hyperparameters={"lr": 0.01, "epochs": 20}
    ).model
    assert accuracy(stopped.module, digits, class_splits.forget) <= 0.01
    acc = _test_accuracy(stopped, digits, class_splits)
    assert acc["test_forget_class"] <= 0.1
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.15
    # without early stopping the ascent keeps going and wrecks the other classes
    unstopped = unlearn(
        "neggrad",
        original,
        digits,
        class_splits,
        hyperparameters={"lr": 0.01, "epochs": 20, "early_stop": False},
    ).model
    damaged = _test_accuracy(unstopped, digits, class_splits)["test_retain_class"]
    assert damaged < acc["test_retain_class"] - 0.1


def test_clamped_ascent_loss_by_hand() -> None:
    # uniform logits over 4 classes: every sample's CE is ln 4 = 1.386 nats
    logits = torch.zeros(3, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2])
    assert clamped_ascent_loss(logits, y, 2.0).item() == pytest.approx(-math.log(4))
    capped = clamped_ascent_loss(logits, y, 1.0)
    assert capped.item() == pytest.approx(-1.0)
    capped.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0  # no push past the cap


def test_neggrad_cap_keeps_the_ascent_finite(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    wild = {"lr": 1.0, "epochs": 5, "batch_size": 16, "early_stop": False}
    model = unlearn("neggrad", original, digits, class_splits, hyperparameters=wild).model
    assert all(torch.isfinite(p).all() for p in model.module.parameters())
    with pytest.raises(ConfigError, match="training diverged"):
        unlearn(
            "neggrad",
            original,
            digits,
            class_splits,
            hyperparameters={**wild, "max_forget_loss": 1e30},
        )
    with pytest.raises(ConfigError, match=r"^`max_forget_loss` must be a finite number > 0"):
        unlearn("neggrad", original, digits, class_splits, hyperparameters={"max_forget_loss": 0})


def test_neggrad_plus_forgets_the_class_and_keeps_the_rest(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    model = unlearn("neggrad-plus", original, digits, class_splits).model
    acc = _test_accuracy(model, digits, class_splits)
    assert acc["test_forget_class"] <= 0.2
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.05


def test_neggrad_plus_checks_alpha(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    with pytest.raises(ConfigError, match=r"^`alpha` must be a number in \[0, 1\]; got 1.5\."):
        unlearn("neggrad-plus", original, digits, class_splits, hyperparameters={"alpha": 1.5})


def test_random_labels_forgets_the_class_and_keeps_the_rest(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    # the defaults (3 epochs of Adam 1e-4) are only 24 steps on digits: a clear drop ...
    model = unlearn("random-labels", original, digits, class_splits).model
    acc = _test_accuracy(model, digits, class_splits)
    assert acc["test_forget_class"] <= original_accuracy["test_forget_class"] - 0.15
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.03
    # ... and a few more epochs forget the class completely
    longer = unlearn(
        "random-labels", original, digits, class_splits, hyperparameters={"epochs": 10}
    ).model
    acc = _test_accuracy(longer, digits, class_splits)
    assert acc["test_forget_class"] <= 0.1
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.05


def test_random_labels_on_a_retain_subset(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    result = unlearn(
        "random-labels",
        original,
        digits,
        class_splits,
        hyperparameters={"retain_fraction": "0.3", "epochs": 1},
    )
    assert result.hyperparameters["retain_fraction"] == 0.3
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match="`retain_fraction` must be a number"):
            unlearn(
                "random-labels",
                original,
                digits,
                class_splits,
                hyperparameters={"retain_fraction": bad},
            )


def test_wrong_labels_are_wrong_and_seeded() -> None:
    # sample requests: any class but the sample's own; class requests: any class not forgotten
    cases = [
        (np.arange(1000) % 10, ()),
        (np.full(1000, FORGET_CLASS), (FORGET_CLASS,)),
        (np.arange(1000) % 2 * 5 + 2, (2, 7)),
    ]
    for labels, forget_classes in cases:
        drawn = wrong_labels(labels, 10, np.random.default_rng(0), forget_classes=forget_classes)
        assert drawn.dtype == np.int64 and drawn.shape == labels.shape
        assert not np.any(drawn == labels)
        assert not np.isin(drawn, forget_classes).any()
        assert len(np.unique(drawn)) == 10 - len(forget_classes)  # every allowed class drawn
        again = wrong_labels(labels, 10, np.random.default_rng(0), forget_classes=forget_classes)
        assert np.array_equal(drawn, again)


def test_relabel_transform_changes_only_the_listed_ids() -> None:
    transform = relabel_transform(np.array([2, 5, 9]), np.array([7, 8, 0]))
    x = torch.zeros(4, 1, 2, 2)
    y = torch.tensor([1, 2, 3, 4])
    new_x, new_y = transform(x, y, np.array([9, 4, 2, 10]))
    assert new_x is x
    assert new_y.tolist() == [0, 2, 7, 4]
    assert y.tolist() == [1, 2, 3, 4]  # the batch's own tensor is not changed
    unchanged = transform(x, y, np.array([0, 1]))[1]
    assert unchanged.tolist() == y.tolist()


def test_neggrad_on_a_sample_request_stops_near_held_out_accuracy(
    original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    # a retrained model classifies forgotten random samples about as well as unseen ones, so
    # the ascent stops at the original's population accuracy instead of driving them to 0
    target = accuracy(original.module, digits, sample_splits.population)
    hp = {"lr": 0.01, "epochs": 20, "batch_size": 16}
    stopped = unlearn("neggrad", original, digits, sample_splits, hyperparameters=hp).model
    forget = accuracy(stopped.module, digits, sample_splits.forget)
    assert target - 0.1 <= forget <= target
    unstopped = unlearn(
        "neggrad",
        original,
        digits,
        sample_splits,
        hyperparameters={**hp, "early_stop": False},
    ).model
    assert accuracy(unstopped.module, digits, sample_splits.forget) < 0.5
