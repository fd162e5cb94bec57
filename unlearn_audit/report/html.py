"""The HTML report: one self-contained file rendered from the JSON result alone.

Inline CSS, figures as embedded PNG data URIs, no external URL, autoescaped. The same HTML feeds
the PDF (:mod:`unlearn_audit.report.pdf`), so both say the same thing. Output is deterministic:
the timestamp comes from the result and no absolute path is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from unlearn_audit.policy import CLAIMS
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
    "shadow bank": "models of the same architecture trained on halves of the population",
    "AUC": "probability that an attack scores a random member above a random non-member (0.5: "
    "chance)",
    "TPR at FPR": "share of members an attack catches while wrongly flagging at most that share "
    "of non-members",
    "CKA": "similarity of two models' feature spaces (1: the same up to rotation and scale)",
    "CSI": "class similarity index: how much the classes share channels (entanglement)",
    "fingerprint": "a hash of a model's weights or a split's ids, for identification",
}
CHECK_TITLES = {
    "accuracy": "Accuracy",
    "divergence": "Divergence from the reference",
    "membership": "Membership inference",
    "backdoor": "Backdoor trigger",
    "relearn": "Relearn time",
    "representation": "Representation",
    "saliency": "Saliency (Grad-CAM)",
    "efficiency": "Cost",
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


def _estimate(entry: Any) -> str:
    """``0.912 [0.880, 0.940]`` for an estimate with its interval."""
    if not isinstance(entry, dict) or "value" not in entry:
        return _number(entry)
    if entry.get("low") is None or entry.get("high") is None:
        return _number(entry.get("value"))
    return f"{_number(entry['value'])} [{_number(entry['low'])}, {_number(entry['high'])}]"


def _roles(table: dict[str, Any]) -> list[str]:
    order = ["original", "unlearned", "reference"]
    return [r for r in order if r in table] + sorted(r for r in table if r not in order)


def _tables(name: str, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The check's metrics as small tables: rows of label then cells."""
    tables: list[dict[str, Any]] = []
    if name == "accuracy":
        acc = metrics["accuracy"]
        roles = _roles(next(iter(acc.values())))
        tables.append(
            {
                "title": "Accuracy with 95% Wilson intervals",
                "header": ["split", *roles],
                "rows": [
                    [s.replace("_", " "), *(_estimate(acc[s][r]) for r in roles)] for s in acc
                ],
            }
        )
        tta = metrics.get("tta_forget", {})
        if tta:
            tables.append(
                {
                    "title": "Forget accuracy under test-time augmentation",
                    "header": ["view", *roles],
                    "rows": [[v, *(_estimate(tta[v][r]) for r in roles)] for v in tta],
                }
            )
    elif name == "divergence":
        for metric, title in (
            ("js", "JS divergence (natural log)"),
            ("activation_distance", "Activation distance"),
        ):
            per_split = metrics[metric]
            pairs = list(next(iter(per_split.values())))
            tables.append(
                {
                    "title": title,
                    "header": ["split", *[p.replace("_", " ") for p in pairs]],
                    "rows": [[s, *(_estimate(per_split[s][p]) for p in pairs)] for s in per_split],
                }
            )
    elif name == "membership":
        rows = []
        for attack in ("lira", "shokri", "loss"):
            for role in _roles(metrics.get(attack, {})):
                entry = metrics[attack][role]
                rows.append(
                    [
                        attack,
                        role,
                        _estimate(entry["auc"]),
                        _tpr(entry["tpr_at_1pct"]),
                        _tpr(entry["tpr_at_0.1pct"]),
                    ]
                )
        tables.append(
            {
                "title": f"Attacks on forget vs {metrics['nonmembers'].replace('_', ' ')} "
                f"samples ({metrics['shadows']} shadow models)",
                "header": ["attack", "model", "AUC", "TPR at 1% FPR", "TPR at 0.1% FPR"],
                "rows": rows,
            }
        )
    elif name == "backdoor":
        rates, clean = metrics["attack_success"], metrics["clean_accuracy"]
        tables.append(
            {
                "title": "Trigger attack success and clean accuracy",
                "header": ["model", "attack success", "clean accuracy"],
                "rows": [[r, _estimate(rates[r]), _estimate(clean[r])] for r in _roles(rates)],
            }
        )
    elif name == "relearn":
        rows = []
        for variant in ("relearn", "feature_relearn"):
            for role, entry in metrics.get(variant, {}).items():
                steps = (
                    entry["steps"] if entry["reached"] else f"not reached in {metrics['max_steps']}"
                )
                rows.append([variant.replace("_", " "), role, _number(steps)])
        tables.append(
            {
                "title": f"Steps to reach {_number(metrics['threshold'])} held-out forget accuracy",
                "header": ["variant", "model", "steps"],
                "rows": rows,
            }
        )
    elif name == "representation":
        for key, title in (("erm", "ERM mask G"), ("relevance", "Class-channel relevance")):
            if key in metrics:
                part = metrics[key]
                tables.append(
                    {
                        "title": title,
                        "header": ["model", "CSI", "CSI mean", "L1-density"],
                        "rows": [
                            [
                                r,
                                _number(part[r]["csi"]),
                                _number(part[r]["csi_mean"]),
                                _number(part[r]["l1_density"]),
                            ]
                            for r in _roles(part)
                        ],
                    }
                )
        cka, probe = metrics["cka"], metrics["probe"]
        tables.append(
            {
                "title": "Linear CKA to the original's features",
                "header": ["model", "forget", "retain"],
                "rows": [
                    [r, _number(cka[r]["forget"]), _number(cka[r]["retain"])] for r in _roles(cka)
                ],
            }
        )
        tables.append(
            {
                "title": f"Few-shot probe ({metrics['probe_detail']['measure']}, k = 2 and 5)",
                "header": ["model", "mean over k"],
                "rows": [[r, _number(probe[r])] for r in _roles(probe)],
            }
        )
    elif name == "saliency":
        for metric, title in (
            ("spearman", "Spearman correlation of Grad-CAM maps"),
            ("top10_iou", "Top-10% IoU of Grad-CAM maps"),
        ):
            per_split = metrics[metric]
            pairs = sorted({p for split in per_split.values() for p in split})
            tables.append(
                {
                    "title": title,
                    "header": ["split", *[p.replace("_", " ") for p in pairs]],
                    "rows": [
                        [s, *(_estimate(per_split[s].get(p)) for p in pairs)] for s in per_split
                    ],
                }
            )
        if "trigger_mass" in metrics:
            mass = metrics["trigger_mass"]
            tables.append(
                {
                    "title": "Share of positive Grad-CAM mass inside the trigger",
                    "header": ["model", "share"],
                    "rows": [[r, _estimate(mass[r])] for r in _roles(mass)],
                }
            )
    elif name == "efficiency":
        tables.append(
            {
                "title": "Wall time",
                "header": ["quantity", "value"],
                "rows": [[k.replace("_", " "), _number(v, 2)] for k, v in metrics.items()],
            }
        )
    return tables


