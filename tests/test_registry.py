from __future__ import annotations

from importlib import metadata

import pytest

from unlearn_audit import errors
from unlearn_audit.registry import Registry


def test_register_get_and_names() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("beta", 2)

    @reg.register("alpha")  # type: ignore[misc]
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
