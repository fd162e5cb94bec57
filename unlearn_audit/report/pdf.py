"""The PDF report: the same HTML, printed by WeasyPrint with the template's print CSS."""

from __future__ import annotations

from pathlib import Path

from unlearn_audit._io import write_atomic
from unlearn_audit.errors import UnlearnAuditError

INSTALL_HINT = (
    "install the pdf extra, pip install 'unlearn-audit[pdf]' (WeasyPrint), and its system "
    "libraries (on Debian/Ubuntu apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
    "libharfbuzz-subset0)"
)


class PdfUnavailableError(UnlearnAuditError, RuntimeError):
    """The PDF cannot be made on this machine (WeasyPrint or its libraries are missing)."""


def write_pdf(html: str, path: str | Path) -> Path:
    """Print ``html`` to a PDF at ``path`` (atomically).

    Raises:
        PdfUnavailableError: WeasyPrint cannot be imported or cannot load its libraries.
    """
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: a missing system library (pango, ...)
        raise PdfUnavailableError(f"cannot make the PDF ({exc}); {INSTALL_HINT}.") from None
    document = HTML(string=html, base_url=None)
    return write_atomic(path, lambda tmp: document.write_pdf(str(tmp)))