def _tpr(entry: dict[str, Any]) -> str:
    if not entry.get("resolvable", True):
        return f"unresolved ({entry['nonmembers']} non-members)"
    return (
        f"{_number(entry['tpr'])} [{_number(entry.get('tpr_low'))}, "
        f"{_number(entry.get('tpr_high'))}] at FPR {_number(entry['realised_fpr'], 4)}"
    )


def _exposed(metrics_check: Any) -> dict[str, Any] | None:
    exposed = metrics_check.per_sample.get("most_exposed_forget") if metrics_check else None
    if not exposed:
        return None
    roles = [r for r in ("unlearned", "original", "reference") if r in exposed]
    rows = [
        [exposed["ids"][i], exposed["labels"][i], *(_number(exposed[r][i], 2) for r in roles)]
        for i in range(len(exposed["ids"]))
    ]
    return {
        "title": "Most exposed forget samples (LiRA score, higher is more member-like)",
        "header": ["id", "label", *roles],
        "rows": rows,
    }


def build_context(result: AuditResult, figures: dict[str, str]) -> dict[str, Any]:
    """Everything the template shows, as plain strings and lists (kept apart from rendering)."""
    checks = []
    for name, check in result.checks.items():
        tables = _tables(name, check.metrics) if check.status == "ok" else []
        if name == "membership" and check.status == "ok":
            exposed = _exposed(check)
            if exposed:
                tables.append(exposed)
        section = {
            "name": name,
            "title": CHECK_TITLES.get(name, name),
            "status": check.status,
            "reason": check.reason,
            "notes": check.notes,
            "seconds": _number(check.seconds, 2),
            "tables": tables,
            "figures": [uri for key, uri in figures.items() if key.split("_")[0] == name],
        }
        checks.append(section)
    verdicts = [
        {
            **vars(v),
            "measured_text": _number(v.measured),
            "interval_text": "—"
            if not v.interval or None in v.interval
            else f"[{_number(v.interval[0])}, {_number(v.interval[1])}]",
            "reference_text": _number(v.reference),
            "threshold_text": ", ".join(f"{k} {_number(t, 2)}" for k, t in v.threshold.items()),
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
        "counts": {
            s: sum(v.status == s for v in result.verdicts)
            for s in ("PASS", "WARN", "FAIL", "INCONCLUSIVE", "N/A")
        },
        "claims": CLAIMS,
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


def _environment() -> Environment:
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
