from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import QUICK
from unlearn_audit.checks.relearn import RelearnEvidence
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.results import AuditResult
from unlearn_audit.store import ENV_VAR, CacheWarning, Store, default_cache_dir
from unlearn_audit.train import Recipe, train_classifier

TINY = Recipe(lr=0.05, epochs=1, batch_size=64)


def _counting_train(digits: Dataset, calls: list[int], **kwargs):  # type: ignore[no-untyped-def]
    def train() -> LoadedModel:
        calls.append(1)
        return train_classifier(digits, arch="mlp", recipe=TINY, progress=False, **kwargs)

    return train


def test_reuse_trains_once(digits: Dataset, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    calls: list[int] = []
    parts = {"role": "reference", "dataset": digits.fingerprint, "seed": 0}
    first = store.get_or_train(parts, _counting_train(digits, calls))
    second = store.get_or_train(dict(parts), _counting_train(digits, calls))
    assert len(calls) == 1
    assert second.fingerprint == first.fingerprint and second.kind == "own"
    store.get_or_train({**parts, "seed": 1}, _counting_train(digits, calls, seed=1))
    assert len(calls) == 2
    assert not list((tmp_path / "store").rglob("*.tmp"))


def test_train_classifier_key_covers_recipe_seed_members_and_data(
    digits: Dataset, tmp_path: Path
) -> None:
    store = Store(tmp_path)
    base = train_classifier(digits, arch="mlp", recipe=TINY, store=store, progress=False)
    again = train_classifier(digits, arch="mlp", recipe=TINY, store=store, progress=False)
    assert again.kind == "own" and again.fingerprint == base.fingerprint
    variants = [
        train_classifier(
            digits, arch="mlp", recipe=TINY.with_options(lr=0.02), store=store, progress=False
        ),
        train_classifier(digits, arch="mlp", recipe=TINY, seed=1, store=store, progress=False),
        train_classifier(
            digits,
            arch="mlp",
            recipe=TINY,
            member_ids=digits.train_ids[:500],
            store=store,
            progress=False,
        ),
        train_classifier(
            digits, arch="mlp", recipe=TINY, role="shadow", store=store, progress=False
        ),
    ]
    entries = list(tmp_path.rglob("*.safetensors"))
    assert len(entries) == 5, "each variant is its own entry"
    fingerprints = {v.fingerprint for v in variants[:3]}
    assert base.fingerprint not in fingerprints and len(fingerprints) == 3


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupted_entry_is_rebuilt_not_used(digits: Dataset, tmp_path: Path, damage: str) -> None:
    store = Store(tmp_path)
    calls: list[int] = []
    parts = {"role": "test", "damage": damage}
    model = store.get_or_train(parts, _counting_train(digits, calls))
    path = store.path(store.key(parts))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-5] ^= 0xFF  # a weight byte: the file still parses
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray(b"not a model at all")
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="corrupted"):
        rebuilt = store.get_or_train(parts, _counting_train(digits, calls))
    assert len(calls) == 2
    assert rebuilt.fingerprint == model.fingerprint  # deterministic retraining
    assert store.load(store.key(parts)).fingerprint == model.fingerprint


def test_default_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    assert Store().root == tmp_path / "envcache"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "unlearn-audit"
    assert Store(tmp_path / "explicit").root == tmp_path / "explicit"


def test_keys_are_stable_and_order_free() -> None:
    store = Store("/nonexistent")
    assert store.key({"a": 1, "b": [1, 2]}) == store.key({"b": [1, 2], "a": 1})
    assert store.key({"a": 1}) != store.key({"a": 2})


NET_SOURCE = """
from torch import nn

def tiny(num_classes, input_shape):
    hidden = {hidden}
    layers = [nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)
"""


