"""SSD, LFSSD, Fisher masking and Fisher forgetting, and the importances they share.

The importances are checked against closed forms on a linear softmax model and against a
brute-force per-sample loop on a tiny conv + BatchNorm model. The methods run on the `original`
small-cnn (test accuracy about 0.98 on the forget class, 0.99 on the others and overall).

Margins were checked over seeds 0-3 at the defaults; the tests run seed 0. Observed:

- ssd, class: forget-class test 0.000; retain-class test 0.890-0.932 (BatchNorm not
  recalibrated: 0.34-0.50). 10% random: test 0.982-0.987.
- lfssd, class: forget-class test 0.000 (on one thread, as the tests run: 0.000-0.089, where
  the original trained on one thread differs); retain-class test 0.980-0.992. Random: test 0.987.
- fisher-masking, class: forget-class test 0.000; retain-class test 0.992. Random: test
  0.706-0.869 without a fine-tune, 0.910-0.957 after 2 fine-tune epochs.
- fisher-forgetting, class: forget-class test 0.000; retain-class test 0.958-0.980; the
  forgotten classifier row's std 0.027-0.036 (0.139 before). Random: test 0.952-0.970. The
  per-sample Fisher moves the weights 5.7x as far (squared distance) as the mini-batch one.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import methods.fisher_forgetting
import methods.fisher_masking
import methods.ssd
from methods import unlearn
from methods._importance import (
    output_norm_importance,
    squared_gradient_importance,
    true_fisher,
)
from methods.fisher_forgetting import (
    FORGOTTEN_ROW_VARIANCE,
    add_fisher_noise,
    classifier_layer,
    noise_variance,
)
from methods.fisher_masking import mask_top, masking_scores
from methods.ssd import dampen
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.models.layers import Classifier
from unlearn_audit.train import accuracy

from .conftest import FORGET_CLASS

assert methods.ssd and methods.fisher_masking and methods.fisher_forgetting  # registrations

IDS = slice(0, 12)  # a few training samples for the exact checks


def _net(seed: int, *, linear_only: bool = False) -> nn.Module:
    """A tiny network for 1x8x8 digits, initialised from ``seed``, in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if linear_only:
            return nn.Sequential(nn.Flatten(), nn.Linear(64, 10, bias=False)).eval()
        net = nn.Sequential(
            nn.Conv2d(1, 3, 3),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3 * 6 * 6, 10),
        )
        norm = net[1]
        assert isinstance(norm, nn.BatchNorm2d)
        assert norm.running_mean is not None and norm.running_var is not None
        norm.running_mean.uniform_(-0.5, 0.5)  # so that eval mode visibly matters
        norm.running_var.uniform_(0.5, 2.0)
        return net.eval()


def _inputs(digits: Dataset) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    ids = digits.train_ids[IDS]
    x, y = digits.load(ids)
    return ids, x.flatten(1), y


def _head(model: LoadedModel) -> nn.Linear:
    """small-cnn's classifier, ``net.head[3]``."""
    head = dict(model.module.named_modules())["net.head.3"]
    assert isinstance(head, nn.Linear)
    return head


def _accuracies(model: LoadedModel, digits: Dataset, splits: Splits) -> dict[str, float]:
    names = ["test_forget_class", "test_retain_class"] if splits.forget_classes else ["test"]
    return {name: accuracy(model.module, digits, splits.get(name)) for name in names}


# --- importances: closed forms on a linear softmax model -----------------------------------


