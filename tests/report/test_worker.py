"""The CLI's report worker: it writes what the audit's own process would, and when it cannot,
the audit's process writes the report itself."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from unlearn_audit.report import render_html
from unlearn_audit.report.worker import ENV_VAR, ReportWorker
from unlearn_audit.results import AuditResult

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture
def saved(tmp_path: Path) -> tuple[AuditResult, Path]:
    result = AuditResult.load(GOLDEN / "result_class.json")
    return result, result.save(tmp_path / "result.json")


@pytest.mark.parametrize("ahead", [False, True], ids=["at-the-end", "checks-handed-over"])
def test_the_worker_writes_the_report_of_the_saved_result(
    saved: tuple[AuditResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: bool
) -> None:
    result, path = saved
    monkeypatch.setenv(ENV_VAR, "1")
    with ReportWorker() as worker:
        process = worker._process
        assert process is not None and process.poll() is None, "started before it is needed"
        for name, check in result.checks.items() if ahead else ():
            worker.check_done(name, check)  # as the audit does: figures drawn meanwhile
        files = worker.write(result, path, tmp_path / "out", pdf=True)
    assert process.returncode == 0, "it ended after its one report"
    assert files.html == tmp_path / "out" / "report.html" and files.pdf is not None
    assert files.html.read_text(encoding="utf-8") == render_html(result)
    assert files.pdf.read_bytes().startswith(b"%PDF")


def test_without_a_worker_the_report_is_written_here(
    saved: tuple[AuditResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, path = saved
    monkeypatch.setenv(ENV_VAR, "1")
    worker = ReportWorker()
    process = worker._process
    assert process is not None
    process.kill()  # the worker died before the audit ended
    process.wait()
    files = worker.write(result, path, tmp_path / "out", pdf=False)
    assert files.html.read_text(encoding="utf-8") == render_html(result)
    assert files.pdf is None and not (tmp_path / "out" / "report.pdf").exists()
    monkeypatch.setenv(ENV_VAR, "0")  # switched off: no process at all
    assert ReportWorker()._process is None


def test_an_audit_that_stops_early_ends_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "1")
    with pytest.raises(RuntimeError), ReportWorker() as worker:
        process = worker._process
        raise RuntimeError("a bad checkpoint")
    assert process is not None and process.poll() is not None


def test_figures_drawn_ahead_are_reused_only_for_the_same_evidence(
    saved: tuple[AuditResult, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_audit.report import plots
    from unlearn_audit.report.worker import _Figures

    result, path = saved
    data = json.loads(path.read_text())
    ahead = _Figures()
    for name in ("accuracy", "margins"):
        ahead.draw_check(name, data["checks"][name])
    expected = plots.render_figures(result)
    assert any(key.startswith("margins.") for key in expected)
    changed = AuditResult.from_dict(copy.deepcopy(data))
    changed.checks["margins"].evidence.samples = 1 + changed.checks["margins"].evidence.samples
    drawn: list[str] = []

    def counted(figure: Any) -> str:
        drawn.append(figure.axes[0].get_title())
        return "drawn-now"

    monkeypatch.setattr(plots, "to_png_data_uri", counted)
    figures = ahead(changed)
    assert set(figures) == set(expected)
    for key, uri in figures.items():
        if key.startswith("accuracy."):
            assert uri == expected[key], f"{key}: drawn ahead from the same evidence, reused"
        else:  # margins changed after it was drawn, the other checks were never sent
            assert uri == "drawn-now", key
    assert len(drawn) == sum(not key.startswith("accuracy.") for key in expected)
