"""The training pieces the methods share (methods._training) and the global top-k mask.

Each shared piece replaced code that several methods held a copy of; the tests pin that it
draws, builds and selects exactly what those copies did (same ids for the same seed).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from methods._importance import top_entries
from methods._training import (
    check_share,
    draw_ids,
    eval_mode,
    fresh_network,
    make_recipe,
    random_subset,
    recorded_arch,
)
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import model_fingerprint

SEED = 0


# --- seeded subsets --------------------------------------------------------------------------


def _old_subset(retain: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The copy random labels, bad teacher, Fisher masking and Fisher forgetting each held."""
    if fraction >= 1:
        return retain
    size = max(1, round(fraction * len(retain)))
    return np.sort(rng.choice(retain, size=size, replace=False))


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, 0.999, 1.0])
def test_random_subset_draws_the_ids_the_copies_drew(class_splits: Splits, fraction: float) -> None:
    rng, old_rng = np.random.default_rng(SEED), np.random.default_rng(SEED)
    subset = random_subset(class_splits.retain, fraction, rng)
    assert np.array_equal(subset, _old_subset(class_splits.retain, fraction, old_rng))
    assert subset.dtype == np.int64
    # and the generator is left in the same state (later draws of a method do not shift)
    assert rng.integers(1 << 30) == old_rng.integers(1 << 30)


def test_random_subset_of_a_larger_set_is_capped(sample_splits: Splits) -> None:
    """Lightweight unlearning's D_s: a fraction of D, drawn from retain, at most all of it."""
    retain, members = sample_splits.retain, len(sample_splits.members)
    subset = random_subset(retain, 0.1, np.random.default_rng(SEED), of=members)
    size = min(len(retain), max(1, round(0.1 * members)))
    old = np.sort(np.random.default_rng(SEED).choice(retain, size=size, replace=False))
    assert np.array_equal(subset, old) and len(subset) == 100
    whole = random_subset(retain, 0.95, np.random.default_rng(SEED), of=members)
    assert np.array_equal(whole, retain)


def test_random_subset_edge_cases(class_splits: Splits) -> None:
    assert len(random_subset(class_splits.retain[:2], 0.01, np.random.default_rng(SEED))) == 1
    empty = np.array([], dtype=np.int64)
    assert len(random_subset(empty, 0.3, np.random.default_rng(SEED))) == 0
    assert random_subset(class_splits.retain, 1.0, np.random.default_rng(SEED)) is (
        class_splits.retain
    )


def test_draw_ids_per_class_matches_the_noise_methods_old_draw(class_splits: Splits) -> None:
    labels = np.arange(len(class_splits.retain)) % 4
    retain = class_splits.retain
    rng, old_rng = np.random.default_rng(SEED), np.random.default_rng(SEED)
    new = np.sort(np.concatenate([draw_ids(retain[labels == c], 30, rng) for c in range(4)]))
    old = np.sort(
        np.concatenate(
            [
                old_rng.choice(ids, size=min(30, len(ids)), replace=False)
                for ids in (retain[labels == c] for c in range(4))
            ]
        )
    )
    assert np.array_equal(new, old)
    assert np.array_equal(draw_ids(retain[:5], 30, rng), retain[:5])


def test_check_share() -> None:
    assert check_share(1, "retain_fraction") == 1.0
    assert check_share(0.3, "retain_fraction") == 0.3
    with pytest.raises(
        ConfigError, match=r"^`retain_fraction` must be a number in \(0, 1\]; got 0"
    ):
        check_share(0.0, "retain_fraction")
    with pytest.raises(ConfigError, match=r"^`threshold` must be a number in \[0, 1\]"):
        check_share(1.5, "threshold")


# --- recipes ---------------------------------------------------------------------------------


