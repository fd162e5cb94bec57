"""`unlearn-audit demo`: the whole product on the embedded digits dataset."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

from unlearn_audit.cli.options import check_out_dir, executor_from_args, store_from_args


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or load) an original on digits, run every method that handles the request,
    audit each against the same references and shadow bank (sisa and erm-ktp: against their
    own SISA and ERM originals), and write the reports."""
    from tqdm.auto import tqdm

    from unlearn_audit._io import write_atomic
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.data.splits import ForgetRequest, make_splits
    from unlearn_audit.executors import MethodJob
    from unlearn_audit.models.checkpoints import checkpoint_bytes, save_checkpoint
    from unlearn_audit.pipeline import audit
    from unlearn_audit.registry import METHOD_PLUGINS
    from unlearn_audit.report import write_report
    from unlearn_audit.report.compare import write_comparison
    from unlearn_audit.results import unjudged_claims
    from unlearn_audit.train import resolve_device, train_classifier
    from unlearn_audit.update_log import UpdateRecorder, save_update_log

    device = resolve_device(args.device)
    out = check_out_dir(args.out_dir, "--out-dir")
    store = store_from_args(args)
    executor = executor_from_args(args)
    dataset = load_dataset("digits")
    if args.forget_random is not None:
        request = ForgetRequest.random(args.forget_random, seed=args.seed)
    else:
        request = ForgetRequest.classes(args.forget_class or "3")
    splits = make_splits(dataset, request)
    scope = "class" if request.kind == "class" else "sample"
    chosen = chosen_methods(args.methods, scope)
    start = time.perf_counter()
    # the update log that `amnesiac` needs: a logged run (kept in the store with its log)
    recorder = UpdateRecorder() if "amnesiac" in chosen else None
    original = train_classifier(
        dataset,
        arch="small-cnn",
        device=device,
        store=store,
        update_log=recorder,
        progress=not args.quiet,
    )
    save_checkpoint(original, out / "original.safetensors")
    originals: dict[str, Any] = {name: original for name in chosen}
    if "sisa" in originals:  # `sisa` unlearns a SISA ensemble, so it gets an original of its own
        originals["sisa"] = train_classifier(
            dataset,
            arch="sisa",
            arch_kwargs={"base": "small-cnn", "shards": 3, "slices": 2},
            device=device,
            store=store,
            progress=not args.quiet,
        )
    if "erm-ktp" in originals:  # `erm-ktp` needs the ERM mask layer, trained in alternation
        originals["erm-ktp"] = train_classifier(
            dataset,
            arch="erm",
            arch_kwargs={"base": "small-cnn"},
            device=device,
            store=store,
            progress=not args.quiet,
        )
    subjects: dict[str, Any] = {"no-unlearning": original}
    for name in chosen:
        METHOD_PLUGINS.get(name)  # an unknown name fails before anything runs
    with tempfile.TemporaryDirectory() as folder:
        log = (
            save_update_log(recorder.log, Path(folder) / "original.updates.safetensors")
            if recorder is not None and recorder.log is not None
            else None
        )
        # each method's run as data: the local executor runs them here, one after another,
        # the Ray executor as one task each
        weights = {id(model): checkpoint_bytes(model) for model in originals.values()}
        jobs = [
            MethodJob(
                method=name,
                original=weights[id(originals[name])],
                splits=splits,
                files={"update_log": log.read_bytes()} if name == "amnesiac" and log else {},
                seed=args.seed,
            )
            for name in chosen
        ]
        if executor.name == "local":
            bar = tqdm(jobs, desc="unlearn", disable=None if not args.quiet else True)
            unlearned = [executor.run_methods([job], dataset, device=device)[0] for job in bar]
        else:
            unlearned = executor.run_methods(jobs, dataset, device=device)
    for name, data in zip(chosen, unlearned, strict=True):
        path = out / name / "unlearned.safetensors"
        write_atomic(path, partial(Path.write_bytes, data=data))
        subjects[name] = path  # (the audit loads it, checking its weights' fingerprint)
        if originals[name] is not original:
            save_checkpoint(originals[name], out / name / "original.safetensors")
    results, summary = {}, []
    pdf_error = ""
    for name, model in tqdm(
        subjects.items(), desc="audit", disable=None if not args.quiet else True
    ):
        result = audit(
            original=originals.get(name, original),
            unlearned=model,
            dataset=dataset,
            request=splits,
            profile=args.profile,
            store=store,
            seed=args.seed,
            device=str(device),
            executor=executor,
            progress=not args.quiet,
            created=_now(),
        )
        result.save(out / name / "result.json")
        files = write_report(result, out / name, pdf=not args.no_pdf)
        pdf_error = pdf_error or files.pdf_error
        results[name] = result
        summary.append(
            {
                "model": name,
                "passed": result.passed,
                "report": str(files.html),
                "verdicts": {v.claim: v.status for v in result.verdicts},
            }
        )
    if pdf_error:  # once, not once per model
        print(f"unlearn-audit: warning: {pdf_error}", file=sys.stderr)
    links = {name: f"{name}/report.html" for name in results}
    comparison = write_comparison(results, out, links=links)
    seconds = time.perf_counter() - start
    # claims that apply but that the profile left unjudged, in any audit
    unjudged = unjudged_claims(results.values())
    if args.json:
        print(
            json.dumps(
                {
                    "comparison": str(comparison),
                    "models": summary,
                    "unjudged": unjudged,
                    "seconds": round(seconds, 1),
                },
                indent=2,
            )
        )
        return 0
    print(
        f"demo: {splits.request.describe()} on digits, small-cnn original "
        f"{original.fingerprint}, {len(results)} models audited in {seconds:.0f} s"
    )
    claims = list(summary[0]["verdicts"])
    width = max(len(row["model"]) for row in summary)
    print(f"  {'model':{width}}  " + " ".join(f"{c[:18]:18}" for c in claims))
    for row in summary:
        print(f"  {row['model']:{width}}  " + " ".join(f"{row['verdicts'][c]:18}" for c in claims))
    if unjudged:
        print(
            f"PARTIAL: {', '.join(unjudged)} apply to this request but were not judged with "
            f"--profile {args.profile}: no method is shown to forget on them (the standard "
            "profile judges them)"
        )
    print(f"reports: {out}/<model>/report.html (and .pdf); comparison: {comparison}")
    return 0


def chosen_methods(names: str | None, scope: str) -> list[str]:
    """The methods the demo runs: ``names`` (comma-separated), else every registered method
    whose scope holds the request's (``"class"`` or ``"sample"``).

    Raises:
        RegistryError: A name is not a registered method (with the closest names).
        ConfigError: A named method does not handle this kind of request.
    """
    from unlearn_audit.errors import ConfigError
    from unlearn_audit.registry import METHOD_PLUGINS

    if names is None:
        return [n for n, spec in METHOD_PLUGINS.items() if scope in spec.scope]
    chosen = list(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
    if not chosen:
        raise ConfigError("`--methods` names no method; give names like retrain,finetune.")
    for name in chosen:
        if scope not in METHOD_PLUGINS.get(name).scope:
            raise ConfigError(
                f"method {name!r} does not handle {scope} requests; see `unlearn-audit methods`."
            )
    return chosen


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
