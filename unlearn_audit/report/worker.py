"""The CLI's report writer, in a process of its own started before the audit.

Writing a report needs matplotlib, Jinja2 and WeasyPrint, and WeasyPrint's fonts: about a
second of imports and set-up that the audit does not need. The ``audit`` verb starts this
worker first, so that set-up runs on another core while the audit imports torch and runs its
checks. As each check ends its result is handed over and the worker draws that check's figures
while the audit runs the next ones; when ``result.json`` is written the worker renders the
report from it (the report is drawn from the JSON result alone), reusing a figure only where the
check's evidence in the file is exactly what it drew from, and says what it wrote. Whatever goes
wrong with the worker, the report is written in the audit's own process instead, with its usual
errors.

Protocol: JSON lines in, ``{"check": name, "entry": check as in result.json}`` any number of
times, then ``{"result": path, "out": dir, "pdf": bool}``; one JSON line out (``{"html": path,
"pdf": path or null, "pdf_error": text}``); end of input ends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from unlearn_audit.report import ReportFiles, write_report
from unlearn_audit.results import finite_json

# set to 0 to write the report in the audit's own process (the test suite does, but for the
# worker's own tests: each worker would take a core from the other tests)
ENV_VAR = "UNLEARN_AUDIT_REPORT_WORKER"
# the template's fonts, so that fontconfig and Pango are set up before the real report
_WARM_UP_HTML = (
    "<html><body style=\"font-family: 'DejaVu Sans', sans-serif\">"
    "<h1>audit</h1><p><b>PASS</b> <code>0.5</code></p></body></html>"
)


class ReportWorker:
    """A running report worker; :meth:`write` hands it a result, :meth:`close` ends it."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        if os.environ.get(ENV_VAR) == "0":
            return
        with contextlib.suppress(OSError):  # no worker: the report is written here
            self._process = subprocess.Popen(
                [sys.executable, "-m", "unlearn_audit.report.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )

    def check_done(self, name: str, check: Any) -> None:
        """Hand the worker a finished check (a :class:`CheckResult`) so that it draws the
        check's figures now, while the audit goes on."""
        if self._process is None or self._process.stdin is None:
            return
        try:  # (what result.json cannot hold fails there, with its own error)
            line = json.dumps({"check": name, "entry": finite_json(check.to_dict())})
        except (TypeError, ValueError):
            return
        try:
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()
        except OSError:  # the worker is gone: the report is written here
            self.close()

    def write(self, result: Any, result_path: Path, out_dir: Path, *, pdf: bool) -> ReportFiles:
        """The report of ``result`` (saved at ``result_path``) written into ``out_dir``: by the
        worker, or here when the worker cannot."""
        reply = self._ask({"result": str(result_path), "out": str(out_dir), "pdf": pdf})
        if reply is None:
            return write_report(result, out_dir, pdf=pdf)
        pdf_path = reply.get("pdf")
        return ReportFiles(
            html=Path(reply["html"]),
            pdf=Path(pdf_path) if pdf_path else None,
            pdf_error=str(reply.get("pdf_error", "")),
        )

    def _ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        process, self._process = self._process, None
        if process is None or process.stdin is None or process.stdout is None:
            return None
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.close()
            reply = json.loads(process.stdout.readline())
            process.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            process.kill()
            return None
        ok = process.returncode == 0 and isinstance(reply, dict) and "html" in reply
        return reply if ok else None

    def close(self) -> None:
        """End the worker if it is still waiting (the audit stopped before its report)."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()

    def __enter__(self) -> ReportWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _warm_up() -> None:
    from weasyprint import HTML

    from unlearn_audit.checks import CHECKS
    from unlearn_audit.figures import new_figure
    from unlearn_audit.report.html import _environment, _evidence_template

    _environment().get_template("report.html.j2")  # templates compiled once, kept
    for _, check in CHECKS.items():
        if check.evidence.TEMPLATE:
            _evidence_template(check.evidence.TEMPLATE)

    figure = new_figure(1, 1)
    figure.gca().set_title("warm-up")
    figure.canvas.draw()
    HTML(string=_WARM_UP_HTML).write_pdf()


def _evidence_key(entry: dict[str, Any]) -> str:
    return json.dumps(entry.get("evidence"), sort_keys=True)


class _Figures:
    """The figures drawn ahead, by check: reused for a result whose check has exactly the
    evidence they were drawn from, drawn afresh otherwise."""

    def __init__(self) -> None:
        self._drawn: dict[str, tuple[str, dict[str, str]]] = {}

    def draw_check(self, name: str, entry: dict[str, Any]) -> None:
        from unlearn_audit.checks import evidence_type
        from unlearn_audit.checks.base import CheckResult
        from unlearn_audit.report.plots import check_figure_drawers, to_png_data_uri

        check = CheckResult.from_dict(entry, evidence_type(name), f"checks.{name}")
        drawers = check_figure_drawers(name, check)
        figures = {key: to_png_data_uri(draw()) for key, draw in drawers.items()}
        self._drawn[name] = (_evidence_key(finite_json(check.to_dict())), figures)

    def __call__(self, result: Any) -> dict[str, str]:
        from unlearn_audit.report.plots import check_figure_drawers, to_png_data_uri

        figures = {}
        for name, check in result.checks.items():
            key, drawn = self._drawn.get(name, (None, {}))
            if key != _evidence_key(finite_json(check.to_dict())):
                drawn = {}  # drawn from other evidence: drawn again
            for figure, draw in check_figure_drawers(name, check).items():
                figures[figure] = drawn[figure] if figure in drawn else to_png_data_uri(draw())
        return figures


def _lines() -> queue.Queue[str]:
    """Standard input read on a thread of its own, so that the audit never waits on a pipe
    while the worker draws."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


def main() -> int:
    lines = _lines()
    with contextlib.suppress(Exception):  # a failed warm-up only costs time
        _warm_up()
    figures = _Figures()
    while True:
        line = lines.get()
        if not line:
            return 0  # the audit ended without a report
        request = json.loads(line)
        if "check" not in request:
            break
        with contextlib.suppress(Exception):  # drawn again with the report if this fails
            figures.draw_check(request["check"], request["entry"])
    from unlearn_audit.results import AuditResult

    result = AuditResult.load(request["result"])
    files = write_report(result, request["out"], pdf=bool(request["pdf"]), figures=figures)
    reply = {
        "html": str(files.html),
        "pdf": str(files.pdf) if files.pdf else None,
        "pdf_error": files.pdf_error,
    }
    print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    from unlearn_audit._process import fewer_collections

    with fewer_collections():  # WeasyPrint's and matplotlib's imports, as in the CLI
        code = main()
    sys.stdout.flush()
    # the report is written and answered for: skip the interpreter's teardown of matplotlib,
    # WeasyPrint and the rest (most of a second the audit would wait for)
    os._exit(code)
