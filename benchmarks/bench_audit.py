"""How close an audit comes to its physical limit: forward passes and training against bare
PyTorch doing exactly the unavoidable work.

Trains (or loads) a small-cnn original and a retrained "unlearned" model, then audits the
unlearned model against a class request with a fresh store: cold (references and shadows
are trained, every output is computed), then warm: a second unlearned model (the first with one
weight moved, a fingerprint the store never saw), for which everything but that model comes from
the store. For each it prints

- the samples forwarded and the minimum (the sum over models and views of the union of the ids
  the checks read, from the audit's plan);
- cold: the build stage against bare training of the same models (same architecture, epochs,
  batch size, optimiser and learning rate, a plain PyTorch loop): the cold ratio;
- warm: the wall time against bare PyTorch doing the unlearned model's unavoidable work: a loop
  that forwards exactly its minimum (its planned samples and views), its planned Grad-CAM passes
  (forward and backward), plus its own relearn probes (the same fine-tuning steps and
  evaluations): the warm ratio (target <= 1.3);
- the seconds of each stage; and a JSON line.

The warm audit and the bare loops run ``--repeats`` times each and the fastest counts (the
machine's noise is one-sided).

    python benchmarks/bench_audit.py [--dataset fashion-mnist] [--members 20000]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearn_audit import ForgetRequest, load_dataset, make_splits, train_classifier
from unlearn_audit.errors import UnlearnAuditError
from unlearn_audit.models.checkpoints import wrap_model
from unlearn_audit.models.zoo import build_model
from unlearn_audit.outputs import apply_view
from unlearn_audit.pipeline import audit, plan_audit, shadow_member_ids
from unlearn_audit.recipe import Recipe
from unlearn_audit.store import Store

# the bare loops run in the layout the audit's CPU passes use (fast_layout): the ratios
# measure the audit's overhead, not the layout
LAYOUT = torch.channels_last


def _bare_training(dataset: Any, recipe: Any, member_sets: list[np.ndarray]) -> float:
    """Seconds a plain PyTorch loop takes to train one small-cnn per member set."""
    start = time.perf_counter()
    for k, members in enumerate(member_sets):
        torch.manual_seed(k)
        net = build_model("small-cnn", dataset.num_classes, dataset.input_shape)
        net = net.to(memory_format=LAYOUT)
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
                x = x_all[batch].contiguous(memory_format=LAYOUT)
                F.cross_entropy(net(x), y_all[batch]).backward()
                optimiser.step()
    return time.perf_counter() - start


def _unseen_copy(model: Any, rng: np.random.Generator) -> Any:
    """``model`` with one weight moved by a random 1e-5 to 2e-5: the same work, but a fingerprint
    no store has seen (not even one kept between runs with ``--audit-store``), so a warm audit
    of it is the audit of a second unlearned model (the store keeps every model's relearn
    curves, the unlearned one's too: the unlearned model itself would be served its own)."""
    net = copy.deepcopy(model.module.net)
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] += 1e-5 * (1.0 + rng.random())
    return wrap_model(net, model.info, model.normalization)


def _bare_forward(model: Any, dataset: Any, reads: dict[str, np.ndarray], batch: int) -> float:
    """Seconds a plain PyTorch loop takes to forward ``model`` over each view's ids."""
    module = copy.deepcopy(model.module).eval().to(memory_format=LAYOUT)
    start = time.perf_counter()
    with torch.inference_mode():
        for view, ids in reads.items():
            x_all, _ = dataset.load(ids)
            for i in range(0, len(ids), batch):
                x = apply_view(x_all[i : i + batch], view)  # type: ignore[arg-type]
                module(x.contiguous(memory_format=LAYOUT))
    return time.perf_counter() - start


def _bare_cams(model: Any, dataset: Any, reads: dict[str, np.ndarray]) -> float:
    """Seconds a plain PyTorch loop takes for the model's Grad-CAM passes over each view's ids
    (one forward and backward pass each, the true-label logits' gradient at the last
    convolution, averaged into channel weights, upsampled to the input), as the audit's plan
    lists them."""
    from unlearn_audit.models.layers import find_layers, get_layer

    module = copy.deepcopy(model.module).eval()
    conv = get_layer(module, find_layers(module).conv)
    recorded: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: recorded.append(out))
    start = time.perf_counter()
    for view, ids in reads.items():
        x, y = dataset.load(ids)
        x = apply_view(x, view)  # type: ignore[arg-type]
        logits = module(x)
        activations = recorded.pop()
        (grads,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), activations)
        cam = (grads.mean(dim=(2, 3), keepdim=True) * activations).sum(1, keepdim=True)
        F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear").detach().numpy()
    seconds = time.perf_counter() - start
    handle.remove()
    return seconds


