from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits, read_id_file
from unlearn_audit.errors import ConfigError, RequestError


def _check_partition(digits: Dataset, splits) -> None:  # type: ignore[no-untyped-def]
    parts = [splits.forget, splits.retain, splits.test, splits.population]
    for part in parts:
        assert np.all(np.diff(part) > 0), "ids are sorted and unique"
    union = np.concatenate(parts)
    assert len(np.unique(union)) == len(union), "splits are disjoint"
    assert len(union) == len(digits)


def test_class_request_splits(digits: Dataset) -> None:
    splits = make_splits(digits, ForgetRequest.classes("3,5"))
    assert splits.forget_classes == (3, 5)
    assert set(digits.labels[splits.forget]) == {3, 5}
    assert not np.isin(digits.labels[splits.retain], [3, 5]).any()
    np.testing.assert_array_equal(splits.members, digits.train_ids)
    assert set(digits.labels[splits.test_forget_class]) == {3, 5}
    assert not np.isin(digits.labels[splits.test_retain_class], [3, 5]).any()
    np.testing.assert_array_equal(
        np.sort(np.concatenate([splits.test_forget_class, splits.test_retain_class])), splits.test
    )
    _check_partition(digits, splits)
    assert set(splits.fingerprints) >= {"forget", "retain", "test", "population", "members"}


def test_class_by_name_and_single_int(digits: Dataset) -> None:
    by_name = make_splits(digits, ForgetRequest.classes(["7"]))
    by_int = make_splits(digits, ForgetRequest.classes(7))
    np.testing.assert_array_equal(by_name.forget, by_int.forget)
    assert by_name.fingerprints == by_int.fingerprints


def test_random_fraction_and_count(digits: Dataset) -> None:
    frac = make_splits(digits, ForgetRequest.random(0.05, seed=0))
    assert len(frac.forget) == 50
    count = make_splits(digits, ForgetRequest.random("37", seed=0))
    assert len(count.forget) == 37
    again = make_splits(digits, ForgetRequest.random(0.05, seed=0))
    other = make_splits(digits, ForgetRequest.random(0.05, seed=1))
    np.testing.assert_array_equal(frac.forget, again.forget)
    assert frac.fingerprints["forget"] == again.fingerprints["forget"]
    assert frac.fingerprints["forget"] != other.fingerprints["forget"]
    # test and population do not depend on the request seed
    np.testing.assert_array_equal(frac.test, other.test)
    assert frac.test_forget_class is None and "test_forget_class" not in frac.names()
    _check_partition(digits, frac)


def test_id_file_request(digits: Dataset, tmp_path: Path) -> None:
    members = digits.train_ids
    path = tmp_path / "ids.txt"
    path.write_text(f"# forget these\n{members[0]}\n{members[5]}, {members[9]}  # trailing\n\n")
    splits = make_splits(digits, ForgetRequest.from_id_file(path))
    np.testing.assert_array_equal(splits.forget, np.sort(members[[0, 5, 9]]))
    assert splits.request.source == str(path)
    assert "3 listed samples" in splits.request.describe()


def test_member_ids_declare_members(digits: Dataset) -> None:
    members = digits.train_ids[:300]
    splits = make_splits(digits, ForgetRequest.random(10), member_ids=members)
    assert np.isin(splits.forget, members).all()
    np.testing.assert_array_equal(splits.members, members)
    # half the non-members are test; the population is twice the members (the rest unused)
    assert len(splits.test) == (len(digits) - 300) // 2
    assert len(splits.population) == 600
    default = make_splits(digits, ForgetRequest.random(10))
    assert splits.members_fingerprint != default.members_fingerprint


def test_test_and_population_sizes(digits: Dataset) -> None:
    splits = make_splits(digits, ForgetRequest.classes(1), test_size=100, population_size=0.5)
    assert len(splits.test) == 100
    assert len(splits.population) == round(0.5 * len(digits.heldout_ids))
    default = make_splits(digits, ForgetRequest.classes(1))
    assert len(default.test) == len(digits.heldout_ids) // 2
    assert len(default.test) + len(default.population) == len(digits.heldout_ids)
    with pytest.raises(ConfigError, match="must fit"):
        make_splits(digits, ForgetRequest.classes(1), test_size=700, population_size=300)


