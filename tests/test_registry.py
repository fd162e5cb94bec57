from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch

from unlearn_audit import errors
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.evidence import RawEvidence
from unlearn_audit.models.checkpoints import LoadedModel
from unlearn_audit.registry import Registry


def test_register_get_and_names() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("beta", 2)

    @reg.register("alpha")  # type: ignore[misc, arg-type, operator]
    def alpha() -> int:
        return 1

    assert reg.names() == ["alpha", "beta"]
    assert reg.get("beta") == 2 and "alpha" in reg
    with pytest.raises(errors.RegistryError, match="already registered"):
        reg.register("beta", 3)


def test_unknown_name_suggests_close_names() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("small-cnn", 1)
    reg.register("resnet18", 2)
    with pytest.raises(errors.RegistryError) as info:
        reg.get("smal-cnn")
    message = str(info.value)
    assert message.startswith("unknown widget 'smal-cnn'. Did you mean 'small-cnn'?")
    assert "Known: resnet18, small-cnn." in message


def test_entry_points_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    point = metadata.EntryPoint(name="plugged", value="math:pi", group="unlearn_audit.widgets")

    def fake_entry_points(group: str = "") -> list[metadata.EntryPoint]:
        return [point] if group == "unlearn_audit.widgets" else []

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    reg: Registry[float] = Registry("widget", group="unlearn_audit.widgets")
    assert reg.get("plugged") == pytest.approx(3.14159, abs=1e-4)


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.ConfigError, ValueError),
        (errors.RegistryError, KeyError),
        (errors.DatasetError, ValueError),
        (errors.DatasetNotFoundError, FileNotFoundError),
        (errors.CheckpointNotFoundError, FileNotFoundError),
        (errors.UnsafeCheckpointError, PermissionError),
        (errors.StoreError, OSError),
    ],
)
def test_errors_have_one_root_and_a_builtin(error: type, builtin: type) -> None:
    assert issubclass(error, errors.UnlearnAuditError) and issubclass(error, builtin)


def test_registry_error_message_is_plain() -> None:
    assert str(errors.RegistryError("unknown x")) == "unknown x"


# --- plug-ins of a third-party package, through a real distribution on sys.path ----------------

PLUGIN_MODULE = "ua_plugin_fixture"
PLUGIN_SOURCE = '''
"""A third-party package with one plug-in per entry point group of unlearn-audit."""
import numpy as np
import torch
from torch import nn

from unlearn_audit.checks import Check, CheckResult
from unlearn_audit.evidence import RawEvidence
from unlearn_audit.data.datasets import DatasetSpec, InMemorySamples, make_dataset


def tiny_linear(num_classes, input_shape):
    """One linear layer on flattened pixels."""
    channels, height, width = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, num_classes))


def _load_stripes(root):
    labels = np.arange(40) % 2
    images = np.zeros((40, 1, 4, 4), dtype=np.float32)
    images[labels == 1, :, ::2] = 1.0
    return make_dataset(
        "stripes",
        InMemorySamples(torch.from_numpy(images)),
        labels,
        train_ids=np.arange(30),
        classes=["plain", "striped"],
        normalization=None,
        content_arrays=[images],
        source="ua_plugin_fixture",
    )


stripes = DatasetSpec(name="stripes", load=_load_stripes, description="40 striped 4x4 images")


class Constant(Check):
    name = "constant"
    description = "always measures 42"

    def run(self, ctx):
        return CheckResult(self.name, evidence=RawEvidence({"answer": 42}))


class _Keep:
    name = "keep"
    scope = ("class", "sample")
    needs = ()
    defaults = {}
    paper = "none"
    summary = "returns the original unchanged"

    def run(self, original, dataset, splits):
        """Return the original unchanged (a baseline that forgets nothing)."""
        return original

    def apply(self, original, dataset, splits, **options):
        raise NotImplementedError


keep = _Keep()
'''


