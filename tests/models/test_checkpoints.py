from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from unlearn_audit.data.datasets import Dataset, InMemorySamples, make_dataset
from unlearn_audit.errors import CheckpointError, CheckpointNotFoundError, UnsafeCheckpointError
from unlearn_audit.models.checkpoints import (
    LoadedModel,
    ModelInfo,
    load_checkpoint,
    save_checkpoint,
    wrap_model,
)
from unlearn_audit.models.zoo import SmallCNN, build_model


def _same_outputs(a: LoadedModel, b: LoadedModel, digits: Dataset) -> bool:
    x, _ = digits.load(digits.heldout_ids[:64])
    with torch.no_grad():
        return torch.equal(a.module(x), b.module(x))


def test_own_format_round_trip(quick_model: LoadedModel, digits: Dataset, tmp_path: Path) -> None:
    path = save_checkpoint(quick_model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.kind == "own"
    assert loaded.fingerprint == quick_model.fingerprint
    assert loaded.info == quick_model.info
    assert loaded.info.dataset == "digits" and loaded.info.recipe["epochs"] == 3
    assert loaded.info.members_fingerprint == quick_model.info.members_fingerprint
    assert loaded.normalization == digits.normalization
    assert _same_outputs(loaded, quick_model, digits)
    assert load_checkpoint(path, dataset=digits).fingerprint == quick_model.fingerprint
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_fingerprint_changes_with_any_weight(quick_model: LoadedModel) -> None:
    net = build_model("small-cnn", 10, (1, 8, 8))
    net.load_state_dict(quick_model.module.net.state_dict())
    same = wrap_model(net, quick_model.info, quick_model.normalization)
    assert same.fingerprint == quick_model.fingerprint
    with torch.no_grad():
        net.head[3].bias[0] += 1e-6
    changed = wrap_model(net, quick_model.info, quick_model.normalization)
    assert changed.fingerprint != quick_model.fingerprint
    renormed = wrap_model(net, quick_model.info, None)
    assert renormed.fingerprint != changed.fingerprint


class _Shift:
    """A hook object (as weight_norm's are): its repr holds its address."""

    def __call__(self, module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        return out + 0.0


class _MaskedSmallCNN(SmallCNN):
    """An output-level fake over the original's own weights and parameter names."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x).clone()
        logits[:, 3] = -1e4
        return logits


def test_a_fake_over_the_same_weights_has_its_own_fingerprint(quick_model: LoadedModel) -> None:
    """The fingerprint keys stored outputs: one that hashed weights alone would serve a fake the
    original's outputs (or store the fake's under the original's key)."""
    weights = quick_model.module.net.state_dict()

    def fingerprint(net: nn.Module) -> str:
        net.load_state_dict(weights)
        return wrap_model(net, quick_model.info, quick_model.normalization).fingerprint

    subclass = _MaskedSmallCNN(10, (1, 8, 8))
    assert subclass.state_dict().keys() == weights.keys()
    assert fingerprint(subclass) != quick_model.fingerprint
    hooked = build_model("small-cnn", 10, (1, 8, 8))
    hooked.register_forward_hook(lambda _m, _a, out: out - 100 * (out.argmax(1) == 3)[:, None])
    assert fingerprint(hooked) != quick_model.fingerprint
    unmasked = build_model("small-cnn", 10, (1, 8, 8))
    assert fingerprint(unmasked) == quick_model.fingerprint
    # the same hook objects on two builds: the same fingerprint (no address in it)
    twins = [build_model("small-cnn", 10, (1, 8, 8)) for _ in range(2)]
    for twin in twins:
        twin.register_forward_hook(_Shift())
    assert fingerprint(twins[0]) == fingerprint(twins[1]) != quick_model.fingerprint
    silent = build_model("small-cnn", 10, (1, 8, 8))
    silent.register_buffer("mask", torch.zeros(10), persistent=False)  # not in the state dict
    assert fingerprint(silent) != quick_model.fingerprint
    setting = build_model("small-cnn", 10, (1, 8, 8))
    setting.head[0].start_dim = 0  # a plain setting the forward reads
    assert fingerprint(setting) != quick_model.fingerprint


def test_state_dict_with_zoo_name(
    quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "sd.pt"
    torch.save(quick_model.module.net.state_dict(), path)
    loaded = load_checkpoint(path, dataset=digits, arch="small-cnn")
    assert loaded.kind == "state_dict"
    assert loaded.normalization == digits.normalization  # the dataset's usual one by default
    assert loaded.fingerprint == quick_model.fingerprint
    assert _same_outputs(loaded, quick_model, digits)
    raw = load_checkpoint(path, dataset=digits, arch="small-cnn", normalize="none")
    assert raw.normalization is None and raw.fingerprint != quick_model.fingerprint
    custom = load_checkpoint(path, dataset=digits, arch="small-cnn", normalize="0.5,0.5")
    assert custom.normalization.mean == (0.5,)


def test_state_dict_wrapped_and_prefixed(
    quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    state = {f"module.{k}": v for k, v in quick_model.module.net.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": state}, path)
    loaded = load_checkpoint(path, dataset=digits, arch="small-cnn")
    assert loaded.fingerprint == quick_model.fingerprint


def test_foreign_safetensors_with_arch(
    quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in quick_model.module.net.state_dict().items()}, path)
    loaded = load_checkpoint(path, dataset=digits, arch="small-cnn")
    assert loaded.kind == "state_dict" and loaded.fingerprint == quick_model.fingerprint
    with pytest.raises(CheckpointError, match="give its architecture with `arch`"):
        load_checkpoint(path, dataset=digits)


FOREIGN = textwrap.dedent(
    """
    from torch import nn

    def tiny(num_classes, input_shape):
        c, h, w = input_shape
        return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * h * w, num_classes))
    """
)


def test_state_dict_with_import_path(
    digits: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "zoo_ext.py").write_text(FOREIGN)
    monkeypatch.syspath_prepend(str(tmp_path))
    net = build_model("zoo_ext:tiny", 10, (1, 8, 8))
    torch.save(net.state_dict(), tmp_path / "tiny.pt")
    loaded = load_checkpoint(tmp_path / "tiny.pt", dataset=digits, arch="zoo_ext:tiny")
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        expected = net((x - 0.305) / 0.376)
        assert torch.allclose(loaded.module(x), expected, atol=1e-6)
    # saved in our format, it records the import path; loading it again must confirm the code
    own = save_checkpoint(loaded, tmp_path / "tiny.safetensors")
    with pytest.raises(UnsafeCheckpointError, match="pass `arch` zoo_ext:tiny"):
        load_checkpoint(own)
    assert load_checkpoint(own, arch="zoo_ext:tiny").fingerprint == loaded.fingerprint
    assert load_checkpoint(own, trust_checkpoint=True).fingerprint == loaded.fingerprint


def test_torchscript(quick_model: LoadedModel, digits: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(quick_model.module.net).save(str(path))
    loaded = load_checkpoint(path, dataset=digits)
    assert loaded.kind == "torchscript" and loaded.info.arch is None
    assert _same_outputs(loaded, quick_model, digits)
    with pytest.raises(CheckpointError, match="give the `dataset`"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="only models built from an architecture"):
        save_checkpoint(loaded, tmp_path / "again.safetensors")


def test_pickled_module_refused_then_allowed(
    quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "full.pt"
    torch.save(quick_model.module.net, path)
    with pytest.raises(UnsafeCheckpointError, match="`trust_checkpoint`"):
        load_checkpoint(path, dataset=digits)
    loaded = load_checkpoint(path, dataset=digits, trust_checkpoint=True)
    assert loaded.kind == "pickle"
    assert _same_outputs(loaded, quick_model, digits)


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, ("touch pwned_marker",))


def test_malicious_pickle_never_runs_without_flag(digits: Dataset, workdir: Path) -> None:
    torch.save({"weights": _Boom()}, workdir / "evil.pt")
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(workdir / "evil.pt", dataset=digits, arch="small-cnn")
    assert not (workdir / "pwned_marker").exists()


def test_missing_and_not_a_checkpoint(digits: Dataset, tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(junk, dataset=digits, arch="small-cnn")
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(text, dataset=digits, arch="small-cnn")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_checkpoint(tmp_path / "list.pt", dataset=digits, arch="small-cnn")


def test_missing_and_unexpected_keys_are_listed(
    quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    state = dict(quick_model.module.net.state_dict())
    del state["head.3.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "bad.pt", dataset=digits, arch="small-cnn")
    message = str(info.value)
    assert "missing keys: head.3.bias" in message and "unexpected keys: extra.weight" in message
    assert "\n" not in message


def test_wrong_architecture_lists_keys(
    quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    torch.save(quick_model.module.net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(
        CheckpointError, match=r"do not fit architecture 'resnet20'.*\(\d+ in all\)"
    ):
        load_checkpoint(tmp_path / "sd.pt", dataset=digits, arch="resnet20")


def _five_class_digits(digits: Dataset) -> Dataset:
    keep = np.flatnonzero(digits.labels < 5)
    x, y = digits.load(keep)
    return make_dataset(
        "digits5",
        InMemorySamples(x),
        y.numpy(),
        train_ids=np.arange(len(keep) // 2),
        classes=[str(c) for c in range(5)],
        normalization=digits.normalization,
        content_arrays=[x.numpy()],
    )


def test_class_count_mismatch(quick_model: LoadedModel, digits: Dataset, tmp_path: Path) -> None:
    five = _five_class_digits(digits)
    own = save_checkpoint(quick_model, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="10 scores per image but dataset 'digits5' has 5"):
        load_checkpoint(own, dataset=five)
    torch.save(quick_model.module.net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(
        CheckpointError, match=r"head.3.weight is \(10, 128\) in the file but \(5, 128\)"
    ):
        load_checkpoint(tmp_path / "sd.pt", dataset=five, arch="small-cnn")
    torch.jit.script(quick_model.module.net).save(str(tmp_path / "ts.pt"))
    with pytest.raises(CheckpointError, match="10 scores per image"):
        load_checkpoint(tmp_path / "ts.pt", dataset=five)


def test_input_shape_mismatch(digits: Dataset, tmp_path: Path) -> None:
    info = ModelInfo(arch="mlp", num_classes=10, input_shape=(1, 28, 28))
    model = wrap_model(build_model("mlp", 10, (1, 28, 28)), info, None)
    path = save_checkpoint(model, tmp_path / "mlp28.safetensors")
    with pytest.raises(
        CheckpointError, match=r"\(1, 28, 28\) but dataset 'digits' has \(1, 8, 8\)"
    ):
        load_checkpoint(path, dataset=digits)
    torch.jit.script(model.module.net).save(str(tmp_path / "mlp28.pt"))
    with pytest.raises(CheckpointError, match=r"fails on inputs of shape \(2, 1, 8, 8\)"):
        load_checkpoint(tmp_path / "mlp28.pt", dataset=digits)


def test_damaged_own_header(quick_model: LoadedModel, tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in quick_model.module.net.state_dict().items()}
    path = tmp_path / "damaged.safetensors"
    save_file(
        state, path, metadata={"format": "unlearn-audit/1", "info": json.dumps({"arch": "x"})}
    )
    with pytest.raises(CheckpointError, match="damaged unlearn-audit header"):
        load_checkpoint(path)


def test_loader_never_mutates_saved_model(quick_model: LoadedModel, tmp_path: Path) -> None:
    before = quick_model.fingerprint
    path = save_checkpoint(quick_model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path)
    with torch.no_grad():
        for p in loaded.module.parameters():
            p.add_(1.0)
    assert quick_model.fingerprint == before
    assert isinstance(quick_model.module.net, nn.Module)
