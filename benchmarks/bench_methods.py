"""Every bundled method on digits: accuracy, verdicts and wall time against retrain.

Runs the demo (``unlearn-audit demo``) for a class request and for a random-sample request,
reads each model's audit result and prints, per method: forget / retain / test accuracy, the
verdict of each claim, the method's wall time and its ratio to retrain's. Ends with one JSON
line holding all of it.

    python benchmarks/bench_methods.py [--forget-class 3 ...] [--forget-random 0.05 ...] [--out DIR]

Each option may be given more than once (``--forget-class 3 --forget-class 1,3,8``); each
request runs the demo once. Defaults: class 3 and a 5% random request.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from unlearn_audit.results import AuditResult

SPLITS = ("forget", "retain", "test")


def _row(result: AuditResult) -> dict[str, Any]:
    numbers: dict[str, Any] = {}
    for check in result.checks.values():
        if check.evidence is not None:
            numbers |= check.evidence.key_numbers()
    return {
        "forget": numbers.get("forget accuracy"),
        "test": numbers.get("test accuracy"),
        "verdicts": {v.claim: v.status for v in result.verdicts},
        "seconds": numbers.get("unlearning s"),
    }


def run_demo(request: list[str], out: Path, cache: Path) -> dict[str, dict[str, Any]]:
    """Run the demo for ``request`` and read back every model's row."""
    command = [
        sys.executable, "-m", "unlearn_audit", "demo", *request,
        "--out-dir", str(out), "--cache-dir", str(cache), "--quiet", "--no-pdf", "--json",
    ]  # fmt: skip
    summary = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    return {
        row["model"]: _row(AuditResult.load(out / row["model"] / "result.json"))
        for row in summary["models"]
    }


def _print(title: str, rows: dict[str, dict[str, Any]]) -> None:
    retrain = rows.get("retrain", {}).get("seconds")
    claims = list(next(iter(rows.values()))["verdicts"])
    width = max(len(name) for name in rows)
    print(f"\n{title}")
    header = f"  {'model':{width}}  forget retain   test  seconds  x retrain  "
    print(header + "  ".join(c[:10] for c in claims))
    for name, row in rows.items():
        seconds = row["seconds"]
        ratio = f"{seconds / retrain:9.3f}" if seconds is not None and retrain else f"{'—':>9}"
        shown = f"{seconds:8.2f}" if seconds is not None else f"{'—':>8}"
        verdicts = "  ".join(f"{row['verdicts'][c]:10}"[: max(len(c[:10]), 4)] for c in claims)
        print(
            f"  {name:{width}}  {row['forget']:6.3f} {row['retain']:6.3f} {row['test']:6.3f} "
            f"{shown}  {ratio}  {verdicts}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forget-class", action="append", help="class(es), e.g. 3 or 1,3,8")
    parser.add_argument("--forget-random", action="append", help="fraction or count")
    parser.add_argument("--out", help="keep the reports here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.out or scratch)
        if not args.forget_class and not args.forget_random:
            args.forget_class, args.forget_random = ["3"], ["0.05"]
        requests = {
            **{f"forget class {c}": ["--forget-class", c] for c in args.forget_class or []},
            **{f"forget random {r}": ["--forget-random", r] for r in args.forget_random or []},
        }
        tables = {
            title: run_demo(request, root / f"request-{i}", root / "cache")
            for i, (title, request) in enumerate(requests.items())
        }
    for title, rows in tables.items():
        _print(title, rows)
    print(json.dumps({"dataset": "digits", "arch": "small-cnn", "requests": tables}))


if __name__ == "__main__":
    main()
