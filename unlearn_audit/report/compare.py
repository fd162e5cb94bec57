"""The comparison report: several unlearned models audited against the same original.

One table (models x claims, with key numbers) and the figures that compare them, rendered from
the JSON results alone, like the single-model report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearn_audit._io import write_atomic
from unlearn_audit.errors import ConfigError
from unlearn_audit.report.html import CAVEAT, GLOSSARY, _environment, _number
from unlearn_audit.report.plots import to_png_data_uri
from unlearn_audit.results import AuditResult, unjudged_claims


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


def comparison_figures(results: Mapping[str, AuditResult]) -> list[Any]:
    """One figure per check whose evidence compares audits (accuracy, LiRA ROC, ...)."""
    figures = []
    names = dict.fromkeys(name for result in results.values() for name in result.checks)
    for check in names:
        evidence = {
            name: found.evidence
            for name, result in results.items()
            if (found := result.checks.get(check)) is not None
            and found.status == "ok"
            and found.evidence is not None
        }
        if not evidence:
            continue
        figure = type(next(iter(evidence.values()))).comparison_figure(evidence)
        if figure is not None:
            figures.append(figure)
    return figures


def _key_numbers(result: AuditResult) -> dict[str, float | None]:
    numbers: dict[str, float | None] = {}
    for check in result.checks.values():
        if check.status == "ok" and check.evidence is not None:
            numbers |= check.evidence.key_numbers()
    return numbers


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
    claims = list(dict.fromkeys(v.claim for r in results.values() for v in r.verdicts))
    numbers_of = {name: _key_numbers(result) for name, result in results.items()}
    key_numbers = list(dict.fromkeys(k for numbers in numbers_of.values() for k in numbers))
    rows = []
    for name, result in results.items():
        verdicts = {v.claim: v for v in result.verdicts}
        unjudged = {v.claim for v in result.unjudged}
        cells = [
            {
                "status": verdicts[c].status,
                "measured": _number(verdicts[c].measured),
                "unjudged": c in unjudged,
            }
            if c in verdicts
            else {"status": "N/A", "measured": "—", "unjudged": False}
            for c in claims
        ]
        numbers = [_number(numbers_of[name].get(key), 2) for key in key_numbers]
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
    images = [to_png_data_uri(f) for f in comparison_figures(results)] if figures else []
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
            unjudged=unjudged_claims(results.values()),
            claims=claims,
            key_numbers=key_numbers,
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
