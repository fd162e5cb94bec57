"""The audit context's pure pieces: where shadow models draw their members from."""

from __future__ import annotations

import numpy as np

from unlearn_audit.context import shadow_pool
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits
from unlearn_audit.pipeline import shadow_member_ids


def test_class_request_shadows_never_see_the_forgotten_classes(digits: Dataset) -> None:
    splits = make_splits(digits, ForgetRequest.classes("3,5"))
    pool, size, wanted = shadow_pool(splits, digits.labels)
    assert set(np.unique(digits.labels[pool])).isdisjoint({3, 5})
    assert set(pool) <= set(splits.population)
    kept = ~np.isin(digits.labels[splits.population], [3, 5])
    assert len(pool) == int(kept.sum()), "every other population sample is in the pool"
    assert wanted == len(splits.retain), "they stand for the retrained world"
    assert size == min(wanted, len(pool) // 2) == len(pool) // 2  # digits: capped
    draws = shadow_member_ids(splits, digits.labels, 3, seed=0)
    assert all(len(ids) == size and set(ids) <= set(pool) for ids in draws)
    assert not np.array_equal(draws[0], draws[1])
    again = shadow_member_ids(splits, digits.labels, 3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(draws, again, strict=True))


def test_random_request_shadows_imitate_the_originals_member_count(digits: Dataset) -> None:
    members = digits.train_ids[:150]
    splits = make_splits(digits, ForgetRequest.random(0.1), member_ids=members)
    pool, size, wanted = shadow_pool(splits, digits.labels)
    assert np.array_equal(pool, splits.population), "the whole population"
    assert wanted == size == 150, "as many samples as the original's members, uncapped"
    draws = shadow_member_ids(splits, digits.labels, 2, seed=1)
    assert [len(ids) for ids in draws] == [150, 150]
    capped = make_splits(digits, ForgetRequest.random(0.1))  # 1,000 members, 399 population
    assert shadow_pool(capped, digits.labels)[1:] == (199, 1000)