def test_make_recipe_constant_and_step() -> None:
    sgd = make_recipe(lr=0.02, epochs=5, batch_size=64, momentum=0.9, weight_decay=5e-4)
    assert (sgd.optimizer, sgd.schedule, sgd.milestones, sgd.augment) == (
        "sgd",
        "constant",
        (),
        False,
    )
    assert (sgd.lr, sgd.epochs, sgd.batch_size, sgd.momentum, sgd.weight_decay) == (
        0.02,
        5,
        64,
        0.9,
        5e-4,
    )
    step = make_recipe(optimizer="adam", lr=5e-4, epochs=10, batch_size=32, decay_epochs=(5, 8))
    assert (step.optimizer, step.schedule, step.milestones, step.gamma) == (
        "adam",
        "step",
        (5, 8),
        0.1,
    )
    assert make_recipe(lr=0.1, epochs=0, batch_size=1, min_epochs=0).epochs == 0


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"lr": -1.0}, r"^`erase_lr` must be a number > 0; got -1\.0\.$"),
        ({"lr": 0.0}, r"^`erase_lr` must be a number > 0; got 0\.0\.$"),
        ({"epochs": 0}, r"^`erase_epochs` must be an integer >= 1; got 0\.$"),
        ({"batch_size": 0}, r"^`batch_size` must be an integer >= 1; got 0\.$"),
    ],
)
def test_make_recipe_errors_name_the_hyperparameter(values: dict[str, float], match: str) -> None:
    given = {"lr": 0.01, "epochs": 1, "batch_size": 8, **values}
    with pytest.raises(ConfigError, match=match):
        make_recipe(optimizer="adam", names=("erase_lr", "erase_epochs", "batch_size"), **given)


# --- fresh networks --------------------------------------------------------------------------


def test_fresh_network_is_seeded_and_leaves_the_global_rng(original: LoadedModel) -> None:
    state = torch.random.get_rng_state()
    first = fresh_network(original, seed=3, method="x")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model_fingerprint(first) == model_fingerprint(
        fresh_network(original, seed=3, method="x")
    )
    assert model_fingerprint(first) != model_fingerprint(
        fresh_network(original, seed=4, method="x")
    )


def test_no_recorded_architecture_is_one_message(original: LoadedModel) -> None:
    bare = dataclasses.replace(original, info=dataclasses.replace(original.info, arch=None))
    assert recorded_arch(original, "retrain") == original.info.arch
    with pytest.raises(ConfigError, match=r"^retrain needs an architecture to rebuild, but"):
        recorded_arch(bare, "retrain")
    with pytest.raises(ConfigError, match=r"^m needs an architecture to build it, but .*--arch"):
        fresh_network(bare, seed=0, method="m", purpose="to build it")


def test_eval_mode_restores_the_mode_even_on_error() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not model.training
        raise RuntimeError
    assert model.training
    with eval_mode(model.eval()):
        pass
    assert not model.training


# --- the global top-k mask -------------------------------------------------------------------


def _old_top(
    scores: dict[str, torch.Tensor], fraction: float, minimum: int
) -> dict[str, torch.Tensor]:
    """The copy Fisher masking (minimum 1) and SalUn (minimum 0) each held."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    count = max(minimum, math.floor(fraction * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.sort(flat, descending=True, stable=True).indices[:count]] = True
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = chosen[start : start + s.numel()].view(s.shape)
        start += s.numel()
    return out


@pytest.mark.parametrize(
    ("fraction", "minimum"), [(0.0, 0), (0.0, 1), (0.02, 1), (0.5, 0), (1.0, 0)]
)
def test_top_entries_selects_what_the_copies_selected(fraction: float, minimum: int) -> None:
    generator = torch.Generator().manual_seed(SEED)
    scores = {
        "a": torch.randn(4, 3, generator=generator),
        "b": torch.zeros(5),  # ties: broken by position
        "c": torch.randn(2, 2, 2, generator=generator).round(),
    }
    masks = top_entries(scores, fraction, minimum=minimum)
    old = _old_top(scores, fraction, minimum)
    assert list(masks) == list(scores)
    assert all(torch.equal(masks[name], old[name]) for name in scores)
    total = sum(s.numel() for s in scores.values())
    assert sum(int(m.sum()) for m in masks.values()) == max(minimum, math.floor(fraction * total))
