"""The channels-last layout of CPU passes: same function, the default layout afterwards, and
networks that cannot take it keep the default."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.loop import accuracy, fit
from unlearn_audit.models.layers import fast_layout, in_fast_layout
from unlearn_audit.models.zoo import build_model
from unlearn_audit.recipe import Recipe

CPU = torch.device("cpu")


class ViewNet(nn.Module):
    """A conv net whose forward flattens with `.view`, which needs contiguous tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).view(x.shape[0], -1))


def _contiguous(module: nn.Module) -> bool:
    return all(t.is_contiguous() for t in module.state_dict().values())


def test_a_conv_net_runs_channels_last_on_cpu_and_computes_the_same() -> None:
    torch.manual_seed(0)
    net = build_model("small-cnn", 10, (1, 8, 8)).eval()
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        expected = net(x)
    with in_fast_layout(net, CPU, (1, 8, 8)) as layout:
        assert layout is torch.channels_last
        conv = net.features[3]  # 32 -> 32 channels (one input channel is both layouts)
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert not conv.weight.is_contiguous()
        with torch.no_grad():
            got = net(x.contiguous(memory_format=layout))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert _contiguous(net), "the default layout after the block"


@pytest.mark.parametrize(
    "make",
    [
        lambda: ViewNet(),  # needs contiguous tensors
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),  # no convolution
        lambda: torch.jit.script(ViewNet()),  # compiled
    ],
    ids=["view", "mlp", "torchscript"],
)
def test_networks_that_cannot_gain_keep_the_default_layout(make: object) -> None:
    net = make()  # type: ignore[operator]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert fast_layout(net, CPU, (1, 8, 8)) is torch.contiguous_format
    assert _contiguous(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_cuda_keeps_the_default_layout() -> None:
    net = build_model("small-cnn", 10, (1, 8, 8))
    assert fast_layout(net, torch.device("cuda"), (1, 8, 8)) is torch.contiguous_format
    assert _contiguous(net)


def test_training_and_accuracy_leave_models_in_the_default_layout(digits: Dataset) -> None:
    recipe = Recipe(lr=0.05, epochs=1, batch_size=64)
    ids = digits.train_ids[:256]
    for net in (build_model("small-cnn", 10, (1, 8, 8)), ViewNet()):
        from unlearn_audit.models.layers import Classifier

        model = Classifier(net, digits.normalization)
        trained = fit(model, digits, ids, recipe, progress=False).model
        assert _contiguous(trained) and _contiguous(model)
        assert 0.0 <= accuracy(trained, digits, ids) <= 1.0
        assert _contiguous(trained)
        assert not trained.training


def test_evaluating_between_training_steps_keeps_the_training_layout(digits: Dataset) -> None:
    """An accuracy read from inside training (the relearn probe) neither converts the model
    back nor dry-runs it: training goes on in channels-last."""
    from unlearn_audit.models.layers import Classifier

    layouts: list[bool] = []
    forwards: list[int] = []

    def probe(state) -> bool:  # type: ignore[no-untyped-def]
        handle = state.model.register_forward_hook(lambda m, i, o: forwards.append(len(i[0])))
        accuracy(state.model, digits, digits.train_ids[:100])
        handle.remove()
        conv = state.model.net.features[3]
        layouts.append(conv.weight.is_contiguous(memory_format=torch.channels_last))
        return state.step >= 3

    model = Classifier(build_model("small-cnn", 10, (1, 8, 8)), digits.normalization)
    recipe = Recipe(lr=0.05, epochs=1, batch_size=64)
    trained = fit(model, digits, digits.train_ids[:512], recipe, on_step=probe).model
    assert layouts == [True] * 3
    assert forwards == [100] * 3, "one pass over the samples, no dry run"
    assert _contiguous(trained)
