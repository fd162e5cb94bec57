"""`methods` and `unlearn`: list the unlearning methods and run one on a checkpoint."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from unlearn_audit.cli.options import check_out_file, load_model_from_args, load_request
from unlearn_audit.errors import ConfigError
from unlearn_audit.hyperparameters import parse_hyperparameters


def cmd_methods(args: argparse.Namespace) -> int:
    from unlearn_audit.registry import METHOD_PLUGINS

    names = [args.name] if args.name else METHOD_PLUGINS.names()
    rows = [_method_row(name, METHOD_PLUGINS.get(name)) for name in names]
    if args.json:
        print(json.dumps(rows[0] if args.name else rows, indent=2))
        return 0
    if args.name:
        row = rows[0]
        print(f"{row['name']}: {row['summary']}")
        print(f"  requests     {' and '.join(row['scope'])}")
        print(f"  needs        {'; '.join(row['needs'])}")
        print(f"  source       {row['paper']}")
        defaults = ", ".join(f"{k}={v!r}" for k, v in row["defaults"].items()) or "none"
        print(f"  defaults     {defaults}  (override with --hp KEY=VALUE)")
        if row["description"]:
            print()
            print(textwrap.indent(row["description"], "  "))
        return 0
    width = max(len(row["name"]) for row in rows) + 2
    for row in rows:
        print(f"{row['name']:{width}}{'+'.join(row['scope']):14}{row['summary']}")
        print(f"{'':{width}}{'':14}needs: {'; '.join(row['needs'])}")
    print("\n`unlearn-audit methods NAME` shows a method's defaults, source and details.")
    return 0


def _method_row(name: str, spec: Any) -> dict[str, Any]:
    """What `methods` shows of one spec: metadata plus the docstring's description."""
    import inspect

    doc = inspect.getdoc(spec.run) or ""
    description = doc.split("\n    Args:")[0].split("\nArgs:")[0].strip()
    return {
        "name": name,
        "scope": list(spec.scope),
        "needs": list(spec.needs),
        "summary": spec.summary,
        "paper": spec.paper,
        "defaults": dict(spec.defaults),
        "description": description,
    }


def cmd_unlearn(args: argparse.Namespace) -> int:
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.registry import METHOD_PLUGINS
    from unlearn_audit.train import resolve_device

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"`--out` must end in .safetensors; got {args.out!r}.")
    check_out_file(out, "--out")
    spec = METHOD_PLUGINS.get(args.method)
    device = resolve_device(args.device)
    dataset, splits = load_request(args)
    original = load_model_from_args(args.original, dataset, args)
    result = spec.apply(
        original,
        dataset,
        splits,
        hyperparameters=parse_hyperparameters(args.hp),
        seed=args.seed,
        device=device,
        progress=not args.quiet,
    )
    save_checkpoint(result.model, out)
    summary = {
        "method": args.method,
        "seconds": result.seconds,
        "fingerprint": result.model.fingerprint,
        "checkpoint": str(out),
        "hyperparameters": result.model.info.extra["unlearning"]["hyperparameters"],
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(
        f"{args.method}: {splits.request.describe()} in {result.seconds:.1f} s "
        f"(fingerprint {result.model.fingerprint})"
    )
    print(f"hyperparameters: {json.dumps(summary['hyperparameters'], sort_keys=True, default=str)}")
    print(f"wrote {out}")
    return 0