def test_true_fisher_of_a_linear_model_is_p_times_one_minus_p_times_x_squared(
    digits: Dataset,
) -> None:
    # for logits W x, grad_W(-log p_y) = (p - e_y) x^T, and sum_y p_y (p_c - [c = y])^2 is
    # p_c (1 - p_c): F[c, j] = mean_i p_ic (1 - p_ic) x_ij^2
    net = _net(0, linear_only=True)
    ids, x, _ = _inputs(digits)
    with torch.no_grad():
        p = net(x.view(-1, 1, 8, 8)).softmax(1)
    expected = (p * (1 - p)).T @ x.pow(2) / len(ids)
    exact = true_fisher(net, digits, ids, batch_size=5, per_sample=True)
    torch.testing.assert_close(exact["1.weight"], expected, rtol=1e-4, atol=1e-10)
    one_by_one = true_fisher(net, digits, ids, batch_size=1)
    torch.testing.assert_close(one_by_one["1.weight"], expected, rtol=1e-4, atol=1e-10)


def test_minibatch_estimates_of_a_linear_model(digits: Dataset) -> None:
    net = _net(1, linear_only=True)
    ids, x, y = _inputs(digits)
    with torch.no_grad():
        p = net(x.view(-1, 1, 8, 8)).softmax(1)
    n = len(ids)
    onehot = F.one_hot(y, 10).float()
    # SSD: (grad of the batch-mean CE)^2, one batch
    ssd = squared_gradient_importance(net, digits, ids, batch_size=n)
    torch.testing.assert_close(ssd["1.weight"], ((p - onehot).T @ x / n).pow(2))
    # LFSSD: |grad of mean ||W x||^2| = |2/n sum_i (W x_i) x_i^T|
    with torch.no_grad():
        logits = net(x.view(-1, 1, 8, 8))
    lf = output_norm_importance(net, digits, ids, batch_size=n)
    torch.testing.assert_close(lf["1.weight"], (2 * logits.T @ x / n).abs())
    # Fisher masking's estimate: sum_y mean_i p_iy (mean_i (p_i - e_y) x_i^T)^2
    expected = torch.zeros(10, 64)
    for label in range(10):
        target = F.one_hot(torch.tensor(label), 10).float()
        expected += p[:, label].mean() * ((p - target).T @ x / n).pow(2)
    batch = true_fisher(net, digits, ids, batch_size=n)
    torch.testing.assert_close(batch["1.weight"], expected, rtol=1e-4, atol=1e-10)
    # two batches: the mean of the two batches' terms
    halves = [
        squared_gradient_importance(net, digits, part, batch_size=n // 2)
        for part in (ids[: n // 2], ids[n // 2 :])
    ]
    both = squared_gradient_importance(net, digits, ids, batch_size=n // 2)
    torch.testing.assert_close(
        both["1.weight"], (halves[0]["1.weight"] + halves[1]["1.weight"]) / 2
    )


# --- importances: brute force on a conv + BatchNorm model -----------------------------------


def _brute_force_fisher(
    net: nn.Module, digits: Dataset, ids: np.ndarray
) -> dict[str, torch.Tensor]:
    """One sample and one class at a time: the notebook's loop at batch 1."""
    total = {name: torch.zeros_like(p) for name, p in net.named_parameters()}
    for i in ids:
        x, _ = digits.load(np.array([i]))
        for label in range(10):
            net.zero_grad()
            log_p = F.log_softmax(net(x), dim=1)[0, label]
            (-log_p).backward()
            for name, p in net.named_parameters():
                assert p.grad is not None
                total[name] += log_p.exp().item() * p.grad.pow(2)
    net.zero_grad(set_to_none=True)
    return {name: value / len(ids) for name, value in total.items()}


def test_per_sample_fisher_matches_the_brute_force_loop(digits: Dataset) -> None:
    net = _net(2)
    ids = digits.train_ids[IDS]
    expected = _brute_force_fisher(net, digits, ids)
    vectorised = true_fisher(net, digits, ids, batch_size=5, per_sample=True)  # 5 + 5 + 2
    one_by_one = true_fisher(net, digits, ids, batch_size=1)
    scripted = true_fisher(torch.jit.script(net), digits, ids, batch_size=5, per_sample=True)
    for name, value in expected.items():
        for got in (vectorised, one_by_one, scripted):
            torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-10)
    # the mini-batch estimate is another number
    batched = true_fisher(net, digits, ids, batch_size=6)
    assert not torch.allclose(batched["4.weight"], expected["4.weight"], rtol=0.1)


@pytest.mark.parametrize(
    "measure",
    [
        squared_gradient_importance,
        output_norm_importance,
        true_fisher,
        lambda *a, **k: true_fisher(*a, per_sample=True, **k),
    ],
    ids=["ssd", "lfssd", "fisher", "fisher-per-sample"],
)
def test_importances_run_in_eval_mode_and_leave_the_model_alone(
    measure: object, digits: Dataset
) -> None:
    net = _net(3).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ids = digits.train_ids[IDS]
    generator = torch.Generator().manual_seed(0)
    importance = measure(net, digits, ids, batch_size=4, generator=generator)  # type: ignore[operator]
    # eval mode inside (BatchNorm running statistics untouched), train mode restored
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    assert set(importance) == {name for name, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        assert importance[name].shape == p.shape
        assert (importance[name] >= 0).all() and importance[name].sum() > 0
    # a seeded shuffle is reproducible
    again = measure(net, digits, ids, batch_size=4, generator=torch.Generator().manual_seed(0))  # type: ignore[operator]
    assert all(torch.equal(importance[k], again[k]) for k in importance)


def test_label_free_importance_reads_no_labels(digits: Dataset) -> None:
    net = _net(4)
    ids = digits.train_ids[:40]
    scrambled = dataclasses.replace(digits, labels=(digits.labels + 1) % 10)
    lf = [output_norm_importance(net, d, ids, batch_size=16) for d in (digits, scrambled)]
    assert all(torch.equal(lf[0][k], lf[1][k]) for k in lf[0])
    ssd = [squared_gradient_importance(net, d, ids, batch_size=16) for d in (digits, scrambled)]
    assert not torch.equal(ssd[0]["4.weight"], ssd[1]["4.weight"])


# --- SSD and LFSSD --------------------------------------------------------------------------


def test_dampen_shrinks_only_selected_parameters() -> None:
    net = _net(5)
    old = {name: p.detach().clone() for name, p in net.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    full = {name: torch.rand(p.shape, generator=generator) for name, p in old.items()}
    forget = {name: 20 * torch.rand(p.shape, generator=generator) for name, p in old.items()}
    dampen(net, forget, full, alpha=10.0, dampening=2.0)
    selected_any = False
    for name, p in net.named_parameters():
        selected = forget[name] > 10 * full[name]
        selected_any |= bool(selected.any())
        factor = (2 * full[name] / forget[name]).clamp(max=1)
        expected = torch.where(selected, old[name] * factor, old[name])
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=0)
        assert (p.detach().abs() <= old[name].abs()).all()  # never scaled up
    assert selected_any
    # lambda large enough that every factor is capped at 1: nothing moves
    again = _net(5)
    dampen(again, forget, full, alpha=10.0, dampening=1e9)
    assert all(torch.equal(p.detach(), old[n]) for n, p in again.named_parameters())


def test_ssd_dampens_where_forget_importance_dominates(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    model = unlearn(
        "ssd", original, digits, class_splits, hyperparameters={"recalibrate_bn": False}
    ).model
    # the same importances the method computes: seed 0, forget first, then D
    generator = torch.Generator().manual_seed(0)
    net = copy.deepcopy(original.module)
    forget = squared_gradient_importance(
        net, digits, class_splits.forget, batch_size=64, generator=generator
    )
    full = squared_gradient_importance(
        net, digits, class_splits.members, batch_size=64, generator=generator
    )
    new = dict(model.module.named_parameters())
    selected_total = 0
    for name, old in original.module.named_parameters():
        selected = forget[name] > 10 * full[name]
        selected_total += int(selected.sum())
        expected = torch.where(selected, old * (full[name] / forget[name]).clamp(max=1), old)
        torch.testing.assert_close(new[name], expected)
        assert (new[name].abs() <= old.abs()).all()
    assert selected_total > 0
    new_buffers = dict(model.module.named_buffers())
    assert all(torch.equal(new_buffers[k], b) for k, b in original.module.named_buffers())


@pytest.mark.parametrize(("method", "max_drop"), [("ssd", 0.15), ("lfssd", 0.03)])
def test_ssd_forgets_a_class_and_keeps_the_others(
    method: str,
    max_drop: float,
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    acc = _accuracies(unlearn(method, original, digits, class_splits).model, digits, class_splits)
    assert acc["test_forget_class"] <= 0.10  # from 0.978
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - max_drop


@pytest.mark.parametrize("method", ["ssd", "lfssd"])
def test_ssd_barely_touches_a_random_request(
    method: str, original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    before = accuracy(original.module, digits, sample_splits.test)
    model = unlearn(method, original, digits, sample_splits).model
    assert accuracy(model.module, digits, sample_splits.test) >= before - 0.03


def test_lfssd_needs_no_labels(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    # same images and fingerprint, every label wrong: LFSSD cannot tell, SSD can
    scrambled = dataclasses.replace(digits, labels=(digits.labels + 1) % digits.num_classes)
    for method, same in (("lfssd", True), ("ssd", False)):
        runs = [unlearn(method, original, d, class_splits).model for d in (digits, scrambled)]
        assert (runs[0].fingerprint == runs[1].fingerprint) is same, method


# --- Fisher masking -------------------------------------------------------------------------


def _units(model: nn.Module) -> dict[str, torch.Tensor]:
    """Conv and linear weights: the tensors Fisher masking may zero."""
    return {
        f"{name}.weight": m.weight.detach()
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }


def test_masking_scores_average_conv_kernels(original: LoadedModel) -> None:
    net = original.module
    generator = torch.Generator().manual_seed(0)
    f_f = {n: torch.rand(p.shape, generator=generator) for n, p in net.named_parameters()}
    f_r = {n: torch.rand(p.shape, generator=generator) for n, p in net.named_parameters()}
    scores = masking_scores(net, f_f, f_r)
    assert set(scores) == set(_units(net))  # no biases, no BatchNorm
    for name, weight in _units(net).items():
        diff = f_f[name] - f_r[name]
        expected = diff.mean(dim=(2, 3)) if weight.dim() == 4 else diff
        torch.testing.assert_close(scores[name], expected)


def test_mask_top_zeros_exactly_the_top_ratio(original: LoadedModel) -> None:
    net = copy.deepcopy(original.module)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    shapes = {name: w.shape[:2] for name, w in _units(net).items()}
    scores = {name: torch.rand(shape, generator=generator) for name, shape in shapes.items()}
    total = sum(s.numel() for s in scores.values())
    count = mask_top(net, scores, 0.05)
    assert count == math.floor(0.05 * total)
    threshold = torch.cat([s.flatten() for s in scores.values()]).sort(descending=True)[0][
        count - 1
    ]
    after = net.state_dict()
    for key, old in before.items():
        if key not in scores:
            assert torch.equal(after[key], old), key  # biases, BatchNorm, buffers
            continue
        chosen = scores[key] >= threshold
        zeroed = after[key].flatten(2).eq(0).all(2) if old.dim() == 4 else after[key].eq(0)
        assert torch.equal(zeroed, chosen), key
        keep = ~chosen
        assert torch.equal(after[key][keep], old[keep]), key


def test_fisher_masking_zeros_the_top_scored_units(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    model = unlearn(
        "fisher-masking",
        original,
        digits,
        class_splits,
        hyperparameters={"recalibrate_bn": False},
    ).model
    generator = torch.Generator().manual_seed(0)
    net = copy.deepcopy(original.module)
    f_f = true_fisher(net, digits, class_splits.forget, batch_size=128, generator=generator)
    f_r = true_fisher(net, digits, class_splits.retain, batch_size=128, generator=generator)
    scores = masking_scores(net, f_f, f_r)
    flat = torch.cat([s.flatten() for s in scores.values()])
    count = math.floor(0.02 * flat.numel())
    # the top `count` by score; ties (e.g. dead units, score 0 on both sets) by position
    chosen_flat = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen_flat[flat.sort(descending=True, stable=True).indices[:count]] = True
    chosen = dict(zip(scores, chosen_flat.split([s.numel() for s in scores.values()]), strict=True))
    old_state, new_state = original.module.state_dict(), model.module.state_dict()
    zeroed_total = 0
    for key, old in old_state.items():
        new = new_state[key]
        if key not in scores:
            assert torch.equal(new, old), key
            continue
        changed = (new != old).flatten(2).any(2) if old.dim() == 4 else new != old
        assert torch.equal(changed, chosen[key].view(changed.shape)), key
        assert (new[changed] == 0).all()
        zeroed_total += int(changed.sum())
    assert zeroed_total == count


def test_fisher_masking_forgets_a_class_without_fine_tuning(
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    model = unlearn("fisher-masking", original, digits, class_splits).model
    acc = _accuracies(model, digits, class_splits)
    assert acc["test_forget_class"] <= 0.02
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.03


def test_fisher_masking_on_random_samples_needs_the_fine_tune(
    original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    before = accuracy(original.module, digits, sample_splits.test)
    masked = unlearn("fisher-masking", original, digits, sample_splits).model
    masked_acc = accuracy(masked.module, digits, sample_splits.test)
    # zeroing costs accuracy (random forget sets score mostly noise) but does not collapse
    assert 0.5 <= masked_acc <= before
    tuned = unlearn(
        "fisher-masking", original, digits, sample_splits, hyperparameters={"finetune_epochs": 2}
    ).model
    tuned_acc = accuracy(tuned.module, digits, sample_splits.test)
    # two epochs win back a clear part of it (+0.09 to +0.21 over method seeds and originals
    # trained on one or two threads), though not always all of it
    assert tuned_acc >= masked_acc + 0.05
    assert tuned_acc >= before - 0.2


# --- Fisher forgetting ----------------------------------------------------------------------


def test_noise_variance_clamps_averages_and_boosts() -> None:
    alpha = 1e-6
    # 1-D (bias / BatchNorm): alpha / F, capped at alpha * 1e3, times 10
    fisher = torch.tensor([0.0, 1e-4, 10.0])
    expected = torch.tensor([1e3, 1e3, 1 / (10.0 + 1e-8)]) * alpha * 10
    torch.testing.assert_close(noise_variance(fisher, alpha), expected)
    # 2-D: each output unit gets the mean over its inputs, no boost
    weight = torch.tensor([[1.0, 0.5], [0.0, 100.0]])
    rows = torch.tensor([(1 + 2) / 2, (1e3 + 0.01) / 2]) * alpha
    got = noise_variance(weight, alpha)
    torch.testing.assert_close(got, rows[:, None].expand(2, 2), rtol=1e-6, atol=0)
    # classifier: cap 1e2 and times 10; a forgotten row gets 1e-4 before the boost
    head = noise_variance(torch.zeros(3, 2), alpha, head=True, forget_rows=[1])
    torch.testing.assert_close(head[0], torch.full((2,), alpha * 1e2 * 10))
    torch.testing.assert_close(head[1], torch.full((2,), FORGOTTEN_ROW_VARIANCE * 10))


def test_fisher_noise_follows_the_variance(original: LoadedModel) -> None:
    net = copy.deepcopy(original.module)
    head = classifier_layer(net, 10)
    assert isinstance(head, nn.Linear)
    zeros = {name: torch.zeros_like(p) for name, p in net.named_parameters()}
    old = {name: p.detach().clone() for name, p in net.named_parameters()}
    alpha = 1e-4
    add_fisher_noise(net, zeros, alpha, generator=torch.Generator().manual_seed(0), head=head)
    head_names = {
        f"{n}.{k}" for n, m in net.named_modules() if m is head for k in ("weight", "bias")
    }
    for name, p in net.named_parameters():
        delta = p.detach() - old[name]
        if delta.numel() < 200:
            continue  # too few draws for a std estimate
        if name in head_names:
            expected = math.sqrt(alpha * 1e2 * 10)
        elif p.dim() == 1:
            expected = math.sqrt(alpha * 1e3 * 10)
        else:
            expected = math.sqrt(alpha * 1e3)
        assert float(delta.std()) == pytest.approx(expected, rel=0.15), name
    # a large Fisher leaves the weight where it was
    quiet = copy.deepcopy(original.module)
    large = {name: torch.full_like(p, 1e6) for name, p in quiet.named_parameters()}
    add_fisher_noise(quiet, large, 1e-6, generator=torch.Generator().manual_seed(0))
    for name, p in quiet.named_parameters():
        torch.testing.assert_close(p.detach(), old[name], rtol=0, atol=1e-4)


def test_fisher_noise_resets_the_forgotten_rows(original: LoadedModel) -> None:
    net = copy.deepcopy(original.module)
    head = classifier_layer(net, 10)
    assert isinstance(head, nn.Linear)
    old_weight, old_bias = head.weight.detach().clone(), head.bias.detach().clone()
    zeros = {name: torch.zeros_like(p) for name, p in net.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    add_fisher_noise(net, zeros, 1e-30, generator=generator, head=head, forget_rows=[3])
    row_std = math.sqrt(FORGOTTEN_ROW_VARIANCE * 10)
    assert float(head.weight[3].detach().std()) == pytest.approx(row_std, rel=0.25)
    assert abs(float(head.weight[3].detach().mean())) < 3 * row_std / math.sqrt(head.in_features)
    assert abs(float(head.bias[3].detach())) < 4 * row_std
    others = [c for c in range(10) if c != 3]
    torch.testing.assert_close(head.weight[others], old_weight[others], rtol=0, atol=1e-10)
    torch.testing.assert_close(head.bias[others], old_bias[others], rtol=0, atol=1e-10)


def test_classifier_layer_is_the_last_linear_with_c_outputs(original: LoadedModel) -> None:
    assert classifier_layer(original.module, 10) is _head(original)
    assert classifier_layer(original.module, 7) is None
    conv_only = nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten())
    assert classifier_layer(conv_only, 10) is None


@pytest.fixture(scope="module")
def forgotten_class(original: LoadedModel, digits: Dataset, class_splits: Splits) -> LoadedModel:
    return unlearn("fisher-forgetting", original, digits, class_splits).model


def test_fisher_forgetting_forgets_a_class_and_keeps_the_others(
    forgotten_class: LoadedModel,
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
    original_accuracy: dict[str, float],
) -> None:
    acc = _accuracies(forgotten_class, digits, class_splits)
    assert acc["test_forget_class"] <= 0.02
    assert acc["test_retain_class"] >= original_accuracy["test_retain_class"] - 0.07
    # the forgotten row is redrawn around 0 with variance 1e-3; the others stay near theirs
    new, old = _head(forgotten_class), _head(original)
    assert float(new.weight[FORGET_CLASS].detach().std()) < 2 * math.sqrt(
        FORGOTTEN_ROW_VARIANCE * 10
    )
    assert float(old.weight[FORGET_CLASS].detach().std()) > 3 * math.sqrt(
        FORGOTTEN_ROW_VARIANCE * 10
    )


def test_fisher_forgetting_keeps_a_random_request_usable(
    original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    before = accuracy(original.module, digits, sample_splits.test)
    model = unlearn("fisher-forgetting", original, digits, sample_splits).model
    assert accuracy(model.module, digits, sample_splits.test) >= before - 0.07


def test_fisher_forgetting_minibatch_fisher_is_another_scale(
    forgotten_class: LoadedModel, original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    # the mini-batch Fisher of a confident model is far larger, so the same alpha adds less
    # noise: the weights move less
    batched = unlearn(
        "fisher-forgetting",
        original,
        digits,
        class_splits,
        hyperparameters={"per_sample": False},
    ).model

    def moved(model: LoadedModel) -> float:
        pairs = zip(model.module.parameters(), original.module.parameters(), strict=True)
        return sum(float((a - b).detach().pow(2).sum()) for a, b in pairs)

    assert batched.fingerprint != forgotten_class.fingerprint
    assert moved(batched) < moved(forgotten_class) / 3


def test_fisher_forgetting_needs_a_linear_head_for_classes(
    original: LoadedModel, digits: Dataset, class_splits: Splits
) -> None:
    conv_only = Classifier(nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten()), None)
    headless = dataclasses.replace(original, module=conv_only, fingerprint="")
    spec = methods.fisher_forgetting.fisher_forgetting
    with pytest.raises(ConfigError, match="no Linear with 10 outputs"):
        spec.run(
            headless,
            digits,
            class_splits,
            seed=0,
            device=torch.device("cpu"),
            progress=False,
            **spec.defaults,
        )


# --- seeds and bad hyperparameters (the same seed gives the same model: the conformance suite
# runs every method twice) ---------------------------------------------------------------------


def test_fisher_forgetting_noise_depends_on_the_seed(
    original: LoadedModel, digits: Dataset, sample_splits: Splits
) -> None:
    prints = {
        unlearn(
            "fisher-forgetting",
            original,
            digits,
            sample_splits,
            hyperparameters={"retain_fraction": 0.25},
            seed=seed,
        ).model.fingerprint
        for seed in (0, 1)
    }
    assert len(prints) == 2


@pytest.mark.parametrize(
    ("method", "key", "value", "message"),
    [
        ("ssd", "alpha", 0, r"^`alpha` must be a finite number > 0; got 0\.0\."),
        ("ssd", "dampening", -1, r"^`dampening` must be a finite number > 0"),
        ("ssd", "batch_size", 0, r"^`batch_size` must be an integer >= 1; got 0\."),
        ("lfssd", "alpha", "inf", r"^`alpha` must be a finite number"),
        ("fisher-masking", "remove_ratio", 1, r"^`remove_ratio` must be a number strictly"),
        ("fisher-masking", "finetune_epochs", -1, r"^`finetune_epochs` must be an integer >= 0"),
        ("fisher-masking", "lr", -1, r"^`lr` must be"),
        ("fisher-masking", "batch_size", 0, r"^`batch_size` must be"),
        ("fisher-masking", "retain_fraction", 0, r"^`retain_fraction` must be a number in"),
        ("fisher-masking", "fisher_batch_size", 0, r"^`fisher_batch_size` must be an integer"),
        ("fisher-forgetting", "alpha", -1e-6, r"^`alpha` must be a finite number > 0"),
        ("fisher-forgetting", "fisher_batch_size", 0, r"^`fisher_batch_size` must be"),
        ("fisher-forgetting", "retain_fraction", 1.5, r"^`retain_fraction` must be a number"),
        ("fisher-forgetting", "per_sample", "maybe", r"^`per_sample` must be true or false"),
    ],
)
def test_bad_hyperparameters(
    method: str,
    key: str,
    value: object,
    message: str,
    original: LoadedModel,
    digits: Dataset,
    class_splits: Splits,
) -> None:
    with pytest.raises(ConfigError, match=message):
        unlearn(method, original, digits, class_splits, hyperparameters={key: value})
