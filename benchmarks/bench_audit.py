"""Where an audit spends its time, and what the store saves on a second audit.

Trains (or loads) a small-cnn original on digits, audits it twice against a class request with
a fresh store (cold: references and shadows are trained; warm: all come from the store), and
prints the stage timings, the warm/cold ratio and a JSON line.

    python benchmarks/bench_audit.py [--profile standard] [--forget-class 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from unlearn_audit import ForgetRequest, load_dataset, make_splits, train_classifier
from unlearn_audit.pipeline import audit
from unlearn_audit.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="standard", choices=("quick", "standard", "full"))
    parser.add_argument("--forget-class", default="3")
    args = parser.parse_args()
    dataset = load_dataset("digits")
    splits = make_splits(dataset, ForgetRequest.classes(args.forget_class))
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        original = train_classifier(dataset, arch="small-cnn", store=store, progress=False)
        runs = {}
        for name in ("cold", "warm"):
            start = time.perf_counter()
            result = audit(
                original=original,
                unlearned=original,
                dataset=dataset,
                request=splits,
                profile=args.profile,
                store=store,
            )
            runs[name] = {
                "seconds": round(time.perf_counter() - start, 2),
                "timings": {k: round(v, 3) for k, v in result.timings.items()},
                "models_built": result.config["models_built"],
            }
    for name, run in runs.items():
        print(f"{name}: {run['seconds']:.1f} s, models {run['models_built']}")
        for stage, seconds in sorted(run["timings"].items(), key=lambda item: -item[1])[:5]:
            print(f"  {stage:24} {seconds:7.2f} s")
    ratio = runs["warm"]["seconds"] / runs["cold"]["seconds"]
    print(f"warm / cold: {ratio:.2f}")
    print(
        json.dumps(
            {
                "profile": args.profile,
                "dataset": "digits",
                "runs": runs,
                "warm_over_cold": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
