"""Shared fixtures: the digits dataset, a store in a temporary folder, a trained small CNN."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from unlearn_audit.data.datasets import Dataset, load_dataset
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.store import Store
from unlearn_audit.train import Recipe, train_classifier

QUICK = Recipe(lr=0.05, epochs=3, batch_size=64)


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never write into the user's cache directory; the CLI writes reports in its own process
    (a report worker per audit would take a core from the other tests; its tests allow it)."""
    monkeypatch.setenv("UNLEARN_AUDIT_CACHE", str(_session_cache(tmp_path_factory)))
    monkeypatch.setenv("UNLEARN_AUDIT_REPORT_WORKER", "0")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs one worker per core) each worker runs torch on one
    thread, and so do the processes it starts: on small models one thread is as fast as two,
    and workers with two threads each on two cores slow each other down many times over."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may use, at most 4 (each worker holds the
    digits data and its models; beyond 4 the shared trainings leave little to split)."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def _session_cache(factory: pytest.TempPathFactory) -> Path:
    """One store per test run, shared by its xdist workers (the store's locks let two processes
    ask for the same model: one trains it, the other waits and reads it)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N/popen-gwK -> pytest-N, common to the workers
    return base / "cache"


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
