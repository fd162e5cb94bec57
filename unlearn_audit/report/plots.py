"""The report's figures, drawn from the JSON result only: each check's evidence says which
figures it has and draws them (matplotlib object API, Agg backend, no pyplot state).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from unlearn_audit.results import AuditResult

if TYPE_CHECKING:
    from unlearn_audit.checks.base import CheckResult


def check_figure_drawers(name: str, check: CheckResult) -> dict[str, Callable[[], Any]]:
    """The figures one check has data for, undrawn: ``"<check>.<key>"`` -> draw function."""
    if check.status != "ok" or check.evidence is None:
        return {}
    return {f"{name}.{key}": draw for key, draw in check.evidence.figures().items()}


def figure_drawers(result: AuditResult) -> dict[str, Callable[[], Any]]:
    """Every figure the result has data for, undrawn: ``"<check>.<key>"`` -> draw function."""
    drawers = {}
    for name, check in result.checks.items():
        drawers.update(check_figure_drawers(name, check))
    return drawers


def to_png_data_uri(figure: Any) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (no metadata, so stable bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_figures(result: AuditResult) -> dict[str, str]:
    """Every figure of the result as a PNG data URI, keyed like :func:`figure_drawers`."""
    return {key: to_png_data_uri(draw()) for key, draw in figure_drawers(result).items()}
