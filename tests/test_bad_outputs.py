"""Output paths that cannot be written, and models whose outputs are not finite: one line each.

Every case exits 1 with one ``unlearn-audit: error:`` line, no traceback and no files left.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
import torch

from unlearn_audit._io import write_atomic
from unlearn_audit.cli import main
from unlearn_audit.errors import OutputError
from unlearn_audit.models.checkpoints import LoadedModel, save_checkpoint


def _one_error_line(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    __tracebackhide__ = True
    err = capsys.readouterr().err
    assert err.startswith("unlearn-audit: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    return err


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


AUDIT = ["audit", "--original", "o.safetensors", "--unlearned", "u.safetensors", "--quiet"]
UNLEARN = ["unlearn", "--method", "finetune", "--original", "o.safetensors", "--quiet"]
IS_FILE = "'afile' is a file, not a folder"
NO_FOLDER = "'afile' is a file, so no folder can be made inside it"


@pytest.mark.parametrize(
    ("argv", "flag", "why"),
    [
        ([*AUDIT, "--forget-class", "3", "--out", "afile"], "`--out` must be a folder", IS_FILE),
        (["report", "result.json", "--out", "afile"], "`--out` must be a folder", IS_FILE),
        (["report", "result.json", "--out", "afile/sub"], "`--out` must be a folder", NO_FOLDER),
        (["splits", "--forget-class", "3", "--out-dir", "afile"], "`--out-dir`", IS_FILE),
        (["demo", "--out-dir", "afile/deeper", "--quiet"], "`--out-dir`", NO_FOLDER),
        (["train", "--out", "afile/m.safetensors", "--quiet"], "`--out` must be a file", IS_FILE),
        (["train", "--out", "afile/s/m.safetensors", "--quiet"], "`--out`", NO_FOLDER),
        (["train", "--out", "adir.safetensors", "--quiet"], "`--out`", "is a folder"),
        ([*UNLEARN, "--forget-class", "3", "--out", "afile/u.safetensors"], "`--out`", IS_FILE),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str, why: str
) -> None:
    (workdir / "afile").write_text("not a folder")
    (workdir / "adir.safetensors").mkdir()
    before = _files(workdir)
    assert main(argv) == 1
    err = _one_error_line(capsys, flag, why, "choose another")
    assert _files(workdir) == before, err


def test_train_creates_missing_folders(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--arch", "mlp", "--epochs", "1", "--no-cache", "--quiet"]
    assert main([*argv, "--out", "new/deeper/m.safetensors"]) == 0
    assert (workdir / "new" / "deeper" / "m.safetensors").is_file()
    assert not list(workdir.rglob("*.tmp"))


def test_an_unwritable_folder_is_refused_before_training(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # as root every folder is writable, so the permission is denied by hand
    real_access = os.access

    def access(path: str | Path, mode: int) -> bool:
        return False if Path(path).resolve() == workdir.resolve() else real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    argv = ["train", "--arch", "mlp", "--epochs", "1", "--no-cache", "--quiet"]
    assert main([*argv, "--out", "sub/m.safetensors"]) == 1
    _one_error_line(capsys, "`--out`", "is not writable")
    assert _files(workdir) == set()


def test_write_atomic_names_the_path_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(OutputError, match="afile' is a file, so no folder can be made") as info:
        write_atomic(tmp_path / "afile" / "sub" / "x.txt", lambda tmp: tmp.write_text("x"))
    assert isinstance(info.value, OSError)
    with pytest.raises(OutputError, match="it is a folder; give a file path"):
        write_atomic(tmp_path, lambda tmp: tmp.write_text("x"))

    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputError, match="permission denied; choose an output path"):
        write_atomic(tmp_path / "x.txt", lambda tmp: tmp.write_text("x"))
    monkeypatch.undo()

    def disk_full(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="no space left on device"):
        write_atomic(tmp_path / "y.txt", disk_full)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no half-written file


def _nan_state(model: LoadedModel, count: int) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in model.module.net.state_dict().items()}
    for name in [k for k, v in state.items() if v.is_floating_point()][-count:]:
        state[name].fill_(float("nan"))
    return state


def test_a_model_with_nan_weights_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], quick_model: LoadedModel
) -> None:
    save_checkpoint(quick_model, workdir / "original.safetensors")
    torch.save(_nan_state(quick_model, 2), workdir / "unlearned.pt")
    expected = ("unlearned.pt: the model's outputs are not finite (NaN or inf in 2 of ", "retrain")
    assert main(["inspect", "unlearned.pt", "--arch", "small-cnn"]) == 1
    _one_error_line(capsys, *expected)
    argv = ["audit", "--original", "original.safetensors", "--unlearned", "unlearned.pt"]
    options = ["--arch", "small-cnn", "--forget-class", "3", "--profile", "quick", "--quiet"]
    assert main([*argv, *options, "--out", "report"]) == 1
    _one_error_line(capsys, *expected)
    assert not (workdir / "report").exists()
