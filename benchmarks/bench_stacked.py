"""Should same-architecture models (the shadow bank, references) be evaluated together?

Forwards K models of one architecture over the same samples three ways, in eval mode under
``torch.inference_mode()``: the audit's loop (one model after another, batches of 512), one
large batch per model, and all models at once through ``torch.func.stack_module_state`` +
``vmap`` (batches of 512). Prints the best of three runs of each, the ratios to the loop, and a
JSON line.

    python benchmarks/bench_stacked.py [--dataset fashion-mnist] [--models 4] [--arch small-cnn]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, stack_module_state

from unlearn_audit.data.datasets import load_dataset
from unlearn_audit.errors import UnlearnAuditError
from unlearn_audit.models.zoo import build_model


def _best(run: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root")
    parser.add_argument("--arch", default="small-cnn")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    try:
        dataset = load_dataset(args.dataset, args.data_root)
    except UnlearnAuditError as exc:
        raise SystemExit(f"error: {exc}") from None
    ids = dataset.heldout_ids  # the shadows' population lies here
    x, _ = dataset.load(ids)
    models = []
    for k in range(args.models):
        torch.manual_seed(k)
        models.append(build_model(args.arch, dataset.num_classes, dataset.input_shape).eval())
    size = args.batch_size

    def loop() -> None:
        with torch.inference_mode():
            for model in models:
                for i in range(0, len(x), size):
                    model(x[i : i + size])

    def large() -> None:
        with torch.inference_mode():
            for model in models:
                model(x)

    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    base = copy.deepcopy(models[0]).to("meta")

    def one(p: dict, b: dict, batch: torch.Tensor) -> torch.Tensor:  # type: ignore[type-arg]
        return functional_call(base, (p, b), (batch,))

    stacked_call = torch.vmap(one, in_dims=(0, 0, None))

    def stacked() -> None:
        with torch.inference_mode():
            for i in range(0, len(x), size):
                stacked_call(params, buffers, x[i : i + size])

    # the same logits, or the comparison means nothing
    with torch.inference_mode():
        expected = torch.stack([m(x[:size]) for m in models])
        assert torch.allclose(stacked_call(params, buffers, x[:size]), expected, atol=1e-5)
    times = {"loop": _best(loop), "large_batch": _best(large), "vmap": _best(stacked)}
    for name, seconds in times.items():
        print(f"{name:12} {seconds * 1000:8.1f} ms   {times['loop'] / seconds:5.2f}x the loop")
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "arch": args.arch,
                "models": args.models,
                "samples": len(ids),
                "threads": torch.get_num_threads(),
                "seconds": {k: round(v, 4) for k, v in times.items()},
                "speedup_over_loop": {k: round(times["loop"] / v, 3) for k, v in times.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
