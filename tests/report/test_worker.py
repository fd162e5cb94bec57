"""The CLI's report worker: it writes what the audit's own process would, and when it cannot,
the audit's process writes the report itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearn_audit.report import render_html
from unlearn_audit.report.worker import ENV_VAR, ReportWorker
from unlearn_audit.results import AuditResult

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture
def saved(tmp_path: Path) -> tuple[AuditResult, Path]:
    result = AuditResult.load(GOLDEN / "result_class.json")
    return result, result.save(tmp_path / "result.json")


def test_the_worker_writes_the_report_of_the_saved_result(
    saved: tuple[AuditResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, path = saved
    monkeypatch.setenv(ENV_VAR, "1")
    with ReportWorker() as worker:
        process = worker._process
        assert process is not None and process.poll() is None, "started before it is needed"
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
