"""Audit reports: HTML and PDF rendered from the JSON result alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unlearn_audit._io import write_atomic
from unlearn_audit.report.html import FigureRenderer, render_html
from unlearn_audit.report.pdf import PdfUnavailableError, write_pdf
from unlearn_audit.results import AuditResult


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote; ``pdf`` is ``None`` when it could not be made."""

    html: Path
    pdf: Path | None
    pdf_error: str = ""


def write_report(
    result: AuditResult,
    out_dir: str | Path,
    *,
    pdf: bool = True,
    figures: FigureRenderer | None = None,
) -> ReportFiles:
    """Write ``report.html`` (and ``report.pdf``) for ``result`` into ``out_dir``.

    The HTML is always written; a missing PDF engine is reported in ``pdf_error`` instead of
    stopping the run. ``figures`` is passed to :func:`render_html`.
    """
    out = Path(out_dir)
    html = render_html(result, figures=figures)
    html_path = write_atomic(
        out / "report.html", lambda tmp: tmp.write_text(html, encoding="utf-8")
    )
    if not pdf:
        return ReportFiles(html=html_path, pdf=None)
    try:
        return ReportFiles(html=html_path, pdf=write_pdf(html, out / "report.pdf"))
    except PdfUnavailableError as exc:
        return ReportFiles(html=html_path, pdf=None, pdf_error=str(exc))


__all__ = ["PdfUnavailableError", "ReportFiles", "render_html", "write_pdf", "write_report"]
