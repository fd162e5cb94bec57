"""Regenerate ``result_class.json``: a real standard audit on digits (an original with a
backdoor planted on class 3, unlearned by salun), run through the CLI.

    python tests/golden/make_golden.py     (then UPDATE_GOLDEN=1 pytest tests/report)

Relative paths and a fixed timestamp keep the file free of machine details.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from unlearn_audit.cli import main

GOLDEN = Path(__file__).resolve().parent / "result_class.json"
CREATED = "2026-11-22T00:00:00Z"


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        os.environ["UNLEARN_AUDIT_CACHE"] = str(Path(folder) / "cache")
        trigger = {"kind": "patch", "size": 2, "row": 0, "col": 0, "value": 1.0, "target": 0}
        Path("trigger.json").write_text(json.dumps(trigger))
        train = "train --dataset digits --out original.safetensors --quiet"
        train += " --backdoor trigger.json --forget-class 3"
        unlearn = "unlearn --original original.safetensors --method salun --forget-class 3"
        unlearn += " --out unlearned.safetensors --quiet"
        audit = "audit --original original.safetensors --unlearned unlearned.safetensors"
        audit += " --forget-class 3 --out audit --no-pdf --quiet"
        steps = [train.split(), unlearn.split(), audit.split()]
        for argv in steps:
            code = main(argv)
            if code not in (0, 3, 4):
                sys.exit(f"{argv[0]} exited {code}")
        data = json.loads(Path("audit/result.json").read_text())
    data["created"] = CREATED
    GOLDEN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    regenerate()