def _install(root: Path, name: str, entry_points: str) -> None:
    """Write the ``*.dist-info`` of a distribution ``name`` with ``entry_points`` into ``root``."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture()
def fresh_registries() -> Iterator[list[Registry[Any]]]:
    """The four plug-in registries, their entry points to be read again; restored afterwards."""
    from unlearn_audit.checks import CHECKS
    from unlearn_audit.data.datasets import DATASETS
    from unlearn_audit.models.zoo import ARCHS
    from unlearn_audit.registry import METHOD_PLUGINS

    registries: list[Registry[Any]] = [METHOD_PLUGINS, CHECKS, ARCHS, DATASETS]
    saved = [(dict(reg._entries), reg._entry_points_loaded) for reg in registries]
    for reg in registries:
        reg._entry_points_loaded = False
    yield registries
    for reg, (entries, loaded) in zip(registries, saved, strict=True):
        reg._entries.clear()
        reg._entries.update(entries)
        reg._entry_points_loaded = loaded
    sys.modules.pop(PLUGIN_MODULE, None)


@pytest.fixture()
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding the plug-in module (and, once written, distributions)."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_plugin_of_every_group_is_found_and_usable(
    plugin_path: Path,
    fresh_registries: list[Registry[Any]],
    capsys: pytest.CaptureFixture[str],
    quick_model: LoadedModel,
    digits: Dataset,
) -> None:
    from unlearn_audit.checks import CHECKS
    from unlearn_audit.cli import main
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.data.splits import ForgetRequest
    from unlearn_audit.models.zoo import build_model
    from unlearn_audit.pipeline import audit

    _install(
        plugin_path,
        "ua-plugin-fixture",
        f"[unlearn_audit.archs]\ntiny-linear = {PLUGIN_MODULE}:tiny_linear\n"
        f"[unlearn_audit.datasets]\nstripes = {PLUGIN_MODULE}:stripes\n"
        f"[unlearn_audit.checks]\nconstant = {PLUGIN_MODULE}:Constant\n"
        f"[unlearn_audit.methods]\nkeep = {PLUGIN_MODULE}:keep\n",
    )
    # unlearn_audit.archs: listed, and built by name
    assert main(["archs", "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["tiny-linear"]
        == "One linear layer on flattened pixels."
    )
    net = build_model("tiny-linear", 3, (1, 4, 4))
    assert net(torch.zeros(2, 1, 4, 4)).shape == (2, 3)
    # unlearn_audit.datasets: listed, and loaded by name
    assert main(["datasets", "--json"]) == 0
    assert "stripes" in [row["name"] for row in json.loads(capsys.readouterr().out)]
    stripes = load_dataset("stripes")
    assert stripes.name == "stripes" and len(stripes.train_ids) == 30
    # unlearn_audit.checks: listed, and run by an audit
    assert "constant" in CHECKS.names()
    result = audit(
        original=quick_model,
        unlearned=quick_model,
        dataset=digits,
        request=ForgetRequest.classes(3),
        profile="quick",
        checks=["constant"],
        progress=False,
    )
    assert result.checks["constant"].evidence == RawEvidence({"answer": 42})
    # unlearn_audit.methods: listed by `unlearn-audit methods`, with its details
    assert main(["methods"]) == 0
    assert re.search(
        r"^keep\s+class\+sample\s+returns the original unchanged$", capsys.readouterr().out, re.M
    )
    assert main(["methods", "keep"]) == 0
    assert "a baseline that forgets nothing" in capsys.readouterr().out


def test_a_broken_plugin_is_a_warning_naming_it_not_a_crash(
    plugin_path: Path,
    fresh_registries: list[Registry[Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from unlearn_audit.cli import main
    from unlearn_audit.models.zoo import ARCHS

    _install(
        plugin_path,
        "ua-broken-plugins",
        "[unlearn_audit.archs]\n"
        "missing-module = ua_no_such_module:factory\n"
        f"missing-name = {PLUGIN_MODULE}:no_such_factory\n"
        f"working = {PLUGIN_MODULE}:tiny_linear\n",
    )
    with pytest.warns(RuntimeWarning) as caught:
        names = ARCHS.names()
    assert "working" in names and "small-cnn" in names
    assert "missing-module" not in names and "missing-name" not in names
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "skipped the architecture plug-in 'missing-module' (entry point missing-module = "
        "ua_no_such_module:factory in group unlearn_audit.archs): it failed to load: "
        "ModuleNotFoundError: No module named 'ua_no_such_module'",
        "skipped the architecture plug-in 'missing-name' (entry point missing-name = "
        f"{PLUGIN_MODULE}:no_such_factory in group unlearn_audit.archs): it failed to load: "
        f"AttributeError: module '{PLUGIN_MODULE}' has no attribute 'no_such_factory'",
    ]
    assert main(["archs"]) == 0, "the listing still works, and warns only once"
    assert "working" in capsys.readouterr().out
    with pytest.raises(errors.RegistryError, match="unknown architecture 'missing-name'"):
        ARCHS.get("missing-name")


def test_a_plugin_that_raises_anything_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    point = metadata.EntryPoint(name="boom", value="math:pi", group="unlearn_audit.widgets")

    def explode(self: metadata.EntryPoint) -> object:
        raise ValueError("bad configuration\nsecond line of a long traceback")

    monkeypatch.setattr(metadata, "entry_points", lambda group="": [point])
    monkeypatch.setattr(metadata.EntryPoint, "load", explode)
    reg: Registry[float] = Registry("widget", group="unlearn_audit.widgets")
    with pytest.warns(RuntimeWarning, match=r"'boom' .*: ValueError: bad configuration$"):
        assert reg.names() == []
