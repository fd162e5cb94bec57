from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.triggers import Trigger
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel, wrap_model
from unlearn_audit.outputs import OutputCollector, apply_view


def test_views() -> None:
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) / 16
    assert torch.equal(apply_view(x, "hflip")[0, 0, 0], x[0, 0, 0].flip(0))
    assert torch.equal(apply_view(x, "vflip")[0, 0, :, 0], x[0, 0, :, 0].flip(0))
    assert apply_view(x, "crop90").shape == x.shape
    big = torch.rand(2, 3, 20, 20)
    cropped = apply_view(big, "crop90")
    assert cropped.shape == big.shape and not torch.equal(cropped, big)
    assert torch.equal(apply_view(x, "clean"), x)
    with pytest.raises(ConfigError, match="needs a trigger"):
        apply_view(x, "trigger")
    trigger = Trigger(kind="patch", size=1, row=0, col=0, target=0, value=1.0)
    assert apply_view(x, "trigger", trigger=trigger)[0, 0, 0, 0] == 1.0
    with pytest.raises(ConfigError, match="`view` must be"):
        apply_view(x, "rotate")  # type: ignore[arg-type]


def test_one_pass_per_model_split_view(digits: Dataset, quick_model: LoadedModel) -> None:
    collector = OutputCollector(digits, batch_size=100)
    ids = digits.heldout_ids[:250]
    first = collector.get(quick_model, ids, "fp-test")
    again = collector.get(quick_model, ids, "fp-test")
    assert first is again
    collector.get(quick_model, ids, "fp-test", "hflip")
    assert collector.passes == {
        (quick_model.fingerprint, "fp-test", "clean"): 1,
        (quick_model.fingerprint, "fp-test", "hflip"): 1,
    }
    assert first.logits.shape == (250, 10) and first.features.shape == (250, 128)
    assert first.channels.shape == (250, 64) and (first.channels >= 0).all()
    x, y = digits.load(ids)
    with torch.no_grad():
        logits = quick_model.module(x).double()
    # (the collector runs CPU passes channels-last: the same function up to float rounding)
    np.testing.assert_allclose(first.logits, logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        first.losses, F.cross_entropy(logits, y, reduction="none").numpy(), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(first.probs.sum(axis=1), 1.0)
    assert np.array_equal(first.correct, logits.argmax(1).numpy() == y.numpy())


def test_planned_reads_share_one_pass_per_model_and_view(
    digits: Dataset, quick_model: LoadedModel
) -> None:
    from unlearn_audit._hashing import fingerprint_ids

    ids = np.sort(digits.heldout_ids[:120])
    part, other = ids[10:40], np.sort(digits.heldout_ids[100:160])  # overlapping
    collector = OutputCollector(digits, batch_size=50)
    collector.plan([(quick_model, part, "clean"), (quick_model, other, "clean")])
    collector.plan([(quick_model, part, "hflip")])
    union = np.union1d(part, other)
    assert np.array_equal(collector.planned()[(quick_model.fingerprint, "clean")], union)
    a = collector.get(quick_model, part, "fp-part")
    b = collector.get(quick_model, other, "fp-other")
    collector.get(quick_model, part, "fp-part", "hflip")
    fp = quick_model.fingerprint
    assert collector.passes == {
        (fp, fingerprint_ids(union), "clean"): 1,
        (fp, fingerprint_ids(part), "hflip"): 1,
    }
    assert collector.forwarded == {(fp, "clean"): len(union), (fp, "hflip"): len(part)}
    assert collector.unplanned == []
    # a slice is what a pass over those ids alone gives
    alone = OutputCollector(digits).get(quick_model, other, "fp-other")
    assert np.array_equal(b.ids, other) and np.array_equal(b.labels, alone.labels)
    np.testing.assert_allclose(b.logits, alone.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.features, alone.features, rtol=1e-5, atol=1e-6)
    shared = np.intersect1d(part, other)
    np.testing.assert_array_equal(a.logits[np.isin(part, shared)], b.logits[np.isin(other, shared)])
    # a read nobody announced: a pass of its own, listed
    extra = np.sort(digits.heldout_ids[200:210])
    collector.get(quick_model, extra, "fp-extra")
    assert collector.unplanned == [(fp, "fp-extra", "clean")]
    assert collector.forwarded[(fp, "clean")] == len(union) + len(extra)


def test_torchscript_models_give_logits_without_features(
    digits: Dataset, quick_model: LoadedModel
) -> None:
    scripted = wrap_model(
        torch.jit.script(quick_model.module.net), quick_model.info, quick_model.normalization
    )
    out = OutputCollector(digits).get(scripted, digits.heldout_ids[:20], "fp")
    assert out.features is None and out.channels is None and out.logits.shape == (20, 10)


def test_named_layers_are_recorded(digits: Dataset, quick_model: LoadedModel) -> None:
    collector = OutputCollector(digits, conv_layer="features.0", feature_layer="pool")
    out = collector.get(quick_model, digits.heldout_ids[:10], "fp")
    assert out.features.shape == (10, 64) and out.channels.shape == (10, 32)


def test_joined_outputs_are_the_rows_of_one_pass_by_id(
    quick_model: LoadedModel, digits: Dataset
) -> None:
    ids = np.sort(digits.heldout_ids[:40])
    whole = OutputCollector(digits).get(quick_model, ids, "whole")
    assert whole.features is not None and whole.channels is not None
    odd, even = whole.take(ids[1::2]), whole.take(ids[::2])
    joined = odd.join(even)
    for name, value in whole.arrays().items():
        np.testing.assert_array_equal(joined.arrays()[name], value, err_msg=name)
