"""How close an audit comes to its physical limit: forward passes and training against bare
PyTorch doing exactly the unavoidable work.

Trains (or loads) a small-cnn original and a retrained "unlearned" model, then audits the
unlearned model twice against a class request with a fresh store: cold (references and shadows
are trained, every output is computed) and warm (everything but the unlearned model comes from
the store). For each it prints

- the samples forwarded and the minimum (the sum over models and views of the union of the ids
  the checks read, from the audit's plan);
- cold: the build stage against bare training of the same models (same architecture, epochs,
  batch size, optimiser and learning rate, a plain PyTorch loop): the cold ratio;
- warm: the wall time against a bare PyTorch loop that forwards exactly the unlearned model's
  minimum (its planned samples and views): the warm ratio;
- the seconds of each stage; and a JSON line.

    python benchmarks/bench_audit.py [--dataset fashion-mnist] [--profile standard]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearn_audit import ForgetRequest, load_dataset, make_splits, train_classifier
from unlearn_audit.errors import UnlearnAuditError
from unlearn_audit.models.zoo import build_model
from unlearn_audit.outputs import apply_view
from unlearn_audit.pipeline import audit, plan_audit, shadow_member_ids
from unlearn_audit.recipe import Recipe
from unlearn_audit.store import Store


def _bare_training(dataset: Any, recipe: Any, member_sets: list[np.ndarray]) -> float:
    """Seconds a plain PyTorch loop takes to train one small-cnn per member set."""
    start = time.perf_counter()
    for k, members in enumerate(member_sets):
        torch.manual_seed(k)
        net = build_model("small-cnn", dataset.num_classes, dataset.input_shape)
        optimiser = torch.optim.SGD(
            net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )  # fmt: skip
        x_all, y_all = dataset.load(members)
        net.train()
        for _ in range(recipe.epochs):
            order = torch.randperm(len(members))
            for i in range(0, len(members), recipe.batch_size):
                batch = order[i : i + recipe.batch_size]
                optimiser.zero_grad()
                F.cross_entropy(net(x_all[batch]), y_all[batch]).backward()
                optimiser.step()
    return time.perf_counter() - start


def _bare_forward(model: Any, dataset: Any, reads: dict[str, np.ndarray], batch: int) -> float:
    """Seconds a plain PyTorch loop takes to forward ``model`` over each view's ids."""
    module = model.module.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for view, ids in reads.items():
            x_all, _ = dataset.load(ids)
            for i in range(0, len(ids), batch):
                module(apply_view(x_all[i : i + batch], view))  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root")
    parser.add_argument("--profile", default="standard", choices=("quick", "standard", "full"))
    parser.add_argument("--forget-class", default="3")
    args = parser.parse_args()
    try:
        dataset = load_dataset(args.dataset, args.data_root)
    except UnlearnAuditError as exc:
        raise SystemExit(f"error: {exc}") from None
    splits = make_splits(dataset, ForgetRequest.classes(args.forget_class))
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as root:
        models = Store(f"{root}/models")  # the original and unlearned model, not timed
        original = train_classifier(dataset, arch="small-cnn", store=models, progress=False)
        unlearned = train_classifier(
            dataset, arch="small-cnn", member_ids=splits.retain, seed=7, store=models,
            role="unlearned", progress=False,
        )  # fmt: skip
        store = Store(f"{root}/audit")
        common = {
            "original": original, "unlearned": unlearned, "dataset": dataset,
            "request": splits, "profile": args.profile, "store": store,
        }  # fmt: skip
        for name in ("cold", "warm"):
            plan = plan_audit(**common)
            if name == "cold":
                jobs = list(plan.training)
                minimum = sum(p.samples for p in plan.passes)
            else:  # only the unlearned model's passes are left
                minimum = plan.to_forward
                unlearned_reads = {p.view: p.ids for p in plan.passes if p.role == "unlearned"}
            start = time.perf_counter()
            result = audit(**common)
            runs[name] = {
                "seconds": round(time.perf_counter() - start, 2),
                "forwarded": result.config["outputs"]["forwarded"],
                "from_store": result.config["outputs"]["from_store"],
                "minimum": minimum,
                "timings": {k: round(v, 3) for k, v in result.timings.items()},
                "models_built": result.config["models_built"],
            }
        recipe = Recipe.from_dict(result.config["recipe"])
        batch = result.config["batch_size"]
    halves = iter(shadow_member_ids(splits.population, len(jobs), 0))
    member_sets = [splits.retain if job.role == "reference" else next(halves) for job in jobs]
    bare_train = _bare_training(dataset, recipe, member_sets)
    bare_forward = _bare_forward(unlearned, dataset, unlearned_reads, batch)
    runs["cold"]["bare_training_seconds"] = round(bare_train, 2)
    runs["warm"]["bare_forward_seconds"] = round(bare_forward, 3)
    cold_ratio = runs["cold"]["timings"]["build"] / bare_train if bare_train else None
    warm_ratio = runs["warm"]["seconds"] / bare_forward
    for name, run in runs.items():
        print(
            f"{name}: {run['seconds']:.1f} s; forwarded {run['forwarded']} samples "
            f"(minimum {run['minimum']}), {run['from_store']} from the store; models "
            f"{run['models_built']}"
        )
        for stage, seconds in sorted(run["timings"].items(), key=lambda item: -item[1])[:6]:
            print(f"  {stage:24} {seconds:7.2f} s")
    if cold_ratio is not None:
        print(
            f"cold: build {runs['cold']['timings']['build']:.1f} s vs bare training "
            f"{bare_train:.1f} s of the same {len(member_sets)} models: {cold_ratio:.2f}x"
        )
    print(
        f"warm: audit {runs['warm']['seconds']:.1f} s vs a bare loop over the unlearned model's "
        f"minimum passes {bare_forward:.3f} s: {warm_ratio:.1f}x"
    )
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "profile": args.profile,
                "runs": runs,
                "cold_ratio": None if cold_ratio is None else round(cold_ratio, 3),
                "warm_ratio": round(warm_ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
