"""Shared fixtures: the digits dataset, a store in a temporary folder, a trained small CNN."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearn_audit.data.datasets import Dataset, load_dataset
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.store import Store
from unlearn_audit.train import Recipe, train_classifier

QUICK = Recipe(lr=0.05, epochs=3, batch_size=64)


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never write into the user's cache directory."""
    monkeypatch.setenv("UNLEARN_AUDIT_CACHE", str(_session_cache(tmp_path_factory)))


def _session_cache(factory: pytest.TempPathFactory) -> Path:
    return factory.getbasetemp() / "cache"


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The store every test shares (the default store of the session, see below): a model
    with the same weights, data and recipe trains once per session, whichever test asks first.
    Tests that count what an audit trains compare counts before and after, or use their own."""
    return Store(_session_cache(tmp_path_factory))


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def quick_model(digits: Dataset) -> LoadedModel:
    """small-cnn trained 3 epochs on digits (about half a second)."""
    return train_classifier(digits, arch="small-cnn", recipe=QUICK, progress=False)


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
