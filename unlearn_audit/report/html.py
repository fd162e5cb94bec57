"""The HTML report: one self-contained file rendered from the JSON result alone.

Inline CSS, figures as embedded PNG data URIs, no external URL, autoescaped. The same HTML feeds
the PDF (:mod:`unlearn_audit.report.pdf`), so both say the same thing. Output is deterministic:
the timestamp comes from the result and no absolute path is written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from unlearn_audit.evidence import CheckResult
from unlearn_audit.results import AuditResult

FigureRenderer = Callable[[AuditResult], dict[str, str]]

THREAT_MODEL = (
    "The auditor holds the original model, the unlearned model and the training data, and asks "
    "whether the unlearned model behaves on the forgotten data the way a model retrained from "
    "scratch without it (the reference) does. The membership attacks model an adversary who can "
    "query the model's outputs and train shadow models on data from the same distribution; the "
    "representation and relearn checks model one who can also fine-tune or probe the model."
)
CAVEAT = (
    "Passing checks are evidence, not proof, of deletion: they show that the tests run here "
    "could not tell the unlearned model from a retrained one. A stronger attack, another probe, "
    "or more data may. Read every verdict with its interval and its yardstick."
)
GLOSSARY = {
    "request": "what must be forgotten: whole classes, or sample ids, of a dataset",
    "members": "the samples the original model was trained on",
    "forget": "the requested samples (a subset of the members)",
    "retain": "the members minus the forget set",
    "test": "held-out samples never trained on",
    "population": "further non-members, used to train shadow models",
    "reference": "a model retrained from scratch on retain only: the gold standard",
    "shadow bank": (
        "models of the same architecture trained on random draws of the population, each as "
        "large as the original's member set (on a class request: as retain, without the "
        "forgotten classes)"
    ),
    "AUC": "probability that an attack scores a random member above a random non-member (0.5: "
    "chance)",
    "TPR at FPR": "share of members an attack catches while wrongly flagging at most that share "
    "of non-members",
    "CKA": "similarity of two models' feature spaces (1: the same up to rotation and scale)",
    "CSI": "class similarity index: how much the classes share channels (entanglement)",
    "fingerprint": "a hash of a model's weights or a split's ids, for identification",
}


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _section(name: str, check: CheckResult, figures: dict[str, str]) -> dict[str, Any]:
    """A check's section of the report, from its evidence alone."""
    evidence = check.evidence if check.status == "ok" else None
    title = (evidence.TITLE if evidence is not None else "") or _title(name)
    extra = ""
    if evidence is not None and evidence.TEMPLATE:
        extra = Markup(_evidence_template(evidence.TEMPLATE).render(evidence=evidence))
    return {
        "name": name,
        "title": title,
        "status": check.status,
        "reason": check.reason,
        "notes": check.notes,
        "seconds": _number(check.seconds, 2),
        "tables": [] if evidence is None else evidence.tables(),
        "html": extra,
        "figures": [uri for key, uri in figures.items() if key.split(".")[0] == name],
    }


def _title(name: str) -> str:
    """The section title of a check without evidence (N/A): its evidence type's, if known."""
    from unlearn_audit.checks import evidence_type

    return evidence_type(name).TITLE or name


def build_context(result: AuditResult, figures: dict[str, str]) -> dict[str, Any]:
    """Everything the template shows, as plain strings and lists (kept apart from rendering)."""
    checks = [_section(name, check, figures) for name, check in result.checks.items()]
    null = result.null_audit
    null_verdicts = {v.claim: v for v in null.verdicts} if null else {}
    verdicts = [
        {
            **vars(v),
            "measured_text": _number(v.measured),
            "interval_text": "—"
            if not v.interval or None in v.interval
            else f"[{_number(v.interval[0])}, {_number(v.interval[1])}]",
            "reference_text": _number(v.reference),
            "threshold_text": ", ".join(f"{k} {_number(t, 2)}" for k, t in v.threshold.items()),
            "null_status": null_verdicts[v.claim].status if v.claim in null_verdicts else None,
            "null_measured": _number(null_verdicts[v.claim].measured)
            if v.claim in null_verdicts
            else "—",
            "uncalibrated": v.claim in result.uncalibrated,
            "unjudged": v in result.unjudged,
        }
        for v in result.verdicts
    ]
    models = [_model_row(role, info) for role, info in result.models.items()]
    return {
        "result": result,
        "title": f"Unlearning audit: {result.request['description']}",
        "outcome": result.outcome,
        "headline": result.headline(),
        "recipe_note": result.recipe_note,
        "record": _record_rows(result),
        "limitations": result.limitations,
        "verdicts": verdicts,
        "null_audit": null,
        "uncalibrated": result.uncalibrated,
        "counts": {
            **{
                s: sum(v.status == s for v in result.verdicts)
                for s in ("PASS", "WARN", "FAIL", "INCONCLUSIVE", "N/A")
            },
            "unjudged": len(result.unjudged),
        },
        "claims": {v.claim: v.statement for v in result.verdicts},
        "threat_model": THREAT_MODEL,
        "caveat": CAVEAT,
        "glossary": GLOSSARY,
        "checks": checks,
        "models": models,
        "timings": [(stage, _number(sec, 2)) for stage, sec in result.timings.items()],
        "sizes": result.request["sizes"],
        "fingerprints": result.request["fingerprints"],
        "config": result.config,
    }


