"""Fixtures of the method tests: one trained original and the splits of two requests."""

from __future__ import annotations

import pytest

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint
from unlearn_audit.store import Store
from unlearn_audit.train import accuracy, train_classifier
from unlearn_audit.update_log import UpdateRecorder, save_update_log, update_log_path

FORGET_CLASS = 3


@pytest.fixture(scope="session")
def original(digits: Dataset, session_store: Store) -> LoadedModel:
    """small-cnn trained with the default digits recipe (about 98% test accuracy); the same
    model as the pytest helpers' setup and the demo's original, so it trains once."""
    return train_classifier(digits, arch="small-cnn", store=session_store, progress=False)


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


@pytest.fixture(scope="session")
def logged_original(
    digits: Dataset, session_store: Store, tmp_path_factory: pytest.TempPathFactory
) -> LoadedModel:
    """The `original` trained again with --log-updates (through the session's store, with its
    log: the demo's amnesiac original, so it trains once), loaded from disk next to its log."""
    recorder = UpdateRecorder()
    model = train_classifier(
        digits, arch="small-cnn", update_log=recorder, store=session_store, progress=False
    )
    assert recorder.log is not None
    folder = tmp_path_factory.mktemp("logged")
    save_update_log(recorder.log, update_log_path(folder / "original.safetensors"))
    path = save_checkpoint(model, folder / "original.safetensors")
    return load_checkpoint(path, dataset=digits)


@pytest.fixture(scope="session")
def sisa_original(digits: Dataset, session_store: Store) -> LoadedModel:
    """A SISA ensemble of 3 small-cnn shards with 2 slices each (about 99% held-out); the
    demo's SISA original, so it trains once per session."""
    return train_classifier(
        digits,
        arch="sisa",
        arch_kwargs={"base": "small-cnn", "shards": 3, "slices": 2},
        store=session_store,
        progress=False,
    )


@pytest.fixture(scope="session")
def erm_original(digits: Dataset, session_store: Store) -> LoadedModel:
    """small-cnn with the ERM mask layer, trained like `train --erm` with the digits recipe.

    About 99% held-out accuracy; G converges to one class per channel (L1-density 0.100, mean
    CSI at most 0.002 over seeds 0-3).
    """
    return train_classifier(
        digits, arch="erm", arch_kwargs={"base": "small-cnn"}, store=session_store, progress=False
    )