def test_editing_an_architecture_invalidates_its_entries(
    digits: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with bytecode written (`make test` writes it): the edit below keeps the file's size and
    # its time, so a cached .pyc would still pass for the new source
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    code = tmp_path / "code"
    code.mkdir()
    source = code / "my_arch.py"
    source.write_text(NET_SOURCE.format(hidden=16))
    arch = f"{source}:tiny"
    store = Store(tmp_path / "store")
    first = train_classifier(digits, arch=arch, recipe=TINY, store=store, progress=False)
    # an import-path entry is reloaded for the caller that names the same arch, without trust
    again = train_classifier(digits, arch=arch, recipe=TINY, store=store, progress=False)
    assert again.kind == "own" and again.fingerprint == first.fingerprint
    before = source.stat()
    source.write_text(NET_SOURCE.format(hidden=24))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # in the same second
    edited = train_classifier(digits, arch=arch, recipe=TINY, store=store, progress=False)
    assert edited.kind == "memory", "new code, so a new training run"
    assert edited.module.net[1].out_features == 24
    assert len(list((tmp_path / "store").rglob("*.safetensors"))) == 2


def test_atomic_writes_have_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from unlearn_audit._io import write_atomic

    path = write_atomic(tmp_path / "out.txt", lambda tmp: tmp.write_text("hello"))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_text() == "hello" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_computed_results_are_stored_checked_and_rebuilt(tmp_path: Path) -> None:
    store = Store(tmp_path)
    calls: list[int] = []

    def compute() -> dict[str, list[int]]:
        calls.append(1)
        return {"steps": [0, 10], "accuracy": [0.1, 0.6]}

    parts = {"model": "abc", "seed": 0}
    first = store.get_or_compute("relearn_curves", parts, compute)
    assert store.get_or_compute("relearn_curves", parts, compute) == first
    assert len(calls) == 1 and store.computed_hits == 1
    store.get_or_compute("relearn_curves", {"model": "abd", "seed": 0}, compute)
    assert len(calls) == 2, "another model is another entry"
    for path in (tmp_path / "relearn_curves").rglob("*.json"):  # tamper with every entry
        path.write_text(path.read_text().replace("0.6", "0.9"))
    with pytest.warns(CacheWarning, match="does not match the hash"):
        again = store.get_or_compute("relearn_curves", parts, compute)
    assert again == first and len(calls) == 3


def test_a_relearn_curve_is_probed_once(
    digits: Dataset, quick_model: LoadedModel, tmp_path: Path
) -> None:
    from unlearn_audit.data.splits import ForgetRequest, make_splits
    from unlearn_audit.pipeline import audit

    splits = make_splits(digits, ForgetRequest.classes(3))
    reference = train_classifier(
        digits, member_ids=splits.retain, recipe=QUICK, progress=False, role="reference"
    )
    store = Store(tmp_path)
    options = {
        "original": quick_model,
        "dataset": digits,
        "request": splits,
        "references": [reference],
        "checks": ["relearn"],
        "store": store,
    }
    first = audit(unlearned=quick_model, **options)
    assert store.computed_hits == 0
    second = audit(unlearned=quick_model, **options)
    # the reference's relearn and feature-relearn curves and the unlearned model's, audited
    # again: probed once, in the first audit
    assert store.computed_hits == 4
    for variant in ("relearn", "feature_relearn"):
        stored = _relearn(second).curves[variant]["reference"]
        assert stored == _relearn(first).curves[variant]["reference"]
    assert (
        _relearn(second).times["relearn"]["reference"]
        == _relearn(first).times["relearn"]["reference"]
    )
    # an unlearned model audited again (another policy, say) is not fine-tuned again either
    other = train_classifier(
        digits, member_ids=splits.retain, recipe=QUICK, seed=5, progress=False, role="unlearned"
    )
    once = audit(unlearned=other, **options)
    assert store.computed_hits == 4 + 2, "the reference's two curves"
    twice = audit(unlearned=other, **options)
    assert store.computed_hits == 6 + 4, "and now the unlearned model's two as well"
    assert _relearn(twice).curves == _relearn(once).curves


def _relearn(result: AuditResult) -> RelearnEvidence:
    evidence = result.checks["relearn"].evidence
    assert isinstance(evidence, RelearnEvidence), result.checks["relearn"].reason
    return evidence


def test_outputs_of_kept_models_are_stored_checked_and_rebuilt(
    digits: Dataset, quick_model: LoadedModel, tmp_path: Path
) -> None:
    import numpy as np

    from unlearn_audit.outputs import OutputCollector

    store = Store(tmp_path)
    ids = np.sort(digits.heldout_ids[:60])

    def collect(store: Store, keep: bool = True) -> OutputCollector:
        collector = OutputCollector(digits, store=store)
        collector.keep = {quick_model.fingerprint} if keep else set()
        collector.plan([(quick_model, ids, "clean")])
        collector.get(quick_model, ids, "fp")
        return collector

    first = collect(store)
    assert sum(first.forwarded.values()) == 60 and not first.loaded
    (entry,) = (tmp_path / "outputs").rglob("*.safetensors")
    again = collect(store)
    assert not again.forwarded and again.loaded == {(quick_model.fingerprint, "clean"): 60}
    np.testing.assert_array_equal(
        again.get(quick_model, ids, "fp").logits, first.get(quick_model, ids, "fp").logits
    )
    np.testing.assert_array_equal(
        again.get(quick_model, ids, "fp").features, first.get(quick_model, ids, "fp").features
    )
    # another view, another batch size or a model not kept: not the stored entry
    assert sum(collect(store, keep=False).forwarded.values()) == 60
    # a damaged entry is reported, computed again and replaced
    data = bytearray(entry.read_bytes())
    data[-5] ^= 0xFF
    entry.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="does not match the hash"):
        rebuilt = collect(store)
    assert sum(rebuilt.forwarded.values()) == 60
    assert not collect(store).forwarded, "the rebuilt entry is intact"
    # a store that is off keeps nothing
    off = tmp_path / "off"
    assert sum(collect(Store(off, enabled=False)).forwarded.values()) == 60
    assert not off.exists()


