"""Drawing helpers every check's figures share: a figure on the Agg canvas, the colour and line
style of each model role, intervals as error bars.

matplotlib is imported when a figure is drawn, so that reading evidence costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unlearn_audit.evidence import Estimate

ROLE_COLOURS = {"original": "#d62728", "unlearned": "#1f77b4", "reference": "#2ca02c"}
ROLE_STYLES = {"original": "--", "unlearned": "-", "reference": ":"}


def new_figure(width: float, height: float) -> Any:
    """A ``Figure`` of ``width`` x ``height`` inches on an Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def colour(role: str) -> str:
    """The colour of a model role (grey for any other)."""
    return ROLE_COLOURS.get(role, "#7f7f7f")


def style(role: str) -> str:
    """The line style of a model role."""
    return ROLE_STYLES.get(role, "-")


def error_bars(estimates: Sequence[Estimate]) -> tuple[list[float], list[list[float]]]:
    """Values and ``[below, above]`` error-bar lengths of ``estimates`` (0 where unknown)."""
    values = [e.value or 0.0 for e in estimates]
    below = [
        v - (e.low if e.low is not None else v) for v, e in zip(values, estimates, strict=True)
    ]
    above = [
        (e.high if e.high is not None else v) - v for v, e in zip(values, estimates, strict=True)
    ]
    return values, [below, above]


def log_roc_axes(axes: Any, title: str) -> None:
    """Log-log ROC axes from 5e-4 to 1 with the diagonal and the 1% and 0.1% FPR marks."""
    from matplotlib.ticker import NullLocator

    axes.plot([1e-4, 1], [1e-4, 1], color="grey", linewidth=0.6)
    for mark in (0.01, 0.001):
        axes.axvline(mark, color="black", linewidth=0.5, linestyle=":")
    axes.set_xscale("log")
    axes.set_yscale("log")
    # decades only: log axes' minor ticks cost most of the drawing time
    axes.xaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_minor_locator(NullLocator())
    axes.set_xlim(5e-4, 1)
    axes.set_ylim(5e-4, 1)
    axes.set_title(title)
    axes.set_xlabel("false-positive rate")
