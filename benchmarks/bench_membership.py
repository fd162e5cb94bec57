"""How clearly the membership attacks separate an overfit original from its retrain, and what
the null audit says about a true retrain.

Trains (or loads from the store) a small-cnn original on a random member set with no weight
decay (overfit), and audits a model retrained without a random forget set as the unlearned
model (standard profile: two references, four shadows, the null audit), with the accuracy,
membership and margins checks. Prints, for LiRA and RMIA, the AUC of the original, the
unlearned model and the references (with 95% bootstrap intervals), the overfit original's mean
standardised margin, the verdicts, the null audit's verdicts, and a JSON line.

    python benchmarks/bench_membership.py                       # digits, 400 members
    python benchmarks/bench_membership.py --dataset fashion-mnist --members 5000 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from unlearn_audit import ForgetRequest, load_dataset, make_splits, train_classifier
from unlearn_audit.errors import UnlearnAuditError
from unlearn_audit.pipeline import audit
from unlearn_audit.recipe import Recipe
from unlearn_audit.store import Store


def _auc(result: Any) -> list[float | None]:
    auc = result.auc
    return [auc.value, auc.low, auc.high]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root")
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--forget", type=float, default=0.05, help="random fraction to forget")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", help="model store (default: the user's)")
    args = parser.parse_args()
    try:
        dataset = load_dataset(args.dataset, root=args.data_root)
    except UnlearnAuditError as exc:
        parser.exit(1, f"bench_membership: {exc}\n")
    store = Store(args.store) if args.store else Store()
    recipe = Recipe(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    members = np.sort(rng.choice(dataset.train_ids, args.members, replace=False))
    start = time.perf_counter()
    original = train_classifier(
        dataset, arch="small-cnn", member_ids=members, recipe=recipe, store=store, progress=True
    )
    splits = make_splits(
        dataset, ForgetRequest.random(args.forget, seed=args.seed), member_ids=members
    )
    retrained = train_classifier(
        dataset,
        arch="small-cnn",
        member_ids=splits.retain,
        recipe=recipe,
        seed=args.seed + 100,
        store=store,
        role="unlearned",
        progress=True,
    )
    result = audit(
        original=original,
        unlearned=retrained,
        dataset=dataset,
        request=splits,
        checks=["accuracy", "membership", "margins"],
        store=store,
        seed=args.seed,
        progress=True,
    )
    seconds = time.perf_counter() - start
    attacks = result.checks["membership"].evidence.attacks  # type: ignore[union-attr]
    margins = result.checks["margins"].evidence.by_role  # type: ignore[union-attr]
    report: dict[str, Any] = {
        "dataset": args.dataset,
        "members": args.members,
        "forget": len(splits.forget),
        "test": len(splits.test),
        "population": len(splits.population),
        "recipe": recipe.to_dict(),
        "auc": {a: {r: _auc(x) for r, x in attacks[a].items()} for a in ("lira", "rmia")},
        "mean_standardised_margin": {r: s.mean.value for r, s in margins.items()},
        "verdicts": {v.claim: v.status for v in result.verdicts},
        "null_audit": (
            {v.claim: v.status for v in result.null_audit.verdicts} if result.null_audit else None
        ),
        "uncalibrated": result.uncalibrated,
        "seconds": round(seconds, 1),
    }
    for attack in ("lira", "rmia"):
        print(f"{attack.upper()} AUC (forget vs test):")
        for role, (value, low, high) in report["auc"][attack].items():
            print(f"  {role:12} {value:.3f} [{low:.3f}, {high:.3f}]")
    print("mean standardised forget margin:")
    for role, value in report["mean_standardised_margin"].items():
        print(f"  {role:12} {value:+.2f}")
    print("verdicts (retrain):", report["verdicts"])
    print("null audit (reference as the unlearned model):", report["null_audit"])
    print("uncalibrated:", report["uncalibrated"] or "none")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
