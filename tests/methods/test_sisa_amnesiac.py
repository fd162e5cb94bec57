"""SISA and amnesiac unlearning: the methods that need a training-time structure.

Amnesiac margins were checked over repair seeds 0-2 at the defaults (5 repair epochs): for the
class request the forget-class test accuracy was 0.0 every time and the retain-class test
accuracy 0.977-0.986 (the original: 0.98); the tests run seed 0.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from methods import unlearn
from methods.amnesiac import find_update_log
from tests.conftest import QUICK
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, Splits, make_splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint
from unlearn_audit.models.layers import Classifier, model_fingerprint
from unlearn_audit.models.zoo import build_model
from unlearn_audit.sisa import sisa_ensemble, train_shard
from unlearn_audit.train import Recipe, accuracy, train_classifier
from unlearn_audit.update_log import UpdateRecorder, save_update_log, update_log_path


def _class_accuracy(model: LoadedModel, dataset: Dataset, splits: Splits) -> dict[str, float]:
    return {
        name: accuracy(model.module, dataset, splits.get(name))
        for name in ("test_forget_class", "test_retain_class")
    }


# --- SISA -------------------------------------------------------------------------------------


def _sisa_from_scratch(original: LoadedModel, dataset: Dataset, forget: np.ndarray) -> str:
    """Fingerprint of SISA training without ``forget``: same assignment, same seeds."""
    info = original.info
    assert info.arch is not None and info.recipe is not None and info.seed is not None
    with torch.random.fork_rng():
        torch.manual_seed(info.seed)
        net = build_model(info.arch, 10, dataset.input_shape, arch_kwargs=info.arch_kwargs)
    ensemble = sisa_ensemble(net)
    source = sisa_ensemble(original.module)
    assert ensemble is not None and source is not None
    slices = source.member_slice.clone()
    slices[torch.from_numpy(np.isin(source.member_ids.numpy(), forget))] = -1
    ensemble.set_members(source.member_ids, source.member_shard, slices)
    for shard in range(ensemble.num_shards):
        train_shard(
            ensemble,
            shard,
            0,
            dataset,
            Recipe.from_dict(info.recipe),
            seed=info.seed,
            normalization=original.normalization,
        )
    return model_fingerprint(Classifier(ensemble, original.normalization).eval())


@pytest.mark.parametrize("request_kind", ["class", "sample"])
@pytest.mark.slow
def test_sisa_equals_training_without_the_data(
    request_kind: str,
    sisa_original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    sample_splits: Splits,
) -> None:
    splits = class_splits if request_kind == "class" else sample_splits
    unlearned = unlearn("sisa", sisa_original, digits, splits).model
    assert unlearned.fingerprint == _sisa_from_scratch(sisa_original, digits, splits.forget)
    ensemble = sisa_ensemble(unlearned.module)
    assert ensemble is not None
    gone = np.isin(ensemble.member_ids.numpy(), splits.forget)
    assert (ensemble.member_slice.numpy()[gone] == -1).all()
    assert (ensemble.member_slice.numpy()[~gone] >= 0).all()
    if request_kind == "class":
        before = _class_accuracy(sisa_original, digits, splits)
        after = _class_accuracy(unlearned, digits, splits)
        assert before["test_forget_class"] > 0.9
        # no shard saw a 3 any more: the class is gone, the rest as good as before
        assert after["test_forget_class"] <= 0.02
        assert after["test_retain_class"] >= before["test_retain_class"] - 0.02


def test_sisa_retrains_only_the_shards_that_held_the_data(
    sisa_original: LoadedModel, digits: Dataset
) -> None:
    source = sisa_ensemble(sisa_original.module)
    assert source is not None
    # two samples of shard 1's last slice: shards 0 and 2 and shard 1's first stage stay
    in_last = (source.member_shard == 1) & (source.member_slice == 1)
    forget = source.member_ids[in_last][:2].numpy()
    splits = make_splits(digits, ForgetRequest.ids(forget))
    unlearned = sisa_ensemble(unlearn("sisa", sisa_original, digits, splits).model.module)
    assert unlearned is not None

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

    assert same(unlearned.shards[0], source.shards[0])
    assert same(unlearned.shards[2], source.shards[2])
    assert not same(unlearned.shards[1], source.shards[1])
    assert same(unlearned.checkpoints[1][1], source.checkpoints[1][1])  # type: ignore[index]


# --- amnesiac ---------------------------------------------------------------------------------


def test_amnesiac_subtracts_exactly_the_forgotten_batches(
    logged_original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    log = find_update_log(logged_original, "")
    rows = [
        k for k, batch in enumerate(log.batch_ids) if np.isin(batch, sample_splits.forget).any()
    ]
    assert 0 < len(rows) <= len(log.steps)
    model = unlearn(
        "amnesiac", logged_original, digits, sample_splits, hyperparameters={"epochs": 0}
    ).model
    deltas = log.deltas[rows].sum(0)
    offset = 0
    for name, param in logged_original.module.named_parameters():
        size = param.numel()
        expected = param.detach() - deltas[offset : offset + size].reshape(param.shape)
        torch.testing.assert_close(dict(model.module.named_parameters())[name], expected)
        offset += size


def test_amnesiac_forgets_a_class(
    logged_original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    unrepaired = unlearn(
        "amnesiac", logged_original, digits, class_splits, hyperparameters={"epochs": 0}
    ).model
    repaired = unlearn("amnesiac", logged_original, digits, class_splits).model
    # every batch held a 3: the subtraction undoes the whole training, the repair relearns
    # the other classes only
    assert accuracy(unrepaired.module, digits, class_splits.retain) < 0.5
    after = _class_accuracy(repaired, digits, class_splits)
    assert after["test_forget_class"] <= 0.05
    assert after["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.05


def test_amnesiac_checks_its_log(
    logged_original: LoadedModel,
    original: LoadedModel,
    digits: Dataset,
    sample_splits: Splits,
    tmp_path: Path,
) -> None:
    log_path = str(update_log_path(logged_original.source))
    # an in-memory model has no checkpoint to find the log next to
    with pytest.raises(ConfigError, match="--log-updates"):
        unlearn("amnesiac", original, digits, sample_splits)
    # a log given explicitly must belong to the model
    other = copy.deepcopy(logged_original.module)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    moved = LoadedModel(
        module=other,
        info=logged_original.info,
        fingerprint=model_fingerprint(other),
        source=logged_original.source,
    )
    with pytest.raises(ConfigError, match="was written while training model"):
        unlearn("amnesiac", moved, digits, sample_splits, hyperparameters={"update_log": log_path})
    with pytest.raises(ConfigError, match="does not exist"):
        unlearn(
            "amnesiac",
            logged_original,
            digits,
            sample_splits,
            hyperparameters={"update_log": str(tmp_path / "none.safetensors")},
        )


def test_amnesiac_needs_the_forgotten_ids_among_the_candidates(
    digits: Dataset, sample_splits: Splits, tmp_path: Path
) -> None:
    candidates = sample_splits.forget[:10]
    recorder = UpdateRecorder(candidates)
    model = train_classifier(digits, recipe=QUICK, update_log=recorder, progress=False)
    assert recorder.log is not None
    save_update_log(recorder.log, update_log_path(tmp_path / "m.safetensors"))
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path, dataset=digits)
    with pytest.raises(ConfigError, match=r"\d+ forgotten samples were not among"):
        unlearn("amnesiac", loaded, digits, sample_splits)
    covered = make_splits(digits, ForgetRequest.ids(candidates[:3]))
    result = unlearn("amnesiac", loaded, digits, covered, hyperparameters={"epochs": 0})
    assert result.model.fingerprint != loaded.fingerprint