def _bare_relearn(model: Any, dataset: Any, splits: Any, evidence: Any) -> float:
    """Seconds a plain PyTorch loop takes to do the unlearned model's own relearn probes as the
    audit did them: the same numbers of fine-tuning samples, steps and held-out evaluations
    (Adam 1e-4, batch 32), and for feature relearn the head warm-up first (2 epochs, Adam
    1e-3, batch 64, on the retain samples' head inputs, which the forward passes already
    computed: taken here before the clock starts)."""
    from unlearn_audit.checks import relearn
    from unlearn_audit.models.layers import find_layers, get_layer, penultimate_features

    rng = np.random.default_rng(0)
    train_ids = rng.choice(
        splits.retain, evidence.relearn_samples + evidence.retain_samples, replace=False
    )
    eval_ids = rng.choice(splits.retain, evidence.eval_samples, replace=False)
    x_eval, y_eval = dataset.load(eval_ids)
    x_train, y_train = dataset.load(train_ids)
    x_retain, y_retain = dataset.load(splits.retain)
    module = model.module.eval()
    with torch.inference_mode():
        features = torch.cat(
            [
                penultimate_features(module, x_retain[i : i + 512])[1]
                for i in range(0, len(x_retain), 512)
            ]
        )
    x_eval = x_eval.contiguous(memory_format=LAYOUT)
    x_train = x_train.contiguous(memory_format=LAYOUT)
    start = time.perf_counter()
    for variant, curves in evidence.curves.items():
        if "unlearned" not in curves:
            continue
        net = copy.deepcopy(model.module).to(memory_format=LAYOUT)
        if variant == "feature_relearn":
            head = get_layer(net, find_layers(net).features)
            optimiser = torch.optim.Adam(head.parameters(), lr=relearn.WARMUP.lr)
            for _ in range(relearn.WARMUP.epochs):
                order = torch.randperm(len(features))
                for i in range(0, len(order), relearn.WARMUP.batch_size):
                    batch = order[i : i + relearn.WARMUP.batch_size]
                    optimiser.zero_grad()
                    F.cross_entropy(head(features[batch]), y_retain[batch]).backward()
                    optimiser.step()
        steps = curves["unlearned"].steps
        optimiser = torch.optim.Adam(net.parameters(), lr=relearn.RECIPE.lr)
        step, evaluations = 0, 1
        net.eval()
        with torch.inference_mode():
            net(x_eval).argmax(1).eq(y_eval).float().mean()
        while step < steps[-1]:
            order = torch.randperm(len(train_ids))
            for i in range(0, len(order), relearn.RECIPE.batch_size):
                net.train()
                batch = order[i : i + relearn.RECIPE.batch_size]
                optimiser.zero_grad()
                F.cross_entropy(net(x_train[batch]), y_train[batch]).backward()
                optimiser.step()
                step += 1
                if step % relearn.EVAL_EVERY == 0:
                    net.eval()
                    with torch.inference_mode():
                        net(x_eval).argmax(1).eq(y_eval).float().mean()
                    evaluations += 1
                if step >= steps[-1]:
                    break
        assert evaluations == len(steps), (variant, evaluations, len(steps))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root")
    parser.add_argument("--profile", default="standard", choices=("quick", "standard", "full"))
    parser.add_argument("--forget-class", default="3")
    parser.add_argument(
        "--models-store", help="keep the original and unlearned model here between runs"
    )
    parser.add_argument(
        "--audit-store",
        help="the audit's store (default a fresh one; an existing one makes the cold run warm)",
    )
    parser.add_argument(
        "--no-bare-training",
        action="store_true",
        help="skip the cold ratio (bare training of the references and shadows again)",
    )
    parser.add_argument(
        "--members", type=int, help="train the original on this many training samples (seed 0)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="warm audits and bare loops; the fastest counts"
    )
    args = parser.parse_args()
    # torch's optimizer.step() imports torch._dynamo the first time in any process (1.6 s
    # here): a bare program pays it as the audit does, once, so it is paid before any timing
    # (else whichever of the two trains first in this process pays it for both)
    import torch._dynamo  # noqa: F401

    try:
        dataset = load_dataset(args.dataset, args.data_root)
    except UnlearnAuditError as exc:
        raise SystemExit(f"error: {exc}") from None
    members = None
    if args.members:
        rng = np.random.default_rng(0)
        members = np.sort(rng.choice(dataset.train_ids, args.members, replace=False))
    splits = make_splits(dataset, ForgetRequest.classes(args.forget_class), member_ids=members)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as root:
        # the original and unlearned model, not timed (kept with --models-store)
        models = Store(args.models_store or f"{root}/models")
        original = train_classifier(
            dataset, arch="small-cnn", member_ids=splits.members, store=models, progress=False
        )
        unlearned = train_classifier(
            dataset, arch="small-cnn", member_ids=splits.retain, seed=7, store=models,
            role="unlearned", progress=False,
        )  # fmt: skip
        store = Store(args.audit_store or f"{root}/audit")
        common = {
            "original": original, "unlearned": unlearned, "dataset": dataset,
            "request": splits, "profile": args.profile, "store": store,
        }  # fmt: skip
        for name in ("cold", "warm"):
            # warm: a new unlearned model for each repeat, each a model the store never saw
            repeats = 1 if name == "cold" else args.repeats
            fresh = np.random.default_rng()  # (unseeded: see _unseen_copy)
            audited = [unlearned] if name == "cold" else [
                _unseen_copy(unlearned, fresh) for _ in range(repeats)
            ]  # fmt: skip
            plan = plan_audit(**{**common, "unlearned": audited[0]})
            if name == "cold":
                jobs = list(plan.training)
                minimum = sum(p.samples for p in plan.passes if p.kind == "outputs")
            else:  # only the unlearned model's passes are left
                minimum = plan.to_forward
                unlearned_reads, unlearned_cams = (
                    {p.view: p.ids for p in plan.passes if (p.role, p.kind) == ("unlearned", kind)}
                    for kind in ("outputs", "grad-cam")
                )
            seconds = []
            for model in audited:
                start = time.perf_counter()
                result = audit(**{**common, "unlearned": model})
                seconds.append(time.perf_counter() - start)
            runs[name] = {
                "seconds": round(min(seconds), 2),
                "forwarded": result.config["outputs"]["forwarded"],
                "from_store": result.config["outputs"]["from_store"],
                "minimum": minimum,
                "timings": {k: round(v, 3) for k, v in result.timings.items()},
                "models_built": result.config["models_built"],
            }
            print(f"{name} audit: {runs[name]['seconds']:.1f} s", flush=True)
        relearn_evidence = result.checks["relearn"].evidence
        recipe = Recipe.from_dict(result.config["recipe"])
        batch = result.config["batch_size"]
    halves = iter(shadow_member_ids(splits, dataset.labels, len(jobs), 0))
    member_sets = [splits.retain if job.role == "reference" else next(halves) for job in jobs]
    bare_train = 0.0 if args.no_bare_training else _bare_training(dataset, recipe, member_sets)
    bare_forward = min(
        _bare_forward(unlearned, dataset, unlearned_reads, batch) for _ in range(args.repeats)
    )
    bare_cams = min(_bare_cams(unlearned, dataset, unlearned_cams) for _ in range(args.repeats))
    bare_relearn = min(
        _bare_relearn(unlearned, dataset, splits, relearn_evidence) for _ in range(args.repeats)
    )
    runs["cold"]["bare_training_seconds"] = round(bare_train, 2)
    runs["warm"]["bare_forward_seconds"] = round(bare_forward, 3)
    runs["warm"]["bare_grad_cam_seconds"] = round(bare_cams, 3)
    runs["warm"]["bare_relearn_seconds"] = round(bare_relearn, 3)
    cold_ratio = runs["cold"]["timings"]["build"] / bare_train if bare_train else None
    warm_ratio = runs["warm"]["seconds"] / (bare_forward + bare_cams + bare_relearn)
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
        f"warm: audit {runs['warm']['seconds']:.2f} s vs a bare loop over the unlearned "
        f"model's minimum passes {bare_forward:.3f} s + its Grad-CAM passes {bare_cams:.3f} s "
        f"+ its relearn probes {bare_relearn:.2f} s: {warm_ratio:.2f}x"
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
