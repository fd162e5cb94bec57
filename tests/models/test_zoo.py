from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from unlearn_audit.errors import ConfigError, RegistryError
from unlearn_audit.models.layers import (
    Classifier,
    LayerRecorder,
    find_layers,
    model_fingerprint,
    penultimate_features,
)
from unlearn_audit.models.zoo import ARCHS, arch_fingerprint, build_model

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("arch", ["mlp", "lenet", "small-cnn", "resnet18", "resnet20"])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_arch_builds_for_every_shape(arch: str, shape: tuple[int, int, int]) -> None:
    net = build_model(arch, 7, shape).eval()
    with torch.no_grad():
        out = net(torch.rand(2, *shape))
    assert out.shape == (2, 7)
    layers = find_layers(net)
    if arch == "mlp":
        assert layers.conv is None
    else:
        assert isinstance(dict(net.named_modules())[layers.conv], nn.Conv2d)
    logits, features = penultimate_features(net, torch.rand(3, *shape), layers)
    head = dict(net.named_modules())[layers.features]
    assert isinstance(head, nn.Linear) and features.shape == (3, head.in_features)
    assert torch.allclose(head(features), logits, atol=1e-5)


def test_resnet18_is_adapted_to_small_inputs() -> None:
    net = build_model("resnet18", 10, (1, 28, 28))
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert net.conv1.in_channels == 1
    assert isinstance(net.maxpool, nn.Identity)
    assert find_layers(net).conv == "layer4.1.conv2"
    assert find_layers(net).features == "fc"


def test_zoo_registry() -> None:
    assert ARCHS.names() == ["erm", "lenet", "mlp", "resnet18", "resnet20", "sisa", "small-cnn"]
    with pytest.raises(RegistryError, match="Did you mean 'resnet18'"):
        build_model("resnet81", 10, (1, 8, 8))
    with pytest.raises(ConfigError, match="at least 4x4"):
        build_model("small-cnn", 10, (1, 2, 2))


def test_arch_kwargs_are_passed() -> None:
    net = build_model("small-cnn", 3, (1, 8, 8), arch_kwargs={"width": 8})
    assert net.features[0].out_channels == 8
    with pytest.raises(ConfigError, match="cannot be built"):
        build_model("small-cnn", 3, (1, 8, 8), arch_kwargs={"depth": 8})


FOREIGN = textwrap.dedent(
    """
    from torch import nn

    def tiny(num_classes):
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def no_args():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    not_callable = 3
    """
)


@pytest.fixture()
def foreign_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "my_nets.py"
    path.write_text(FOREIGN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


def test_foreign_arch_by_import_path_and_file(foreign_module: Path) -> None:
    by_module = build_model("my_nets:tiny", 5, (1, 8, 8))
    assert by_module(torch.rand(2, 1, 8, 8)).shape == (2, 5)
    by_file = build_model(f"{foreign_module}:tiny", 4, (1, 8, 8))
    assert by_file(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    assert build_model("my_nets:no_args", 10, (1, 8, 8))(torch.rand(1, 1, 8, 8)).shape == (1, 10)
    assert find_layers(by_module).conv == "0"
    assert find_layers(by_module).features == "5"


def test_foreign_arch_errors(foreign_module: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot import 'no_such_pkg\.nets'"):
        build_model("no_such_pkg.nets:f", 10, (1, 8, 8))
    with pytest.raises(ConfigError, match="no callable named 'missing'"):
        build_model("my_nets:missing", 10, (1, 8, 8))
    with pytest.raises(ConfigError, match="no callable named 'not_callable'"):
        build_model("my_nets:not_callable", 10, (1, 8, 8))
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(f"{tmp_path}/nope.py:tiny", 10, (1, 8, 8))
    broken = tmp_path / "broken.py"
    broken.write_text("def tiny(num_classes):\n    return (\n")
    with pytest.raises(ConfigError, match=r"is not valid Python \(line 2: .*\); fix the file"):
        build_model(f"{broken}:tiny", 10, (1, 8, 8))


def test_find_layers_in_torchscript() -> None:
    net = build_model("small-cnn", 10, (1, 8, 8))
    scripted = torch.jit.script(net)
    eager, script = find_layers(net), find_layers(scripted)
    assert script == eager
    assert script.conv == "features.10" and script.features == "head.3"


def test_named_layers_override_and_errors() -> None:
    net = build_model("small-cnn", 10, (1, 8, 8))
    layers = find_layers(net, conv_layer="features.0", feature_layer="pool")
    assert layers.conv == "features.0" and layers.features_from == "output"
    _, features = penultimate_features(net.eval(), torch.rand(2, 1, 8, 8), layers)
    assert features.shape == (2, 64)
    with pytest.raises(ConfigError, match="must name a submodule"):
        find_layers(net, conv_layer="features.109")
    with pytest.raises(ConfigError, match=r"no nn\.Linear"):
        find_layers(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_recorder_removes_hooks_and_refuses_torchscript() -> None:
    net = build_model("small-cnn", 10, (1, 8, 8)).eval()
    with LayerRecorder(net, {"conv": ("features.10", "output")}) as rec:
        net(torch.rand(2, 1, 8, 8))
        assert rec.get("conv").shape == (2, 64, 4, 4)
    assert not net.features[10]._forward_hooks
    scripted = torch.jit.script(net)
    with (
        pytest.raises(ConfigError, match="TorchScript"),
        LayerRecorder(scripted, {"f": ("head.3", "input")}),
    ):
        scripted(torch.rand(2, 1, 8, 8))


def test_classifier_normalises_inputs() -> None:
    from unlearn_audit.data.datasets import Normalization

    inner = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    wrapped = Classifier(inner, Normalization((0.5,), (0.25,)))
    x = torch.rand(3, 1, 2, 2)
    assert torch.allclose(wrapped(x), inner((x - 0.5) / 0.25))
    assert torch.equal(Classifier(inner, None)(x), inner(x))


def test_layer_names_relative_to_the_wrapped_network() -> None:
    wrapped = Classifier(build_model("small-cnn", 10, (1, 8, 8)), None)
    layers = find_layers(wrapped, conv_layer="features.0", feature_layer="pool")
    assert layers.conv == "net.features.0" and layers.features == "net.pool"
    assert find_layers(wrapped).conv == "net.features.10"
    with pytest.raises(ConfigError, match="must name a submodule"):
        find_layers(wrapped, conv_layer="nonexistent")


def test_an_architecture_file_is_fingerprinted_alike_in_every_process(tmp_path: Path) -> None:
    """Its module name once came from ``hash()`` of the path, which changes with every process:
    a later audit retrained every stored model of a file architecture, and Ray workers refused
    the driver's jobs as code that differs."""
    arch = f"{Path(__file__).resolve().parents[1] / 'foreign_arch.py'}:tiny"
    code = (
        "import sys; from unlearn_audit.models.zoo import arch_fingerprint, build_model; "
        "from unlearn_audit.models.layers import model_fingerprint; import torch; "
        f"torch.manual_seed(0); net = build_model({arch!r}, 10, (1, 8, 8)); "
        f"print(arch_fingerprint({arch!r}), model_fingerprint(net))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(runs) == 1, runs
    torch.manual_seed(0)
    here = f"{arch_fingerprint(arch)} {model_fingerprint(build_model(arch, 10, (1, 8, 8)))}\n"
    assert runs == {here}
    moved = shutil.copy(arch.rpartition(":")[0], tmp_path / "net.py")
    assert arch_fingerprint(f"{moved}:tiny") == arch_fingerprint(arch), "the code, not the path"
