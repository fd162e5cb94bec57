"""UNSIR against USI(F)R and DNF as the number of forgotten classes grows.

The seed 003 paper (its table 9) reports that UNSIR's time grows with the number of forgotten
classes, since it learns one noise batch per class and impairs on all of them, while
USI(F)R's stays flat. This script measures it: it trains the original once, then for each
count ``k`` (default 1, 2, 3, 6) unlearns ``--subsets`` seeded random sets of ``k`` classes
with each method and prints the mean wall time of the method (noise + impair + repair, as the
paper counts it), its ratio to UNSIR's, and the forget-class and retain-class test accuracy.
Ends with one JSON line holding all of it.

    python benchmarks/bench_noise_classes.py [--dataset digits|fashion-mnist] [--data-root DIR]
        [--counts 1,2,3,6] [--subsets 3] [--threads 1] [--hp KEY=VALUE ...]

The times are CPU times on a possibly shared machine: ``--threads`` (default 1) pins torch's
thread count, since oversubscribed threads make the timings meaningless.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import numpy as np
import torch

import methods.unsir
import methods.usifr
from methods import METHODS as REGISTRY
from methods import parse_hyperparameters, unlearn
from unlearn_audit.data.datasets import load_dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits
from unlearn_audit.errors import ConfigError, UnlearnAuditError
from unlearn_audit.train import accuracy, train_classifier

assert methods.unsir and methods.usifr  # registered even before methods/__init__ lists them
METHODS = ("unsir", "usifr", "dnf")


def class_subsets(num_classes: int, count: int, subsets: int, seed: int) -> list[list[int]]:
    """``subsets`` different seeded draws of ``count`` classes (fewer if there are not as many)."""
    rng = np.random.default_rng(seed + count)
    drawn: list[list[int]] = []
    for _ in range(50 * subsets):
        choice = sorted(int(c) for c in rng.choice(num_classes, size=count, replace=False))
        if choice not in drawn:
            drawn.append(choice)
        if len(drawn) == subsets:
            break
    return drawn


def measure(args: argparse.Namespace) -> dict[str, Any]:
    dataset = load_dataset(args.dataset, args.data_root)
    hp = parse_hyperparameters(args.hp or [])
    known = {key for m in METHODS for key in REGISTRY.get(m).defaults}
    unknown = sorted(set(hp) - known)
    if unknown:
        raise ConfigError(f"no method here has {unknown}; known: {', '.join(sorted(known))}.")
    print(f"training {args.arch} on {dataset.name} ...", file=sys.stderr)
    original = train_classifier(dataset, arch=args.arch, seed=args.seed, progress=False)
    rows: list[dict[str, Any]] = []
    for count in args.counts:
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
        subsets = class_subsets(dataset.num_classes, count, args.subsets, args.seed)
        for classes in subsets:
            splits = make_splits(dataset, ForgetRequest.classes(tuple(classes)))
            for method in METHODS:
                given = {k: v for k, v in hp.items() if k in REGISTRY.get(method).defaults}
                result = unlearn(
                    method, original, dataset, splits, hyperparameters=given, seed=args.seed
                )
                model = result.model.module
                runs[method].append(
                    {
                        "seconds": result.seconds,
                        "forget": accuracy(model, dataset, splits.get("test_forget_class")),
                        "retain": accuracy(model, dataset, splits.get("test_retain_class")),
                    }
                )
        row: dict[str, Any] = {"classes": count, "subsets": subsets}
        for method, values in runs.items():
            row[method] = {
                key: statistics.mean(v[key] for v in values)
                for key in ("seconds", "forget", "retain")
            }
        for method in METHODS[1:]:
            row[f"{method}/unsir"] = row[method]["seconds"] / row["unsir"]["seconds"]
        rows.append(row)
        print(f"  {count} classes done", file=sys.stderr)
    return {
        "dataset": dataset.name,
        "arch": args.arch,
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "hyperparameters": hp,
        "rows": rows,
    }


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"\n{summary['dataset']} / {summary['arch']}, {summary['threads']} thread(s); mean over "
        "the class subsets; seconds = noise + impair + repair"
    )
    head = "  ".join(f"{m:>7}" for m in METHODS)
    ratios = "  ".join(f"{m + '/unsir':>11}" for m in METHODS[1:])
    accs = "  ".join(f"{m + ' f/r':>11}" for m in METHODS)
    print(f"  #classes  {head}  {ratios}  {accs}")
    for row in summary["rows"]:
        seconds = "  ".join(f"{row[m]['seconds']:7.2f}" for m in METHODS)
        ratio = "  ".join(f"{row[m + '/unsir']:11.2f}" for m in METHODS[1:])
        acc = "  ".join(f"{row[m]['forget']:5.3f}/{row[m]['retain']:5.3f}" for m in METHODS)
        print(f"  {row['classes']:8d}  {seconds}  {ratio}  {acc}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="digits (default) or fashion-mnist")
    parser.add_argument("--data-root", help="where the dataset's files are (fashion-mnist)")
    parser.add_argument("--arch", default="small-cnn")
    parser.add_argument(
        "--counts",
        default="1,2,3,6",
        type=lambda text: [int(c) for c in text.split(",")],
        help="numbers of forgotten classes (default 1,2,3,6, as the paper's table 9)",
    )
    parser.add_argument("--subsets", type=int, default=3, help="class subsets per count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--hp", action="append", help="KEY=VALUE for every method that has it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        summary = measure(args)
    except UnlearnAuditError as error:
        print(f"bench_noise_classes: {error}", file=sys.stderr)
        return 1
    print_table(summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
