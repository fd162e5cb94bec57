"""Two processes sharing one store (two CI jobs): the model is trained once, both get it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from unlearn_audit.errors import StoreError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.store import Store


def _train_in_child(root: str, barrier: Any, results: Any) -> None:
    """One CI job: train the same small model on the shared store; report hits and misses."""
    import torch

    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.train import Recipe, train_classifier

    torch.set_num_threads(1)
    digits = load_dataset("digits")
    store = Store(root)
    barrier.wait()  # both look up the entry at the same moment: both miss it
    model = train_classifier(
        digits,
        arch="mlp",
        recipe=Recipe(lr=0.05, epochs=1, batch_size=64),
        store=store,
        progress=False,
    )
    results.put((store.hits, store.misses, model.fingerprint))


def test_two_processes_on_one_store_train_the_model_once(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    jobs = [
        spawn.Process(target=_train_in_child, args=(str(tmp_path), barrier, results))
        for _ in range(2)
    ]
    for job in jobs:
        job.start()
    try:
        outcomes = [results.get(timeout=180) for _ in jobs]
        for job in jobs:
            job.join(timeout=60)
            assert job.exitcode == 0
    finally:
        for job in jobs:
            if job.is_alive():
                job.terminate()
    assert sorted((hits, misses) for hits, misses, _ in outcomes) == [(0, 1), (1, 0)]
    assert outcomes[0][2] == outcomes[1][2]
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_lock_held_too_long_is_one_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path, lock_timeout=0.2)
    key = store.key({"role": "original"})
    (tmp_path / "locks").mkdir()

    def train() -> LoadedModel:
        raise AssertionError("trained although another process holds the lock")

    with FileLock(str(tmp_path / "locks" / f"{key}.lock")), pytest.raises(StoreError) as info:
        store.get_or_train({"role": "original"}, train)
    assert "another unlearn-audit has been training store entry" in str(info.value)
    assert "--cache-dir" in str(info.value)
