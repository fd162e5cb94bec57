"""The comparison report: several unlearned models audited against the same original.

One table (models x claims, with key numbers) and the figures that compare them, rendered from
the JSON results alone, like the single-model report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from unlearn_audit._io import write_atomic
from unlearn_audit.errors import ConfigError
from unlearn_audit.policy import CLAIMS
from unlearn_audit.report.html import CAVEAT, GLOSSARY, _environment, _number
from unlearn_audit.report.plots import _figure, to_png_data_uri
from unlearn_audit.results import AuditResult

KEY_NUMBERS = (
    ("forget accuracy", "accuracy", ("accuracy", "forget", "unlearned", "value")),
    ("test accuracy", "accuracy", ("accuracy", "test", "unlearned", "value")),
    ("LiRA AUC", "membership", ("lira", "unlearned", "auc", "value")),
    ("trigger success", "backdoor", ("attack_success", "unlearned", "value")),
    ("unlearning s", "efficiency", ("unlearning_seconds",)),
    ("speed-up", "efficiency", ("speedup",)),
)


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _check_same_audit(results: Mapping[str, AuditResult]) -> None:
    """Every result must audit the same request on the same data (originals may differ)."""
    if not results:
        raise ConfigError("a comparison needs at least one audit result.")
    first = next(iter(results.values()))
    for name, result in results.items():
        same = (
            result.request["fingerprints"] == first.request["fingerprints"]
            and result.dataset["fingerprint"] == first.dataset["fingerprint"]
        )
        if not same:
            raise ConfigError(
                f"result {name!r} audits another request or dataset than the first one; "
                "compare only audits of the same request."
            )


def accuracy_comparison_figure(results: Mapping[str, AuditResult]) -> Figure | None:
    """Forget, retain and test accuracy of every unlearned model, reference and original."""
    splits = ("forget", "retain", "test")
    first = next(iter(results.values()))
    if "accuracy" not in first.checks or first.checks["accuracy"].status != "ok":
        return None
    rows: dict[str, list[float]] = {}
    table = first.checks["accuracy"].metrics["accuracy"]
    rows["original"] = [table[s]["original"]["value"] for s in splits]
    if "reference" in table["forget"]:
        rows["reference"] = [table[s]["reference"]["value"] for s in splits]
    for name, result in results.items():
        check = result.checks.get("accuracy")
        if check is not None and check.status == "ok":
            rows[name] = [check.metrics["accuracy"][s]["unlearned"]["value"] for s in splits]
    figure = _figure(8, 3)
    axes = figure.add_subplot()
    width = 0.8 / len(rows)
    for i, (name, values) in enumerate(rows.items()):
        x = np.arange(len(splits)) + (i - (len(rows) - 1) / 2) * width
        axes.bar(x, [v or 0.0 for v in values], width, label=name)
    axes.set_xticks(np.arange(len(splits)), splits)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("accuracy")
    axes.legend(fontsize="x-small", ncols=2, loc="lower right")
    return figure


def roc_comparison_figure(results: Mapping[str, AuditResult]) -> Figure | None:
    """Log-log LiRA ROC curves of every unlearned model, with the original and reference."""
    curves: dict[str, dict[str, list[float]]] = {}
    for name, result in results.items():
        check = result.checks.get("membership")
        if check is None or check.status != "ok":
            continue
        roc = check.figures["roc"]["lira"]
        curves.setdefault("original", roc["original"])
        if "reference" in roc:
            curves.setdefault("reference", roc["reference"])
        curves[name] = roc["unlearned"]
    if not curves:
        return None
    figure = _figure(5, 4)
    axes = figure.add_subplot()
    for name, curve in curves.items():
        style = "--" if name in ("original", "reference") else "-"
        axes.plot(np.maximum(curve["fpr"], 1e-4), np.maximum(curve["tpr"], 1e-4), style, label=name)
    axes.plot([1e-4, 1], [1e-4, 1], color="grey", linewidth=0.6)
    for mark in (0.01, 0.001):
        axes.axvline(mark, color="black", linewidth=0.5, linestyle=":")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(5e-4, 1)
    axes.set_ylim(5e-4, 1)
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_title("per-example attack (LiRA) on the forget set")
    axes.legend(fontsize="x-small")
    return figure


def render_comparison(
    results: Mapping[str, AuditResult],
    *,
    links: Mapping[str, str] | None = None,
    figures: bool = True,
) -> str:
    """HTML comparing ``results`` (name -> result of one unlearned model).

    Args:
        results: Audits of the same request, normally of the same original; a model
            audited against another original (a SISA ensemble, say) is marked as such.
        links: Optional relative links to each model's own report.
        figures: Draw the comparison figures (golden tests turn them off).
    """
    _check_same_audit(results)
    results = {n: AuditResult.from_dict(r.to_dict_json()) for n, r in results.items()}
    rows = []
    for name, result in results.items():
        verdicts = {v.claim: v for v in result.verdicts}
        cells = [
            {"status": verdicts[c].status, "measured": _number(verdicts[c].measured)}
            if c in verdicts
            else {"status": "N/A", "measured": "—"}
            for c in CLAIMS
        ]
        numbers = []
        for _, check, path in KEY_NUMBERS:
            found = result.checks.get(check)
            numbers.append(_number(_dig(found.metrics, path), 2) if found is not None else "—")
        rows.append(
            {
                "name": name,
                "original": result.models["original"]["fingerprint"],
                "link": (links or {}).get(name),
                "cells": cells,
                "numbers": numbers,
                "passed": result.passed,
            }
        )
    images = []
    if figures:
        for draw in (accuracy_comparison_figure, roc_comparison_figure):
            figure = draw(results)
            if figure is not None:
                images.append(to_png_data_uri(figure))
    first = next(iter(results.values()))
    main_original = first.models["original"]["fingerprint"]
    others = {row["name"]: row["original"] for row in rows if row["original"] != main_original}
    return (
        _environment()
        .get_template("compare.html.j2")
        .render(
            title=f"Unlearning methods compared: {first.request['description']}",
            first=first,
            other_originals=others,
            claims=list(CLAIMS),
            key_numbers=[k for k, _, _ in KEY_NUMBERS],
            rows=rows,
            images=images,
            caveat=CAVEAT,
            glossary=GLOSSARY,
        )
    )


def write_comparison(
    results: Mapping[str, AuditResult],
    out_dir: str | Path,
    *,
    links: Mapping[str, str] | None = None,
) -> Path:
    """Write ``comparison.html`` into ``out_dir``."""
    html = render_comparison(results, links=links)
    return write_atomic(Path(out_dir) / "comparison.html", lambda tmp: tmp.write_text(html))
