"""The report's figures, drawn from the JSON result only (matplotlib object API, Agg backend).

Each ``*_figure`` function takes an :class:`AuditResult` and returns a ``Figure`` or ``None``
when the result holds no data for it; :func:`to_png_data_uri` embeds one in HTML.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from unlearn_audit.results import AuditResult

ROLE_COLOURS = {"original": "#d62728", "unlearned": "#1f77b4", "reference": "#2ca02c"}
ROLE_STYLES = {"original": "--", "unlearned": "-", "reference": ":"}
SPLIT_ORDER = ("forget", "retain", "test", "test_forget_class", "test_retain_class")


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colour(role: str) -> str:
    return ROLE_COLOURS.get(role, "#7f7f7f")


def _roles(table: dict[str, Any]) -> list[str]:
    order = ["original", "unlearned", "reference"]
    return [r for r in order if r in table] + sorted(r for r in table if r not in order)


def to_png_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (no metadata, so stable bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def accuracy_figure(result: AuditResult) -> Figure | None:
    """Accuracy per split and model, with 95% intervals as error bars."""
    check = result.checks.get("accuracy")
    if check is None or check.status != "ok":
        return None
    table = check.metrics["accuracy"]
    splits = [s for s in SPLIT_ORDER if s in table]
    roles = _roles(table[splits[0]])
    figure = _figure(7, 3)
    axes = figure.add_subplot()
    width = 0.8 / len(roles)
    for i, role in enumerate(roles):
        values = [table[s][role]["value"] or 0.0 for s in splits]
        lows = [v - (table[s][role]["low"] or 0.0) for v, s in zip(values, splits, strict=True)]
        highs = [(table[s][role]["high"] or 0.0) - v for v, s in zip(values, splits, strict=True)]
        x = np.arange(len(splits)) + (i - (len(roles) - 1) / 2) * width
        axes.bar(x, values, width, yerr=[lows, highs], capsize=2, label=role, color=_colour(role))
    axes.axhline(check.metrics["chance"], color="black", linewidth=0.8, linestyle=":")
    axes.set_xticks(np.arange(len(splits)), [s.replace("_", " ") for s in splits])
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.05)
    axes.legend(loc="lower right", fontsize="small")
    return figure


def roc_figure(result: AuditResult) -> Figure | None:
    """Log-log ROC curves of each membership attack, with the 1% and 0.1% FPR marks."""
    check = result.checks.get("membership")
    if check is None or check.status != "ok":
        return None
    curves = check.figures["roc"]
    figure = _figure(9, 3)
    for i, (attack, per_role) in enumerate(curves.items()):
        axes = figure.add_subplot(1, len(curves), i + 1)
        for role in _roles(per_role):
            fpr = np.maximum(np.asarray(per_role[role]["fpr"], dtype=float), 1e-4)
            tpr = np.maximum(np.asarray(per_role[role]["tpr"], dtype=float), 1e-4)
            auc = check.metrics[attack][role]["auc"]["value"]
            axes.plot(
                fpr,
                tpr,
                ROLE_STYLES.get(role, "-"),
                color=_colour(role),
                label=f"{role} (AUC {auc:.2f})",
            )
        axes.plot([1e-4, 1], [1e-4, 1], color="grey", linewidth=0.6)
        for mark in (0.01, 0.001):
            axes.axvline(mark, color="black", linewidth=0.5, linestyle=":")
        axes.set_xscale("log")
        axes.set_yscale("log")
        # decades only: log axes' minor ticks cost most of this figure's drawing time
        axes.xaxis.set_minor_locator(NullLocator())
        axes.yaxis.set_minor_locator(NullLocator())
        axes.set_xlim(1e-3 / 2, 1)
        axes.set_ylim(1e-3 / 2, 1)
        axes.set_title(attack)
        axes.set_xlabel("false-positive rate")
        if i == 0:
            axes.set_ylabel("true-positive rate")
        axes.legend(fontsize="x-small", loc="lower right")
    return figure


def backdoor_figure(result: AuditResult) -> Figure | None:
    """Attack success rate of the trigger per model, with intervals."""
    check = result.checks.get("backdoor")
    if check is None or check.status != "ok":
        return None
    rates = check.metrics["attack_success"]
    roles = _roles(rates)
    figure = _figure(4, 2.5)
    axes = figure.add_subplot()
    values = [rates[r]["value"] or 0.0 for r in roles]
    errors = [
        [v - (rates[r]["low"] or 0.0) for v, r in zip(values, roles, strict=True)],
        [(rates[r]["high"] or 0.0) - v for v, r in zip(values, roles, strict=True)],
    ]
    axes.bar(roles, values, yerr=errors, capsize=3, color=[_colour(r) for r in roles])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("attack success rate")
    return figure


def relearn_figure(result: AuditResult) -> Figure | None:
    """Forget accuracy during relearning, with the threshold, for both variants."""
    check = result.checks.get("relearn")
    if check is None or check.status != "ok":
        return None
    curves = check.figures["curves"]
    figure = _figure(8, 2.8)
    for i, variant in enumerate(("relearn", "feature_relearn")):
        axes = figure.add_subplot(1, 2, i + 1)
        for role, curve in curves.get(variant, {}).items():
            axes.plot(
                curve["steps"],
                curve["accuracy"],
                ROLE_STYLES.get(role, "-"),
                color=_colour(role),
                label=role,
                marker=".",
            )
        axes.axhline(check.metrics["threshold"], color="black", linewidth=0.6, linestyle=":")
        axes.set_title("relearn" if variant == "relearn" else "relearn, head re-initialised")
        axes.set_xlabel("fine-tuning step")
        axes.set_ylim(0, 1.05)
        if i == 0:
            axes.set_ylabel("held-out forget accuracy")
        axes.legend(fontsize="small")
    return figure


def relevance_figure(result: AuditResult) -> Figure | None:
    """Class-channel relevance matrices (or ERM masks G) per model, before and after."""
    check = result.checks.get("representation")
    if check is None or check.status != "ok":
        return None
    matrices = check.figures.get("erm") or check.figures.get("relevance")
    if not matrices:
        return None
    roles = _roles(matrices)
    figure = _figure(3.2 * len(roles), 2.6)
    for i, role in enumerate(roles):
        axes = figure.add_subplot(1, len(roles), i + 1)
        image = axes.imshow(
            np.asarray(matrices[role]), aspect="auto", cmap="viridis", vmin=0, vmax=1
        )
        axes.set_title(role)
        axes.set_xlabel("channel")
        if i == 0:
            axes.set_ylabel("class")
    figure.colorbar(image, ax=figure.axes, shrink=0.8)
    return figure


def gradcam_figure(result: AuditResult, split: str) -> Figure | None:
    """Grad-CAM grid: input | original | unlearned | reference, one row per sample."""
    check = result.checks.get("saliency")
    if check is None or check.status != "ok" or split not in check.figures.get("grid", {}):
        return None
    grid = check.figures["grid"][split]
    roles = _roles(grid["maps"])
    rows = len(grid["ids"])
    figure = _figure(1.6 * (1 + len(roles)), 1.6 * rows)
    for row in range(rows):
        image = np.asarray(grid["inputs"][row], dtype=float)
        image = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
        panels = [("input", image, "gray")] + [
            (role, np.asarray(grid["maps"][role][row], dtype=float), "RdBu_r") for role in roles
        ]
        for col, (title, data, cmap) in enumerate(panels):
            axes = figure.add_subplot(rows, len(panels), row * len(panels) + col + 1)
            if cmap == "RdBu_r":
                limit = float(np.max(np.abs(data))) or 1.0
                axes.imshow(data, cmap=cmap, vmin=-limit, vmax=limit)
            else:
                axes.imshow(data, cmap=cmap)
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(title, fontsize="small")
            if col == 0:
                axes.set_ylabel(f"id {grid['ids'][row]}", fontsize="x-small")
    return figure


FIGURES = {
    "accuracy": accuracy_figure,
    "membership": roc_figure,
    "backdoor": backdoor_figure,
    "relearn": relearn_figure,
    "representation": relevance_figure,
    "saliency_forget": lambda result: gradcam_figure(result, "forget"),
    "saliency_retain": lambda result: gradcam_figure(result, "retain"),
}


def render_figures(result: AuditResult) -> dict[str, str]:
    """Every figure the result has data for, as PNG data URIs keyed like :data:`FIGURES`."""
    uris = {}
    for key, draw in FIGURES.items():
        figure = draw(result)
        if figure is not None:
            uris[key] = to_png_data_uri(figure)
    return uris
