from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearn_audit.data.datasets import (
    DATASETS,
    Dataset,
    InMemorySamples,
    Normalization,
    holdout_train_ids,
    load_dataset,
    make_dataset,
)
from unlearn_audit.errors import ConfigError, DatasetError, RegistryError


def test_digits_layout(digits: Dataset) -> None:
    assert len(digits) == 1797
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert len(digits.train_ids) == 1000 and len(digits.heldout_ids) == 797
    assert not np.intersect1d(digits.train_ids, digits.heldout_ids).size
    x, y = digits.load(np.array([0, 1, 2]))
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert y.tolist() == [0, 1, 2]  # sklearn's order is kept: ids are stable


def test_digits_is_deterministic() -> None:
    a, b = load_dataset("digits"), load_dataset()
    assert a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.train_ids, b.train_ids)


def test_digits_are_scikit_learns_read_without_importing_it(
    digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from unlearn_audit.data import datasets

    bunch = load_digits()
    x, y = digits.load(np.arange(len(digits)))
    np.testing.assert_array_equal(x.numpy()[:, 0], (bunch.images / 16.0).astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), bunch.target)
    code = (
        "import sys; from unlearn_audit.data.datasets import load_digits; load_digits(); "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "scikit-learn costs most of a second to import"
    # where scikit-learn keeps its file elsewhere, the same data through scikit-learn
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert datasets.load_digits().fingerprint == digits.fingerprint


def test_batches_slice_in_order_and_shuffle(digits: Dataset) -> None:
    ids = digits.train_ids[:70]
    seen = [batch_ids for _, _, batch_ids in digits.batches(ids, 32)]
    assert [len(b) for b in seen] == [32, 32, 6]
    np.testing.assert_array_equal(np.concatenate(seen), ids)
    gen = torch.Generator().manual_seed(0)
    shuffled = np.concatenate(
        [b for _, _, b in digits.batches(ids, 32, shuffle=True, generator=gen)]
    )
    assert sorted(shuffled) == sorted(ids) and not np.array_equal(shuffled, ids)
    x, y, batch_ids = next(iter(digits.batches(ids, 10)))
    x_direct, y_direct = digits.load(batch_ids)
    assert torch.equal(x, x_direct) and torch.equal(y, y_direct)
    dropped = list(digits.batches(ids, 32, drop_last=True))
    assert len(dropped) == 2


def test_fingerprint_tracks_content() -> None:
    images = torch.zeros(10, 1, 4, 4, dtype=torch.uint8)
    labels = np.arange(10) % 2

    def build(imgs: torch.Tensor) -> Dataset:
        return make_dataset(
            "toy",
            InMemorySamples(imgs),
            labels,
            train_ids=np.arange(6),
            classes=["a", "b"],
            normalization=None,
            content_arrays=[imgs.numpy()],
        )

    first = build(images)
    changed = images.clone()
    changed[3, 0, 1, 1] = 7
    assert build(images).fingerprint == first.fingerprint
    assert build(changed).fingerprint != first.fingerprint
    np.testing.assert_array_equal(first.heldout_ids, np.arange(6, 10))
    x, _ = build(changed).load(np.array([3]))
    assert float(x[0, 0, 1, 1]) == pytest.approx(7 / 255)


def test_make_dataset_rejects_bad_labels() -> None:
    images = torch.zeros(4, 1, 4, 4)
    with pytest.raises(DatasetError, match="labels must lie in"):
        make_dataset(
            "toy",
            InMemorySamples(images),
            np.array([0, 1, 2, 5]),
            train_ids=np.arange(2),
            classes=["a", "b", "c"],
            normalization=None,
            content_arrays=[],
        )
    with pytest.raises(DatasetError, match="4 images but 3 labels"):
        make_dataset(
            "toy",
            InMemorySamples(images),
            np.array([0, 1, 2]),
            train_ids=np.arange(2),
            classes=["a", "b", "c"],
            normalization=None,
            content_arrays=[],
        )


def test_holdout_train_ids() -> None:
    train = holdout_train_ids(100, 0.3)
    assert len(train) == 70
    np.testing.assert_array_equal(train, holdout_train_ids(100, 30))
    with pytest.raises(DatasetError):
        holdout_train_ids(10, 10)


def test_normalization_parse() -> None:
    assert Normalization.parse("none") is None
    single = Normalization.parse("0.5,0.25")
    assert single == Normalization((0.5,), (0.25,))
    assert single.for_channels(3).mean == (0.5, 0.5, 0.5)
    rgb = Normalization.parse("0.4,0.5,0.6,0.2,0.2,0.2")
    assert rgb.std == (0.2, 0.2, 0.2)
    with pytest.raises(ConfigError, match="`normalize`"):
        Normalization.parse("0.5")
    with pytest.raises(ConfigError, match="`normalize`"):
        Normalization.parse("a,b")
    with pytest.raises(ConfigError, match="> 0"):
        Normalization.parse("0.5,0")
    with pytest.raises(ConfigError, match="channels"):
        rgb.for_channels(1)
    assert Normalization.from_dict(rgb.to_dict()) == rgb


def test_registry_names_and_did_you_mean() -> None:
    assert {"digits", "fashion-mnist", "mnist", "cifar10", "folder", "npz"} <= set(DATASETS.names())
    with pytest.raises(RegistryError, match="Did you mean 'digits'"):
        load_dataset("digitz")
    with pytest.raises(KeyError):  # also the builtin users catch
        load_dataset("nope")


def test_root_required() -> None:
    with pytest.raises(ConfigError, match="needs `data_root`"):
        load_dataset("cifar10")
