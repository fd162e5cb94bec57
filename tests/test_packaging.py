"""Packaging: minimum versions with the exact pair in constraints.txt, the PDF as an extra (the
audit works without it), the py.typed marker."""

from __future__ import annotations

import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from unlearn_audit.cli import main
from unlearn_audit.models.checkpoints import LoadedModel, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PDF_HINT = "pip install 'unlearn-audit[pdf]'"


def _requirement(requirements: list[str], name: str) -> str:
    return next(r for r in requirements if r.split(">")[0].split("=")[0].split("[")[0] == name)


def test_dependencies_state_minimums_and_constraints_hold_the_exact_pair() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = project["dependencies"]
    for name in ("torch", "torchvision", "scipy"):
        assert _requirement(dependencies, name).startswith(f"{name}>="), "a minimum, never a pin"
    assert _requirement(dependencies, "scipy") == "scipy>=1.15", "bootstrap's `rng=` keyword"
    assert not any(r.startswith(("weasyprint", "ray")) for r in dependencies), "extras"
    assert _requirement(project["optional-dependencies"]["pdf"], "weasyprint")
    assert _requirement(project["optional-dependencies"]["ray"], "ray") == "ray>=2.60"
    pins = (ROOT / "constraints.txt").read_text().split()
    assert any(p.startswith("torch==") for p in pins)
    assert any(p.startswith("torchvision==") for p in pins)
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "'.[pdf]'" in makefile
    assert "'.[test,pdf,ray]'" in makefile, "CI tests the Ray executor"


def test_the_package_is_typed() -> None:
    assert resources.files("unlearn_audit").joinpath("py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in package_data["package-data"]["unlearn_audit"]


def test_an_audit_without_weasyprint_writes_html_and_json_and_one_warning(
    quick_model: LoadedModel,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # `import weasyprint` raises
    save_checkpoint(quick_model, workdir / "original.safetensors")
    argv = ["audit", "--original", "original.safetensors", "--unlearned", "original.safetensors"]
    options = ["--forget-class", "3", "--profile", "quick", "--checks", "accuracy", "--quiet"]
    main([*argv, *options, "--out", "out", "--cache-dir", "cache"])
    captured = capsys.readouterr()
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["report.html", "result.json"]
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and PDF_HINT in warnings[0], captured.err
    assert "wrote out/report.html" in captured.out and "report.pdf" not in captured.out

    assert main(["report", "out/result.json", "--out", "rebuilt"]) == 0
    captured = capsys.readouterr()
    assert (workdir / "rebuilt" / "report.html").is_file()
    assert not (workdir / "rebuilt" / "report.pdf").exists()
    assert captured.err.count(PDF_HINT) == 1
