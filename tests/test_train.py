from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.layers import Classifier
from unlearn_audit.models.zoo import build_model
from unlearn_audit.store import Store
from unlearn_audit.train import (
    Recipe,
    StepState,
    accuracy,
    augment_batch,
    default_recipe,
    fit,
    make_optimizer,
    resolve_device,
    train_classifier,
)

TINY = Recipe(lr=0.05, epochs=2, batch_size=64)


def _fresh(digits: Dataset, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(
        build_model("small-cnn", 10, digits.input_shape, arch_kwargs={"width": 8}),
        digits.normalization,
    )


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_same_seed_gives_identical_weights(digits: Dataset) -> None:
    model = _fresh(digits)
    first = fit(
        model, digits, digits.train_ids, TINY.with_options(augment=True), seed=3, progress=False
    )
    second = fit(
        model, digits, digits.train_ids, TINY.with_options(augment=True), seed=3, progress=False
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(_weights(first.model), _weights(second.model), strict=True)
    )
    other = fit(model, digits, digits.train_ids, TINY, seed=4, progress=False)
    assert not all(
        torch.equal(a, b) for a, b in zip(_weights(first.model), _weights(other.model), strict=True)
    )


def test_train_classifier_is_deterministic_end_to_end(digits: Dataset) -> None:
    a = train_classifier(digits, arch="lenet", recipe=TINY, seed=1, progress=False)
    b = train_classifier(digits, arch="lenet", recipe=TINY, seed=1, progress=False)
    c = train_classifier(digits, arch="lenet", recipe=TINY, seed=2, progress=False)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_callers_model_and_global_rng_untouched(digits: Dataset) -> None:
    model = _fresh(digits)
    before = _weights(model)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    fit(model, digits, digits.train_ids[:128], TINY, seed=0, progress=False)
    assert torch.equal(torch.rand(1), expected), "fit must not consume the caller's RNG"
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model), strict=True))


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_fit_trains_the_same_whatever_the_callers_autograd_mode(
    digits: Dataset, mode: type[torch.no_grad] | type[torch.inference_mode]
) -> None:
    model = _fresh(digits)
    expected = fit(model, digits, digits.train_ids[:128], TINY, seed=0, progress=False)
    with mode():
        got = fit(model, digits, digits.train_ids[:128], TINY, seed=0, progress=False)
        assert not torch.is_grad_enabled(), "the caller's mode is back after fit"
    assert all(
        torch.equal(a, b)
        for a, b in zip(_weights(expected.model), _weights(got.model), strict=True)
    )
    assert not any(t.is_inference() for t in got.model.state_dict().values())


def test_callbacks_history_and_schedule(digits: Dataset) -> None:
    steps: list[StepState] = []
    epochs: list[dict[str, float]] = []
    recipe = Recipe(lr=0.1, epochs=3, batch_size=100, schedule="step", milestones=(1, 2), gamma=0.5)
    result = fit(
        _fresh(digits),
        digits,
        digits.train_ids[:250],
        recipe,
        progress=False,
        on_step=steps.append,
        on_epoch=lambda s, r: epochs.append(r),
    )
    assert result.history.steps == len(steps) == 9  # 3 batches x 3 epochs
    assert [len(s.batch_ids) for s in steps[:3]] == [100, 100, 50]
    assert [r["lr"] for r in result.history.epochs] == pytest.approx([0.1, 0.05, 0.025])
    assert epochs == result.history.epochs
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in epochs)
    assert not result.model.training


def test_cosine_schedule_decays_to_zero(digits: Dataset) -> None:
    lrs: list[float] = []
    fit(
        _fresh(digits),
        digits,
        digits.train_ids[:128],
        Recipe(lr=0.1, epochs=4, batch_size=64),
        progress=False,
        on_step=lambda s: lrs.append(s.optimizer.param_groups[0]["lr"]),
    )
    assert lrs[0] == pytest.approx(0.1)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert lrs[-1] < 0.01


def test_custom_objective_is_used(digits: Dataset) -> None:
    seen: list[int] = []

    def objective(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, ids: np.ndarray
    ) -> torch.Tensor:
        seen.append(len(ids))
        # gradient ascent on the true class: accuracy must collapse
        return -nn.functional.cross_entropy(model(x), y).clamp(max=20)

    trained = train_classifier(digits, arch="small-cnn", recipe=TINY, progress=False)
    result = fit(
        trained.module,
        digits,
        digits.train_ids,
        Recipe(lr=0.05, epochs=1, batch_size=64),
        objective=objective,
        progress=False,
    )
    assert sum(seen) == len(digits.train_ids)
    assert accuracy(result.model, digits, digits.heldout_ids) < 0.5
    assert "accuracy" not in result.history.epochs[0]