@pytest.mark.parametrize(
    ("request_factory", "match"),
    [
        (lambda: ForgetRequest.classes("11"), "unknown class 11"),
        (lambda: ForgetRequest.classes("cat"), "unknown class 'cat'"),
        (lambda: ForgetRequest.classes(list(range(10))), "leaves nothing to retain"),
        (lambda: ForgetRequest.ids([5000]), "out of range"),
        (lambda: ForgetRequest.random(0.0001), "no sample"),
        (lambda: ForgetRequest.random(1000), "retain any"),
    ],
)
def test_request_errors(digits: Dataset, request_factory, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RequestError, match=match):
        make_splits(digits, request_factory())


def test_forget_ids_not_members(digits: Dataset) -> None:
    heldout = int(digits.heldout_ids[0])
    with pytest.raises(RequestError, match=f"not members.*{heldout}.*`member_ids`"):
        make_splits(digits, ForgetRequest.ids([int(digits.train_ids[0]), heldout]))


def test_member_ids_out_of_range(digits: Dataset) -> None:
    with pytest.raises(RequestError, match="member ids out of range"):
        make_splits(digits, ForgetRequest.random(5), member_ids=np.array([1, 2, 99999]))


def test_empty_forget_set_for_class_without_members(digits: Dataset) -> None:
    members = digits.train_ids[digits.labels[digits.train_ids] != 4]
    with pytest.raises(RequestError, match="forget set is empty"):
        make_splits(digits, ForgetRequest.classes(4), member_ids=members)


@pytest.mark.parametrize("bad", ["0", "-3", "1.5", "abc", "0.0"])
def test_bad_random_amounts(bad: str) -> None:
    with pytest.raises(RequestError, match="forget-random"):
        ForgetRequest.random(bad)


def test_id_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="does not exist"):
        read_id_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(RequestError, match="holds no ids"):
        read_id_file(empty)
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nthree\n")
    with pytest.raises(RequestError, match="line 3: 'three'"):
        read_id_file(bad)
    with pytest.raises(RequestError, match="empty"):
        ForgetRequest.ids([])


def test_errors_subclass_builtins() -> None:
    assert issubclass(RequestError, ValueError)
    assert issubclass(ConfigError, ValueError)


# --- default sizes: what the checks need --------------------------------------------------------


def _large(n: int, members: int) -> Dataset:
    """A toy dataset of ``n`` 2x2 images in 10 classes, the first ``members`` its training part."""
    from unlearn_audit.data.datasets import InMemorySamples, make_dataset

    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    return make_dataset(
        "toy",
        InMemorySamples(images),
        np.arange(n) % 10,
        train_ids=np.arange(members),
        classes=[str(c) for c in range(10)],
        normalization=None,
        content_arrays=[],
    )


def test_default_test_is_capped_and_population_is_twice_the_members() -> None:
    from unlearn_audit.data.splits import DEFAULT_TEST_CAP

    # 20,000 members of 70,000: 50,000 non-members; test 10,000, population 40,000 (not half
    # of everything held out, 25,000 + 25,000)
    splits = make_splits(_large(70_000, 20_000), ForgetRequest.classes(3))
    assert len(splits.test) == DEFAULT_TEST_CAP == 10_000
    assert len(splits.population) == 40_000
    # 5,000 members: population 10,000, the rest of the non-members unused
    small = make_splits(_large(70_000, 5_000), ForgetRequest.random(0.1))
    assert (len(small.test), len(small.population)) == (10_000, 10_000)
    assert not np.intersect1d(small.test, small.population).size
    # the user's sizes still win
    given = make_splits(
        _large(70_000, 5_000), ForgetRequest.random(0.1), test_size=0.5, population_size=20_000
    )
    assert (len(given.test), len(given.population)) == (32_500, 20_000)


def test_default_sizes_of_a_small_dataset_are_halves(digits: Dataset) -> None:
    # digits: 1,000 members and 797 non-members, split in halves as before (the cap and twice
    # the members are beyond reach), so digits' splits and fingerprints do not move
    splits = make_splits(digits, ForgetRequest.classes(3))
    assert (len(splits.test), len(splits.population)) == (398, 399)
    few = make_splits(digits, ForgetRequest.random(0.1), member_ids=digits.train_ids[:100])
    assert len(few.population) == 200, "twice the 100 members"
    assert len(few.test) == (len(digits) - 100) // 2
