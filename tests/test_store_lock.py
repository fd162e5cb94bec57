"""Two audits sharing one store (two CI jobs): the reference is trained once, both get it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from unlearn_audit.errors import StoreError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.store import Store


def _audit_in_child(root: str, barrier: Any, results: Any) -> None:
    """One CI job: audit against the shared store (it trains a reference); report what the
    audit built and the reference it got."""
    import torch

    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.data.splits import ForgetRequest
    from unlearn_audit.pipeline import audit
    from unlearn_audit.train import Recipe, train_classifier

    torch.set_num_threads(1)
    digits = load_dataset("digits")
    original = train_classifier(
        digits, arch="mlp", recipe=Recipe(lr=0.05, epochs=1, batch_size=64), progress=False
    )
    barrier.wait()  # both look up the reference at the same moment: both miss it
    result = audit(
        original=original,
        unlearned=original,
        dataset=digits,
        request=ForgetRequest.classes(3),
        checks=["accuracy"],
        num_references=1,
        store=Store(root),
    )
    built = result.config["models_built"]
    results.put((built["trained"], built["reused"], result.models["reference"]["fingerprint"]))


@pytest.mark.slow
def test_two_audits_in_parallel_on_one_store_train_the_reference_once(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    jobs = [
        spawn.Process(target=_audit_in_child, args=(str(tmp_path), barrier, results))
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
    assert sorted((trained, reused) for trained, reused, _ in outcomes) == [(0, 1), (1, 0)]
    assert outcomes[0][2] == outcomes[1][2]
    assert len(list((tmp_path / "models").rglob("*.safetensors"))) == 1
    # both wrote the outputs they computed, atomically: one intact entry per key
    from unlearn_audit.store import _read_arrays

    entries = Store(tmp_path).entries()
    assert {entry.kind for entry in entries} == {"models", "outputs"}
    assert all(_read_arrays(e.path) is not None for e in entries if e.kind == "outputs")
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
    assert "`cache_dir`" in str(info.value)
