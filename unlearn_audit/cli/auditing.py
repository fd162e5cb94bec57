"""`audit`, `report` and `checks`: audit an unlearned model, re-render a report, list checks;
and the audit's exit codes and terminal summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unlearn_audit.cli.options import (
    audit_recipe,
    check_out_dir,
    executor_from_args,
    given_shadows,
    json_dict,
    load_model_from_args,
    load_request,
    store_from_args,
)

EXIT_FAILED = 3
EXIT_INCONCLUSIVE = 4
EXIT_PARTIAL = 5


def audit_exit_code(outcome: str, fail_on: str = "fail") -> int:
    """The exit code of an audit with ``outcome`` under ``--fail-on``."""
    if outcome == "FAIL":
        return EXIT_FAILED
    if outcome == "INCONCLUSIVE":
        return EXIT_FAILED if fail_on in ("inconclusive", "warn") else EXIT_INCONCLUSIVE
    if outcome == "PARTIAL":
        return EXIT_FAILED if fail_on in ("inconclusive", "warn") else EXIT_PARTIAL
    if outcome == "WARN" and fail_on == "warn":
        return EXIT_FAILED
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    if args.plan:
        return _audit(args, None)
    check_out_dir(args.out, "--out")
    from unlearn_audit.report.worker import ReportWorker

    with ReportWorker() as worker:  # sets up the report's libraries while the audit runs
        return _audit(args, worker)


def _audit(args: argparse.Namespace, worker: Any) -> int:
    from unlearn_audit.checks import CHECKS
    from unlearn_audit.pipeline import audit

    dataset, splits = load_request(args)
    checks = None
    if args.checks:
        checks = [name.strip() for name in args.checks.split(",") if name.strip()]
        for name in checks:
            CHECKS.get(name)
    original = load_model_from_args(args.original, dataset, args)
    unlearned = load_model_from_args(args.unlearned, dataset, args, "unlearned")
    references = [
        load_model_from_args(path, dataset, args, "reference") for path in args.reference or []
    ]
    shadows = given_shadows(args, dataset)
    recipe = audit_recipe(args, dataset, original)
    arguments = dict(
        original=original,
        unlearned=unlearned,
        dataset=dataset,
        request=splits,
        references=references,
        shadows=shadows,
        profile=args.profile,
        trigger=args.trigger,
        checks=checks,
        policy=args.policy,
        store=store_from_args(args),
        seed=args.seed,
        num_references=args.references,
        num_shadows=args.shadows,
        null_audit=args.null_audit,
        recipe=recipe,
        override_recipe=args.override_recipe,
        arch=args.arch,
        arch_kwargs=json_dict(args.arch_kwargs, "--arch-kwargs"),
        conv_layer=args.conv_layer,
        feature_layer=args.feature_layer,
        device=args.device,
        inference_batch_size=args.inference_batch_size,
        executor=executor_from_args(args),
    )
    if args.plan:
        from unlearn_audit.pipeline import plan_audit

        plan = plan_audit(**arguments)
        print(json.dumps(plan.to_dict()) if args.json else plan.describe())
        return 0
    result = audit(
        **arguments,
        progress=not args.quiet,
        command_line=getattr(args, "command_line", None),
        on_check=worker.check_done,
    )
    out = result.save(Path(args.out) / "result.json")
    files = _write_report(result, Path(args.out), pdf=not args.no_pdf, worker=worker, path=out)
    code = audit_exit_code(result.outcome, args.fail_on)
    if args.json:
        print(
            json.dumps(
                {
                    "outcome": result.outcome,
                    "passed": result.passed,
                    "exit_code": code,
                    "headline": result.headline(),
                    "verdicts": [vars(v) for v in result.verdicts],
                    "checks": {
                        n: {"status": c.status, "reason": c.reason, "cause": c.cause}
                        for n, c in result.checks.items()
                    },
                    "notes": result.notes,
                    "files": {
                        "result": str(out),
                        "html": str(files.html),
                        "pdf": str(files.pdf) if files.pdf else None,
                    },
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(format_summary(result))
        print(f"wrote {out}")
        print(f"wrote {files.html}")
        if files.pdf is not None:
            print(f"wrote {files.pdf}")
    return code


def _write_report(
    result: Any, out_dir: Path, *, pdf: bool, worker: Any = None, path: Path | None = None
) -> Any:
    """Write the report of ``result`` (by ``worker`` when given, from ``path``, the saved
    result) and warn when the PDF could not be made."""
    import sys

    from unlearn_audit.report import write_report

    if worker is not None and path is not None:
        files = worker.write(result, path, out_dir, pdf=pdf)
    else:
        files = write_report(result, out_dir, pdf=pdf)
    if files.pdf_error:
        print(f"unlearn-audit: warning: {files.pdf_error}", file=sys.stderr)
    return files


def cmd_report(args: argparse.Namespace) -> int:
    from unlearn_audit.results import AuditResult

    out = check_out_dir(args.out, "--out") if args.out else Path(args.result).parent
    result = AuditResult.load(args.result)
    files = _write_report(result, out, pdf=not args.no_pdf)
    print(f"wrote {files.html}")
    if files.pdf is not None:
        print(f"wrote {files.pdf}")
    return 0


def cmd_checks(args: argparse.Namespace) -> int:
    from unlearn_audit.checks import CHECKS

    if args.json:
        print(json.dumps({name: check.description for name, check in CHECKS.items()}, indent=2))
        return 0
    for name, check in CHECKS.items():
        print(f"{name:15} {check.description}")
    return 0


def format_summary(result: Any) -> str:
    """The terminal summary: what must be read first (identical models, an inconclusive
    audit), the outcome, one verdict line per claim, the notes, the state of every check."""
    models = result.models
    null = result.null_audit
    retrain = "retrain" if null else ""  # the null audit's verdict: a true retrain judged alike
    lines = [*result.headline()]
    lines += [
        f"outcome: {result.outcome}",
        f"audit: {result.request['description']} on {result.dataset['name']} "
        f"(unlearned {models['unlearned']['fingerprint']}, original "
        f"{models['original']['fingerprint']}, profile {result.config['profile']})",
        f"  {'claim':20} {'verdict':7} {'measured':>9} {'reference':>9} {retrain:>7}  evidence",
    ]
    for verdict in result.verdicts:
        measured = "" if verdict.measured is None else f"{verdict.measured:.3f}"
        reference = "" if verdict.reference is None else f"{verdict.reference:.3f}"
        status = verdict.status + ("?" if verdict.claim in result.uncalibrated else "")
        on_retrain = (null.status(verdict.claim) or "") if null else ""
        lines.append(
            f"  {verdict.claim:20} {status:7} {measured:>9} {reference:>9} {on_retrain:>7}  "
            f"{verdict.evidence}"
        )
    for note in result.notes:
        lines.append(f"  note: {note}")
    states = []
    for name, check in result.checks.items():
        state = f"{name} ok" if check.status == "ok" else f"{name} N/A ({check.reason})"
        states.append(f"{state} {check.seconds:.1f} s")
    lines.append("  checks: " + "; ".join(states))
    return "\n".join(lines)