def test_grad_cam_maps_of_kept_models_are_stored_checked_and_rebuilt(
    digits: Dataset, quick_model: LoadedModel, tmp_path: Path
) -> None:
    import numpy as np

    from unlearn_audit.outputs import OutputCollector

    store = Store(tmp_path)
    ids = digits.heldout_ids[[5, 1, 70, 3]]  # an order of their own: the maps follow it
    key = (quick_model.fingerprint, "clean")

    def maps(
        store: Store, ids: np.ndarray = ids, shift: int = 0, keep: bool = True
    ) -> tuple[OutputCollector, np.ndarray]:
        collector = OutputCollector(digits, store=store)
        collector.keep = {quick_model.fingerprint} if keep else set()
        targets = (digits.labels[ids] + shift) % 10
        first = collector.grad_cams(quick_model, ids, targets)
        assert collector.grad_cams(quick_model, ids, targets) is first, "once per collector"
        return collector, first

    first, cams = maps(store)
    assert first.cams_computed == {key: 4} and not first.cams_loaded
    assert cams.shape == (4, 8, 8)
    again, stored = maps(store)
    assert not again.cams_computed and again.cams_loaded == {key: 4}
    np.testing.assert_array_equal(stored, cams)
    # the same samples in another order, or other targets: another entry
    reordered, backwards = maps(store, ids[::-1])
    assert reordered.cams_computed == {key: 4}
    np.testing.assert_allclose(backwards[::-1], cams, atol=1e-6)
    assert maps(store, shift=1)[0].cams_computed == {key: 4}
    assert not maps(store, keep=False)[0].cams_loaded, "a model not kept is not stored"
    # a damaged entry is reported, computed again and replaced
    for entry in (tmp_path / "grad_cams").rglob("*.safetensors"):
        data = bytearray(entry.read_bytes())
        data[-5] ^= 0xFF
        entry.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="does not match the hash"):
        rebuilt, maps_again = maps(store)
    assert rebuilt.cams_computed == {key: 4}
    np.testing.assert_array_equal(maps_again, cams)
    assert maps(store)[0].cams_loaded == {key: 4}, "the rebuilt entry is intact"


def _fake_entries(root: Path) -> dict[str, Path]:
    import os

    files = {
        "old_model": root / "models" / "aa" / "a.safetensors",
        "new_model": root / "models" / "bb" / "b.safetensors",
        "outputs": root / "outputs" / "cc" / "c.safetensors",
        "curve": root / "relearn_curves" / "dd" / "d.json",
    }
    for age, path in enumerate(reversed(list(files.values()))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1_000_000.0 - age * 86400, 1_000_000.0 - age * 86400))
    (root / "locks").mkdir()
    (root / "locks" / "a.lock").write_text("")
    return files


def test_prune_by_age_then_least_recently_used_first(tmp_path: Path) -> None:
    files = _fake_entries(tmp_path)
    store = Store(tmp_path)
    listed = store.entries()
    assert [e.path for e in listed] == list(files.values())  # oldest use first, no locks
    assert {e.kind for e in listed} == {"models", "outputs", "relearn_curves"}
    removed = store.prune(older_than=2.5 * 86400, now=1_000_000.0)
    assert [e.path for e in removed] == [files["old_model"]]
    assert not files["old_model"].exists() and files["new_model"].exists()
    removed = store.prune(max_bytes=1500)
    assert [e.path for e in removed] == [files["new_model"], files["outputs"]]
    assert [e.path for e in store.entries()] == [files["curve"]]


def test_store_verb_lists_and_prunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from unlearn_audit.cli import main

    _fake_entries(tmp_path)
    assert main(["store", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "models" in out and "2 entries" in out and "outputs" in out and "3.9 KiB" in out
    longest = tmp_path / "membership_results" / "ee" / "e.json"  # a name of 18 characters
    longest.parent.mkdir(parents=True)
    longest.write_text("{}")
    assert main(["store", "--cache-dir", str(tmp_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "entries" in line]
    assert len(rows) == 4 and len({line.index("entries") for line in rows}) == 1, "aligned"
    longest.unlink()
    assert main(["store", "--cache-dir", str(tmp_path), "--max-size", "2K", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["removed"] == {"entries": 2, "bytes": 2000} and summary["bytes"] == 2000
    with pytest.raises(SystemExit) as info:
        main(["store", "--cache-dir", str(tmp_path), "--max-size", "lots"])
    assert info.value.code == 2
    assert "expected a size such as 500M or 2G, got 'lots'" in capsys.readouterr().err
    assert main(["store", "--cache-dir", str(tmp_path), "--older-than", "-1"]) == 1
    assert "`--older-than` must be a number of days >= 0." in capsys.readouterr().err
