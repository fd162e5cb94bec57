"""The CLI's report writer, in a process of its own started before the audit.

Writing a report needs matplotlib, Jinja2 and WeasyPrint, and WeasyPrint's fonts: about a
second of imports and set-up that the audit does not need. The ``audit`` verb starts this
worker first, so that set-up runs on another core while the audit imports torch and runs its
checks; when ``result.json`` is written the worker renders the report from it (the report is
drawn from the JSON result alone) and says what it wrote. Whatever goes wrong with the worker,
the report is written in the audit's own process instead, with its usual errors.

Protocol: one JSON line in (``{"result": path, "out": dir, "pdf": bool}``), one JSON line
out (``{"html": path, "pdf": path or null, "pdf_error": text}``); end of input ends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from unlearn_audit.report import ReportFiles, write_report

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

    import unlearn_audit.checks  # noqa: F401  (the evidence types AuditResult.load reads)
    from unlearn_audit.figures import new_figure

    figure = new_figure(1, 1)
    figure.gca().set_title("warm-up")
    figure.canvas.draw()
    HTML(string=_WARM_UP_HTML).write_pdf()


def main() -> int:
    with contextlib.suppress(Exception):  # a failed warm-up only costs time
        _warm_up()
    line = sys.stdin.readline()
    if not line:
        return 0  # the audit ended without a report
    from unlearn_audit.results import AuditResult

    request = json.loads(line)
    result = AuditResult.load(request["result"])
    files = write_report(result, request["out"], pdf=bool(request["pdf"]))
    reply = {
        "html": str(files.html),
        "pdf": str(files.pdf) if files.pdf else None,
        "pdf_error": files.pdf_error,
    }
    print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
