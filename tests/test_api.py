from __future__ import annotations

import subprocess
import sys

import pytest

import unlearn_audit


def test_every_export_resolves() -> None:
    for name in unlearn_audit.__all__:
        assert getattr(unlearn_audit, name) is not None, name
    assert "load_dataset" in dir(unlearn_audit)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        unlearn_audit.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys; from unlearn_audit.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_end_to_end_through_the_top_level_api(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from unlearn_audit import (
        ForgetRequest,
        Recipe,
        accuracy,
        load_checkpoint,
        load_dataset,
        make_splits,
        save_checkpoint,
        train_classifier,
    )

    digits = load_dataset()
    splits = make_splits(digits, ForgetRequest.random(0.1, seed=0))
    model = train_classifier(
        digits, arch="mlp", recipe=Recipe(epochs=3, batch_size=64), progress=False
    )
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path, dataset=digits)
    assert loaded.fingerprint == model.fingerprint
    assert accuracy(loaded.module, digits, splits.test) > 0.8


def test_audit_is_callable_from_the_package() -> None:
    import unlearn_audit.pipeline as pipeline
    from unlearn_audit import audit

    assert audit is pipeline.audit and unlearn_audit.audit is pipeline.audit
    assert not callable(pipeline)  # a plain module: no callable-module hack
    with pytest.raises(TypeError, match="missing"):
        audit(original=None)  # reaches the function: its keyword-only arguments are missing
