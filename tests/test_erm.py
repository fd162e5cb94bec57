"""The entanglement-reduced mask (ERM, seed 000): its maths, the layer, alternate training.

The maths is tested against a loop-by-loop reference written from the paper's equations, by
properties and on hand-computed cases. Training tests use a 3-epoch recipe, whose third epoch
(index 2) is the one ERM-path epoch of the default period 3; the fully trained ERM original and
what erm-ktp does with it are in tests/methods/test_erm_ktp.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unlearn_audit.checks.representation import RepresentationEvidence
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits
from unlearn_audit.erm import erm_logits, erm_net, is_erm_epoch
from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.erm import (
    channel_keep,
    erm_regulariser,
    expand_channel_mask,
    normalise_and_clip,
    zero_rows,
)
from unlearn_audit.functional.representation import csi, l1_density
from unlearn_audit.models.checkpoints import LoadedModel, load_checkpoint, save_checkpoint
from unlearn_audit.models.erm import ErmNet, erm_mask
from unlearn_audit.models.layers import find_layers
from unlearn_audit.models.zoo import build_model
from unlearn_audit.pipeline import audit
from unlearn_audit.store import Store
from unlearn_audit.train import Recipe, train_classifier
from unlearn_audit.update_log import UpdateRecorder

QUICK = Recipe(lr=0.05, epochs=3, batch_size=64)
ERM = {"base": "small-cnn"}


# --- the maths ---------------------------------------------------------------------------


def _reference_regulariser(g: np.ndarray, density: float, orthogonality: float) -> float:
    """Eq. (4) with p = 1 and Eq. (6), written as loops over entries and class pairs."""
    c, k = g.shape
    l1 = sum(abs(g[i, j]) for i in range(c) for j in range(k))
    inner = sum(float(np.dot(g[a], g[b])) for a in range(c) for b in range(a + 1, c))
    return max(l1 - density * c * k, 0.0) + orthogonality * inner


@pytest.mark.parametrize(("shape", "seed"), [((10, 64), 0), ((3, 5), 1), ((2, 7), 2)])
def test_regulariser_matches_the_reference(shape: tuple[int, int], seed: int) -> None:
    g = np.random.default_rng(seed).uniform(0, 1, size=shape)
    for density, orthogonality in ((0.1, 0.1), (0.5, 1.0), (1.0, 0.0)):
        got = erm_regulariser(torch.tensor(g), density=density, orthogonality=orthogonality)
        assert float(got) == pytest.approx(
            _reference_regulariser(g, density, orthogonality), rel=1e-12, abs=1e-12
        )


def test_regulariser_hand_computed_and_properties() -> None:
    # ||G||_1 = 3 over a budget of 0.1 * 4; rows overlap by 0.5 + 0.5 = 1
    g = torch.tensor([[1.0, 0.5], [0.5, 1.0]], requires_grad=True)
    value = erm_regulariser(g)
    assert value.item() == pytest.approx(2.6 + 0.1 * 1.0)
    value.backward()
    # d/dG[c, k] = 1 (L1, over budget) + 0.1 * G[other row, k]
    assert torch.allclose(g.grad, torch.tensor([[1.05, 1.1], [1.1, 1.05]]))
    # the ideal ERM structure costs nothing: one class per channel, within the 1/C budget
    assert float(erm_regulariser(torch.eye(10))) == 0.0
    assert float(erm_regulariser(torch.zeros(4, 3))) == 0.0
    # within budget only the overlap counts
    assert float(erm_regulariser(torch.ones(2, 3), density=1.0)) == pytest.approx(0.1 * 3)


def test_normalise_and_clip() -> None:
    g = torch.tensor([[0.5, -0.2, 0.0, 3.0], [0.25, -0.1, 0.0, -1.0]])
    out = normalise_and_clip(g)
    # per channel: divided by its peak over classes, then clipped; a column with no positive
    # entry becomes 0 (no NaN from dividing by 0 or by a negative peak)
    assert torch.equal(out, torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 0.0]]))
    rng = torch.Generator().manual_seed(0)
    g = torch.randn(10, 64, generator=rng)
    out = normalise_and_clip(g)
    assert out.min() >= 0 and out.max() <= 1 and not out.isnan().any()
    peaks = out.max(dim=0).values
    assert torch.all((peaks == 1) | (peaks == 0))
    assert torch.equal(normalise_and_clip(out), out)  # a projection: idempotent
    # the repository's starting point: all 0.5 becomes all 1 after the first step
    assert torch.equal(normalise_and_clip(torch.full((3, 4), 0.5)), torch.ones(3, 4))


def test_channel_keep_and_zero_rows() -> None:
    g = torch.tensor([[1.0, 0.0, 0.2, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    # any positive entry prohibits the channel (the repository's rule)
    assert channel_keep(g, [0]).tolist() == [False, True, False, True]
    # several classes: a channel stays only if it carries none of them (Eq. 10)
    assert channel_keep(g, [0, 1]).tolist() == [False, False, False, True]
    assert channel_keep(g, (2, 0)).tolist() == [False, True, False, False]
    # the paper's wording ("= 1" is prohibited) as a threshold
    assert channel_keep(g, [0], threshold=0.5).tolist() == [False, True, True, True]
    out = zero_rows(g, [0, 2])
    assert torch.equal(out[1], g[1]) and not out[[0, 2]].any()
    assert g[0, 0] == 1.0  # a copy
    for bad in ([], [3], [-1]):
        with pytest.raises(ConfigError, match=r"^`classes` must be"):
            channel_keep(g, bad)
    with pytest.raises(ConfigError, match=r"^`g` must be"):
        channel_keep(torch.zeros(4), [0])


def test_expand_channel_mask() -> None:
    keep = torch.tensor([True, False])
    assert expand_channel_mask(keep, 2).tolist() == [True, False]
    # a flattened (K, H, W) map: channel-major, as torch.flatten lays it out
    assert expand_channel_mask(keep, 6).tolist() == [True] * 3 + [False] * 3
    z = torch.randn(1, 2, 1, 3)
    assert torch.equal(
        z.flatten(1) * expand_channel_mask(keep, 6), (z * keep[:, None, None]).flatten(1)
    )
    with pytest.raises(ConfigError, match=r"^`in_features` must be"):
        expand_channel_mask(keep, 5)


# --- the layer and the network -----------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "channels"), [("small-cnn", 64), ("lenet", 16), ("resnet20", 64), ("resnet18", 512)]
)
def test_standard_path_is_the_base_network(base: str, channels: int) -> None:
    torch.manual_seed(0)
    net = build_model("erm", 4, (1, 8, 8), arch_kwargs={"base": base}).eval()
    assert isinstance(net, ErmNet)
    assert net.erm_mask.shape == (4, channels)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), net.base(x))
        # G all ones: the ERM path is the standard path
        net.erm_mask.fill_(1.0)
        assert torch.equal(net(x, labels=torch.tensor([0, 1, 3])), net(x))
    # the checks read the base's layers: the last conv and the input of the last Linear
    layers = find_layers(net)
    assert layers.conv is not None and layers.conv.startswith("base.")
    assert layers.features.startswith("base.")


def test_erm_path_masks_each_sample_by_its_label() -> None:
    torch.manual_seed(0)
    net = build_model("erm", 3, (1, 8, 8), arch_kwargs=ERM).eval()
    assert isinstance(net, ErmNet)
    x = torch.rand(4, 1, 8, 8)
    labels = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        net.erm_mask.copy_(torch.rand(3, 64))
        z = net.feature_map(x)
        expected = net.classify(z * net.erm_mask[labels][:, :, None, None])
        assert torch.allclose(net(x, labels=labels), expected)
        # prohibiting class 0 switches off its channels on either path
        net.erm_mask[0, :32] = 0.0
        keep = (net.erm_mask[0] <= 0).float()
        assert torch.allclose(net(x, prohibit=[0]), net.classify(z * keep[None, :, None, None]))


def test_bases_without_a_conv_stage_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"`erm` needs a CNN .*got 'mlp'.*`arch`"):
        build_model("erm", 10, (1, 8, 8), arch_kwargs={"base": "mlp"})
    with pytest.raises(ConfigError, match="single CNN"):
        build_model("erm", 10, (1, 8, 8), arch_kwargs={"base": "sisa"})
    with pytest.raises(ConfigError, match=r"^`erm_period` must be an integer >= 2"):
        build_model("erm", 10, (1, 8, 8), arch_kwargs={**ERM, "period": 1})
    with pytest.raises(ConfigError, match=r"^`erm_lambda` must be a number >= 0"):
        build_model("erm", 10, (1, 8, 8), arch_kwargs={**ERM, "lambda_reg": -1.0})


# --- alternate training --------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_erm(digits: Dataset) -> LoadedModel:
    return train_classifier(digits, arch="erm", arch_kwargs=ERM, recipe=QUICK, progress=False)


def test_alternation_schedule() -> None:
    # the repository's `epoch % mask_period >= mask_epoch_min` with 3 and 2
    assert [is_erm_epoch(e, 3) for e in range(7)] == [False, False, True] * 2 + [False]
    assert [is_erm_epoch(e, 2) for e in range(4)] == [False, True, False, True]


def test_training_alternates_and_projects_g(quick_erm: LoadedModel) -> None:
    epochs = quick_erm.info.extra["history"]["epochs"]
    assert [e["erm_path"] for e in epochs] == [0.0, 0.0, 1.0]
    net = erm_net(quick_erm.module)
    assert net is not None
    g = net.erm_mask.detach()
    assert g.min() >= 0 and g.max() <= 1
    peaks = g.max(dim=0).values
    assert torch.all((peaks == 1) | (peaks == 0))
    # standard epochs leave G as the first projection made it (0.5 -> all ones); the ERM
    # epoch moves it
    assert epochs[0]["l1_density"] == epochs[1]["l1_density"] == 1.0
    assert epochs[2]["l1_density"] < 1.0 and (g < 1).any()


def test_training_is_seeded(digits: Dataset) -> None:
    members = digits.train_ids[:200]

    def train(seed: int) -> LoadedModel:
        return train_classifier(
            digits,
            arch="erm",
            arch_kwargs=ERM,
            recipe=QUICK,
            member_ids=members,
            seed=seed,
            progress=False,
        )

    first = train(0)
    assert train(0).fingerprint == first.fingerprint
    assert train(1).fingerprint != first.fingerprint


def test_checkpoint_round_trip_keeps_g(
    quick_erm: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    path = save_checkpoint(quick_erm, tmp_path / "erm.safetensors")
    loaded = load_checkpoint(path, dataset=digits)
    assert loaded.fingerprint == quick_erm.fingerprint
    assert loaded.info.arch == "erm" and loaded.info.arch_kwargs == ERM
    g = erm_mask(loaded)
    assert g is not None and g.shape == (10, 64)
    before = erm_net(quick_erm.module)
    assert before is not None
    assert np.array_equal(g, before.erm_mask.detach().double().numpy())
    x, y = digits.load(digits.heldout_ids[:50])
    with torch.no_grad():
        assert torch.equal(erm_logits(loaded.module, x, y), erm_logits(quick_erm.module, x, y))


def test_store_keys_tell_erm_training_apart(digits: Dataset, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    members = digits.train_ids[:100]

    def train(arch: str, kwargs: dict[str, object]) -> LoadedModel:
        return train_classifier(
            digits,
            arch=arch,
            arch_kwargs=kwargs,
            recipe=QUICK.with_options(epochs=1),
            member_ids=members,
            store=store,
            progress=False,
        )

    plain, erm = train("small-cnn", {}), train("erm", ERM)
    assert store.misses == 2 and erm_net(plain.module) is None and erm_net(erm.module) is not None
    assert train("erm", ERM).fingerprint == erm.fingerprint and store.misses == 2
    train("erm", {**ERM, "lambda_reg": 0.5})
    assert store.misses == 3


def test_erm_refuses_an_update_log(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="drop one of `update_log` and `erm`"):
        train_classifier(digits, arch="erm", arch_kwargs=ERM, update_log=UpdateRecorder())


def test_erm_path_needs_an_erm_model(quick_model: LoadedModel, digits: Dataset) -> None:
    x, y = digits.load(digits.heldout_ids[:4])
    with pytest.raises(ConfigError, match=r"unlearn-audit train --erm"):
        erm_logits(quick_model.module, x, y)


def test_representation_check_reports_the_real_g(
    quick_erm: LoadedModel, quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    splits = make_splits(digits, ForgetRequest.classes(3))
    result = audit(
        original=quick_erm,
        unlearned=quick_model,
        dataset=digits,
        request=splits,
        profile="quick",
        checks=["representation"],
        store=Store(tmp_path / "store"),
    )
    evidence = result.checks["representation"].evidence
    assert isinstance(evidence, RepresentationEvidence)
    # only the ERM model has a G; the plain one is summarised by channel relevance only
    assert evidence.erm is not None and set(evidence.erm) == {"original"}
    g = erm_mask(quick_erm)
    assert g is not None
    total, mean = csi(g)
    summary = evidence.erm["original"]
    assert (summary.csi, summary.csi_mean, summary.l1_density) == pytest.approx(
        (total, mean, l1_density(g))
    )
    assert evidence.relevance is not None
    assert set(evidence.relevance) == {"original", "unlearned"}