def _recipe_text(recipe: Any) -> str:
    """A recorded recipe in a few words (``sgd lr 0.05 cosine, 30 ep, batch 64``)."""
    if not isinstance(recipe, dict) or not recipe:
        return "unknown"
    text = (
        f"{recipe.get('optimizer')} lr {_number(recipe.get('lr'), 4)} {recipe.get('schedule')}, "
        f"{recipe.get('epochs')} ep, batch {recipe.get('batch_size')}"
    )
    if recipe.get("weight_decay"):
        text += f", wd {recipe['weight_decay']:g}"
    if recipe.get("augment"):
        text += ", augmented"
    return text


def _model_row(role: str, info: dict[str, Any]) -> dict[str, Any]:
    accuracy = info.get("accuracy") or {}
    recipe = _recipe_text(info.get("recipe"))
    if info.get("recipe_source") == "default":
        recipe += " (default recipe: not the original's)"
    return {
        "role": role,
        "origin": info.get("origin") or "—",
        "fingerprint": info.get("fingerprint"),
        "kind": info.get("kind"),
        "source": info.get("source") or "—",
        "arch": info.get("arch") or "—",
        "recipe": recipe,
        "seed": "—" if info.get("seed") is None else info["seed"],
        "members_fingerprint": info.get("members_fingerprint") or "—",
        "train_accuracy": _number(accuracy.get("members")),
        "test_accuracy": _number(accuracy.get("test")),
    }


def _record_rows(result: AuditResult) -> dict[str, Any]:
    """The compliance record: versions, device, command line, file hashes, policy, seeds."""
    record = result.record or {}
    command = record.get("command_line")
    files = [
        {"role": role, "file": entry.get("file") or "in memory", "sha256": entry.get("sha256")}
        for role, entry in (record.get("files") or {}).items()
    ]
    policy = record.get("policy") or {}
    seeds = record.get("seeds") or {}
    return {
        "device": record.get("device") or "—",
        "command_line": " ".join(command) if command else "Python API",
        "files": files,
        "policy": f"{policy.get('source', result.config.get('policy', '—'))}, sha256 "
        f"{policy.get('sha256') or '—'}",
        "seeds": "; ".join(f"{k} {v}" for k, v in seeds.items()) or "—",
        "recipe": _recipe_text((record.get("recipe") or {}).get("recipe"))
        + f" ({(record.get('recipe') or {}).get('source', 'unknown')})",
    }


@functools.cache
def _evidence_template(text: str) -> Any:
    """A check's own template snippet, compiled once per process."""
    return _environment().from_string(text)


@functools.cache
def _environment() -> Environment:
    """The template environment, made once per process (it caches the compiled template)."""
    return Environment(
        loader=PackageLoader("unlearn_audit.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(result: AuditResult, *, figures: FigureRenderer | None = None) -> str:
    """The report as one HTML string.

    Args:
        result: The audit result (only what it holds is shown).
        figures: ``result -> {figure key: data URI}``; default :func:`plots.render_figures`.
            Golden-file tests pass a stub so the text is compared without image bytes.
    """
    if figures is None:
        from unlearn_audit.report.plots import render_figures

        figures = render_figures
    # exactly what result.json holds (key order, nulls), so a report rebuilt from the file
    # is identical to the one written beside it
    result = AuditResult.from_dict(result.to_dict_json())
    return (
        _environment()
        .get_template("report.html.j2")
        .render(**build_context(result, figures(result)))
    )
