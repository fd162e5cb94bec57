"""Fixtures of the method tests: one trained original and the splits of two requests."""

from __future__ import annotations

import pytest

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.train import accuracy, train_classifier

FORGET_CLASS = 3


@pytest.fixture(scope="session")
def original(digits: Dataset) -> LoadedModel:
    """small-cnn trained with the default digits recipe (about 98% test accuracy)."""
    return train_classifier(digits, arch="small-cnn", progress=False)


@pytest.fixture(scope="session")
def class_splits(digits: Dataset) -> Splits:
    return make_splits(digits, ForgetRequest.classes(FORGET_CLASS))


@pytest.fixture(scope="session")
def sample_splits(digits: Dataset) -> Splits:
    return make_splits(digits, ForgetRequest.random(0.1, seed=0))


@pytest.fixture(scope="session")
def original_accuracy(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> dict[str, float]:
    """The original's accuracy on the forget-class and retain-class parts of test."""
    return {
        name: accuracy(original.module, digits, class_splits.get(name))
        for name in ("test_forget_class", "test_retain_class")
    }
