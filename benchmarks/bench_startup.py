"""What a quick digits audit costs from the command line, against a bare ``import torch``.

Trains a small-cnn original and fine-tunes it away from class 3 (not timed), audits it once to
fill a fresh store (not timed), then alternates ``--repeats`` times: a quick audit from the CLI
(with and without the PDF) and ``python -c "import torch"``. The fastest of each counts (the
machine's noise is one-sided); the ratio is the start-up target of issue 13 (<= 2x).

    python benchmarks/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [str(Path(sys.executable).parent / "unlearn-audit")]  # the console script, as users run it


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3, 4, 5):  # 3 to 5 are outcomes, not errors
        raise SystemExit(f"error: {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return seconds


def _font_subsetter() -> str:
    """What WeasyPrint subsets the PDF's fonts with here: HarfBuzz (libharfbuzz-subset0, 4.1 or
    later) or its fontTools fallback (0.27 s more per PDF on this machine)."""
    try:
        from weasyprint.text.ffi import harfbuzz, harfbuzz_subset
    except (ImportError, OSError):
        return "nothing (no WeasyPrint)"
    if harfbuzz_subset and harfbuzz.hb_version_atleast(4, 1, 0):
        return "HarfBuzz"
    return "fontTools (install libharfbuzz-subset0 for HarfBuzz)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        tmp = Path(root)
        cache = ["--cache-dir", str(tmp / "store"), "--quiet"]
        _run([*CLI, "train", "--epochs", "3", "--out", str(tmp / "orig.safetensors"), *cache])
        _run([
            *CLI, "unlearn", "--original", str(tmp / "orig.safetensors"), "--method", "finetune",
            "--forget-class", "3", "--out", str(tmp / "unl.safetensors"), "--quiet",
        ])  # fmt: skip
        audit = [
            *CLI, "audit", "--original", str(tmp / "orig.safetensors"),
            "--unlearned", str(tmp / "unl.safetensors"), "--forget-class", "3",
            "--profile", "quick", "--out", str(tmp / "report"), *cache,
        ]  # fmt: skip
        _run(audit)  # fills the store: references, shadows, outputs
        times: dict[str, list[float]] = {"audit": [], "audit_no_pdf": [], "import_torch": []}
        for _ in range(args.repeats):
            times["audit"].append(_run(audit))
            times["audit_no_pdf"].append(_run([*audit, "--no-pdf"]))
            times["import_torch"].append(_run([sys.executable, "-c", "import torch"]))
    best = {name: min(values) for name, values in times.items()}
    subsetter = _font_subsetter()
    ratio = best["audit"] / best["import_torch"]
    ratio_no_pdf = best["audit_no_pdf"] / best["import_torch"]
    print(
        f"quick digits audit {best['audit']:.2f} s ({best['audit_no_pdf']:.2f} s without the "
        f"PDF) vs import torch {best['import_torch']:.2f} s: {ratio:.2f}x ({ratio_no_pdf:.2f}x); "
        f"PDF fonts subset by {subsetter}"
    )
    print(
        json.dumps(
            {
                "seconds": {k: round(v, 3) for k, v in best.items()},
                "ratio": round(ratio, 3),
                "ratio_no_pdf": round(ratio_no_pdf, 3),
                "font_subsetter": subsetter,
            }
        )
    )


if __name__ == "__main__":
    main()
