"""Training-time structures: the SISA ensemble and the per-step update log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint
from unlearn_audit.models.ensemble import ShardEnsemble
from unlearn_audit.models.layers import find_layers
from unlearn_audit.sisa import assign_members, sisa_ensemble, slice_epochs, stage_seed
from unlearn_audit.train import Recipe, accuracy, train_classifier
from unlearn_audit.update_log import (
    UpdateRecorder,
    load_update_log,
    save_update_log,
    update_log_path,
)

SISA = {"base": "small-cnn", "shards": 3, "slices": 2}
QUICK = Recipe(lr=0.05, epochs=4, batch_size=64)


@pytest.fixture(scope="module")
def ensemble_model(digits: Dataset) -> LoadedModel:
    return train_classifier(digits, arch="sisa", arch_kwargs=SISA, recipe=QUICK, progress=False)


def test_assignment_partitions_the_members() -> None:
    members = np.arange(100, 203)
    ids, shard, slice_ = assign_members(members, 4, 3, seed=1)
    assert np.array_equal(ids, members)
    # every (shard, slice) cell is used and they are as even as array_split makes them
    cells = np.bincount(shard * 3 + slice_, minlength=12)
    assert cells.min() >= 8 and cells.max() <= 9 and cells.sum() == 103
    again = assign_members(members[::-1], 4, 3, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(again, (ids, shard, slice_), strict=True))
    other = assign_members(members, 4, 3, seed=2)
    assert not np.array_equal(other[1], shard)
    with pytest.raises(ConfigError, match="cannot fill 4 shards x 3 slices"):
        assign_members(np.arange(11), 4, 3, seed=0)


def test_slice_budget_and_seeds() -> None:
    # the repository's 2R/(R+1) * e/R epochs per slice stage
    assert slice_epochs(30, 1) == 30 and slice_epochs(30, 2) == 20 and slice_epochs(30, 5) == 10
    assert slice_epochs(1, 9) == 1
    seeds = {stage_seed(0, s, r) for s in range(5) for r in range(5)}
    assert len(seeds) == 25


def test_ensemble_answers_with_averaged_probabilities(
    ensemble_model: LoadedModel, digits: Dataset
) -> None:
    ensemble = sisa_ensemble(ensemble_model.module)
    assert isinstance(ensemble, ShardEnsemble) and ensemble.num_shards == 3
    x, _ = digits.load(digits.heldout_ids[:50])
    with torch.no_grad():
        normalised = (x - ensemble_model.module.input_mean) / ensemble_model.module.input_std
        expected = torch.stack([F.softmax(net(normalised), 1) for net in ensemble.shards]).mean(0)
        got = F.softmax(ensemble_model.module(x), 1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert accuracy(ensemble_model.module, digits, digits.heldout_ids) > 0.9
    # the layer search reads the last live shard, not a frozen checkpoint
    layers = find_layers(ensemble_model.module)
    assert layers.features.startswith("net.shards.2.") and layers.conv is not None
    assert layers.conv.startswith("net.shards.2.")


def test_ensemble_records_assignment_and_checkpoints(
    ensemble_model: LoadedModel, digits: Dataset
) -> None:
    ensemble = sisa_ensemble(ensemble_model.module)
    assert ensemble is not None
    ids, shard, slice_ = assign_members(digits.train_ids, 3, 2, seed=0)
    assert np.array_equal(ensemble.member_ids.numpy(), ids)
    assert np.array_equal(ensemble.member_shard.numpy(), shard)
    assert np.array_equal(ensemble.member_slice.numpy(), slice_)
    for s in range(3):
        first, second = ensemble.checkpoints[s]  # type: ignore[misc]
        live = ensemble.shards[s].state_dict()
        # before slice 1 the shard had trained on slice 0: neither the start nor the end
        assert not all(torch.equal(v, first.state_dict()[k]) for k, v in live.items())
        assert not all(torch.equal(v, second.state_dict()[k]) for k, v in live.items())
        assert all(not p.requires_grad for p in first.parameters())
    assert all(p.requires_grad for p in ensemble.shards.parameters())


def test_ensemble_checkpoint_round_trip(
    ensemble_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    path = save_checkpoint(ensemble_model, tmp_path / "sisa.safetensors")
    loaded = load_checkpoint(path, dataset=digits)
    assert loaded.fingerprint == ensemble_model.fingerprint
    assert loaded.info.arch == "sisa" and loaded.info.arch_kwargs == SISA
    x, _ = digits.load(digits.heldout_ids[:20])
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), ensemble_model.module(x))


def test_sisa_training_is_seeded(digits: Dataset, ensemble_model: LoadedModel) -> None:
    again = train_classifier(digits, arch="sisa", arch_kwargs=SISA, recipe=QUICK, progress=False)
    assert again.fingerprint == ensemble_model.fingerprint
    other = train_classifier(
        digits, arch="sisa", arch_kwargs=SISA, recipe=QUICK, seed=1, progress=False
    )
    assert other.fingerprint != ensemble_model.fingerprint


def test_sisa_refuses_an_update_log(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="drop one of `update_log` and `sisa_shards`"):
        train_classifier(digits, arch="sisa", arch_kwargs=SISA, update_log=UpdateRecorder())


@pytest.fixture(scope="module")
def logged(digits: Dataset) -> tuple[LoadedModel, UpdateRecorder, LoadedModel]:
    """The same run with and without the log, and the recorder."""
    recorder = UpdateRecorder()
    model = train_classifier(digits, recipe=QUICK, update_log=recorder, progress=False)
    plain = train_classifier(digits, recipe=QUICK, progress=False)
    return model, recorder, plain


def test_the_log_adds_up_to_the_training_run(
    logged: tuple[LoadedModel, UpdateRecorder, LoadedModel], digits: Dataset
) -> None:
    model, recorder, plain = logged
    log = recorder.log
    assert log is not None
    # logging changes nothing about the training
    assert model.fingerprint == plain.fingerprint
    assert log.model_fingerprint == model.fingerprint
    steps = QUICK.epochs * int(np.ceil(len(digits.train_ids) / QUICK.batch_size))
    assert np.array_equal(log.steps, np.arange(1, steps + 1))
    assert log.deltas.shape == (steps, sum(p.numel() for p in model.module.parameters()))
    # the batches are the training's: every member once per epoch
    seen = np.concatenate(log.batch_ids)
    assert np.array_equal(np.bincount(seen)[digits.train_ids], np.full(1000, QUICK.epochs))
    # initial weights plus every delta give the trained weights
    with torch.random.fork_rng():
        torch.manual_seed(0)
        from unlearn_audit.models.zoo import build_model

        initial = dict(build_model("small-cnn", 10, digits.input_shape).named_parameters())
    total = log.summed_delta(np.arange(steps))
    for name, param in model.module.named_parameters():
        start = initial[name.removeprefix("net.")]
        torch.testing.assert_close(start + total[name], param, atol=2e-5, rtol=1e-4)
    assert model.info.extra["update_log"]["steps_logged"] == steps


def test_log_round_trip_and_errors(
    logged: tuple[LoadedModel, UpdateRecorder, LoadedModel], tmp_path: Path
) -> None:
    log = logged[1].log
    assert log is not None
    path = save_update_log(log, update_log_path(tmp_path / "m.safetensors"))
    assert path.name == "m.updates.safetensors"
    back = load_update_log(path)
    assert torch.equal(back.deltas, log.deltas) and back.names == log.names
    assert back.shapes == log.shapes and back.candidates is None
    assert all(np.array_equal(a, b) for a, b in zip(back.batch_ids, log.batch_ids, strict=True))
    with pytest.raises(CheckpointNotFoundError, match="`update_log`"):
        load_update_log(tmp_path / "none.updates.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a log")
    with pytest.raises(CheckpointError, match="not an update log"):
        load_update_log(tmp_path / "junk.safetensors")


def test_a_logged_run_is_kept_in_the_store_with_its_log(
    logged: tuple[LoadedModel, UpdateRecorder, LoadedModel],
    digits: Dataset,
    tmp_path: Path,
) -> None:
    from unlearn_audit.store import Store

    first_log = logged[1].log
    assert first_log is not None
    store = Store(tmp_path / "store")
    first = train_classifier(
        digits, recipe=QUICK, update_log=UpdateRecorder(), store=store, progress=False
    )
    # a plain run's entry holds no log: a logged run does not take it, nor the other way round
    train_classifier(digits, recipe=QUICK, store=store, progress=False)
    assert store.misses == 2 and first.fingerprint == logged[0].fingerprint
    again = UpdateRecorder()
    second = train_classifier(digits, recipe=QUICK, update_log=again, store=store, progress=False)
    assert store.misses == 2 and second.fingerprint == first.fingerprint, "from the store"
    assert again.log is not None and torch.equal(again.log.deltas, first_log.deltas)
    assert all(
        np.array_equal(a, b) for a, b in zip(again.log.batch_ids, first_log.batch_ids, strict=True)
    )
    # a damaged log is detected, and the logged run is trained again with its log
    (entry,) = (tmp_path / "store" / "update_logs").glob("*/*.safetensors")
    entry.write_bytes(entry.read_bytes()[:-8] + b"12345678")
    third = UpdateRecorder()
    with pytest.warns(UserWarning, match="does not match"):
        model = train_classifier(
            digits, recipe=QUICK, update_log=third, store=store, progress=False
        )
    assert third.log is not None and torch.equal(third.log.deltas, first_log.deltas)
    assert model.fingerprint == first.fingerprint


def test_candidates_keep_only_their_batches(digits: Dataset) -> None:
    candidates = digits.train_ids[:5]
    recorder = UpdateRecorder(candidates)
    train_classifier(digits, recipe=QUICK, update_log=recorder, progress=False)
    log = recorder.log
    assert log is not None
    assert 0 < len(log.steps) <= 5 * QUICK.epochs
    assert all(np.isin(batch, candidates).any() for batch in log.batch_ids)
    assert np.array_equal(log.candidates, np.sort(candidates))
    assert np.array_equal(
        log.steps_with(candidates[:1]),
        [k for k, b in enumerate(log.batch_ids) if candidates[0] in b],
    )