def test_default_recipe_small_cnn_on_digits_is_accurate(
    digits: Dataset, session_store: Store
) -> None:
    recipe = default_recipe("digits", "small-cnn")  # the session's original (the store's)
    model = train_classifier(
        digits, arch="small-cnn", recipe=recipe, store=session_store, progress=False
    )
    assert accuracy(model.module, digits, digits.heldout_ids) >= 0.95
    assert model.info.recipe == recipe.to_dict()


def test_augment_batch_shifts_and_flips() -> None:
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8) + 1
    gen = torch.Generator().manual_seed(0)
    outs = [augment_batch(x, gen, flip=False) for _ in range(20)]
    assert all(o.shape == x.shape for o in outs)
    for out in outs:  # every value is either padding or a pixel of the same image
        for i in range(2):
            values = set(out[i].unique().tolist()) - {0.0}
            assert values <= set(x[i].unique().tolist())
    assert any(not torch.equal(o, x) for o in outs)
    images = torch.rand(32, 1, 8, 8)
    plain = augment_batch(images, torch.Generator().manual_seed(5), flip=False)
    maybe_flipped = augment_batch(images, torch.Generator().manual_seed(5), flip=True)
    flipped = [not torch.equal(a, b) for a, b in zip(plain, maybe_flipped, strict=True)]
    for a, b, was_flipped in zip(plain, maybe_flipped, flipped, strict=True):
        assert torch.equal(b, a.flip(-1) if was_flipped else a)
    assert 4 < sum(flipped) < 28, "about half the images are flipped"


def test_recipe_validation_and_round_trip() -> None:
    recipe = Recipe(optimizer="adam", lr=1e-3, milestones=[2, 4])  # type: ignore[arg-type]
    assert recipe.milestones == (2, 4)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.with_options(lr=None, epochs=7).epochs == 7
    with pytest.raises(ConfigError, match="`optimizer` must be one of"):
        Recipe(optimizer="rmsprop")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="`lr` must be a number > 0"):
        Recipe(lr=0)
    with pytest.raises(ConfigError, match="`batch_size` must be an integer >= 1"):
        Recipe(batch_size=0)
    with pytest.raises(ConfigError, match="unknown recipe field 'learning_rate'"):
        Recipe.from_dict({"learning_rate": 0.1})


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_other_optimizers_learn(digits: Dataset, optimizer: str) -> None:
    recipe = Recipe(optimizer=optimizer, lr=3e-3, epochs=3, batch_size=64)  # type: ignore[arg-type]
    model = train_classifier(digits, arch="mlp", recipe=recipe, progress=False)
    assert accuracy(model.module, digits, digits.heldout_ids) > 0.8


def test_divergence_and_empty_ids_are_clear_errors(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="empty set of samples"):
        fit(_fresh(digits), digits, np.array([], dtype=np.int64), TINY, progress=False)

    def nan_objective(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, ids: np.ndarray
    ) -> torch.Tensor:
        return model(x).sum() * float("nan")

    with pytest.raises(ConfigError, match="diverged"):
        fit(
            _fresh(digits),
            digits,
            digits.train_ids[:64],
            TINY,
            objective=nan_objective,
            progress=False,
        )


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="`device` must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_trained_model_records_its_history(digits: Dataset) -> None:
    model = train_classifier(digits, arch="mlp", recipe=TINY, progress=False)
    history = model.info.extra["history"]
    assert len(history["epochs"]) == 2 and history["steps"] == 2 * 16
    assert history["seconds"] > 0 and history["epochs"][1]["loss"] < history["epochs"][0]["loss"]


def test_accuracy_counts_every_sample(digits: Dataset, quick_model) -> None:  # type: ignore[no-untyped-def]
    ids = digits.heldout_ids[:101]
    x, y = digits.load(ids)
    with torch.no_grad():
        expected = float((quick_model.module(x).argmax(1) == y).float().mean())
    # batches of 10 leave a last batch of 1: a mean of batch means would differ
    assert accuracy(quick_model.module, digits, ids, batch_size=10) == pytest.approx(expected)
    assert accuracy(quick_model.module, digits, ids, batch_size=10) == pytest.approx(
        int((quick_model.module(x).argmax(1) == y).sum()) / 101
    )


def test_on_step_can_stop_training(digits: Dataset) -> None:
    seen: list[int] = []

    def stop_after_five(state: StepState) -> bool:
        seen.append(state.step)
        return state.step >= 5

    result = fit(
        _fresh(digits), digits, digits.train_ids, TINY, on_step=stop_after_five, progress=False
    )
    assert seen == [1, 2, 3, 4, 5] and result.history.steps == 5
    assert len(result.history.epochs) == 1


def test_make_optimizer_follows_the_recipe_and_skips_frozen_parameters() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    sgd = make_optimizer(model, Recipe(optimizer="sgd", lr=0.5, momentum=0.8, weight_decay=0.1))
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.5, 0.8, 0.1)
    assert [p.shape for p in group["params"]] == [torch.Size([2, 4]), torch.Size([2])]
    adam = make_optimizer(model, Recipe(optimizer="adam", lr=0.01, weight_decay=0.0))
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == 0.01
