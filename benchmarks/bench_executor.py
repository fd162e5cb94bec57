"""The build stage on the local executor against Ray: a full-profile digits audit (3 references,
8 shadow models) of a retrained model, each with a fresh store.

- local: this process, torch with one thread per core (the default);
- ray: a local Ray cluster of ``--workers`` CPUs, one job per CPU (``--cpus-per-job 1``), or
  ``--gpus-per-job F`` jobs per GPU when CUDA is present (``--device cuda``).

Prints the wall time of each audit, its build stage, the Ray cluster's start-up (counted in the
Ray audit's wall time, as a user pays it), the ratio local / ray, and a JSON line.

    python benchmarks/bench_executor.py [--workers 2] [--gpus-per-job 0.25 --device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from unlearn_audit import ForgetRequest, load_dataset, make_splits, train_classifier
from unlearn_audit.executors import RayExecutor, import_ray
from unlearn_audit.pipeline import audit
from unlearn_audit.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--gpus-per-job", type=float, default=0.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = load_dataset("digits")
    splits = make_splits(dataset, ForgetRequest.classes(3))
    with tempfile.TemporaryDirectory() as folder:
        models = Store(os.path.join(folder, "models"))
        original = train_classifier(dataset, store=models, progress=False)
        retrained = train_classifier(
            dataset, member_ids=splits.retain, seed=100, store=models, progress=False
        )
        common = dict(
            original=original,
            unlearned=retrained,
            dataset=dataset,
            request=splits,
            profile="full",
            seed=args.seed,
            device=args.device,
        )
        figures: dict[str, dict[str, float]] = {}
        start = time.perf_counter()
        local = audit(**common, store=Store(os.path.join(folder, "local")))
        figures["local"] = {
            "wall": time.perf_counter() - start,
            "build": local.timings["build"],
            "trained": local.config["models_built"]["trained"],
        }
        ray = import_ray()
        start = time.perf_counter()
        ray.init(
            num_cpus=args.workers,
            num_gpus=1 if args.gpus_per_job else 0,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        started = time.perf_counter() - start
        executor = RayExecutor(gpus_per_job=args.gpus_per_job)
        on_ray = audit(**common, store=Store(os.path.join(folder, "ray")), executor=executor)
        figures["ray"] = {
            "wall": time.perf_counter() - start,
            "build": on_ray.timings["build"],
            "cluster_start": started,
            "trained": on_ray.config["models_built"]["trained"],
        }
        ray.shutdown()
    same = [v.status for v in local.verdicts] == [v.status for v in on_ray.verdicts]
    for name, figure in figures.items():
        start_up = figure.get("cluster_start")
        extra = f", cluster start {start_up:.1f} s" if start_up is not None else ""
        print(
            f"{name:5s}: audit {figure['wall']:.1f} s, build {figure['build']:.1f} s "
            f"({figure['trained']:.0f} models trained){extra}"
        )
    ratio = figures["local"]["wall"] / figures["ray"]["wall"]
    build_ratio = figures["local"]["build"] / figures["ray"]["build"]
    print(
        f"local / ray: {ratio:.2f}x the audit, {build_ratio:.2f}x the build "
        f"({args.workers} Ray CPUs, {args.gpus_per_job or 0} GPUs per job); "
        f"same verdicts: {same}"
    )
    print(
        json.dumps(
            {
                "workers": args.workers,
                "gpus_per_job": args.gpus_per_job,
                "device": args.device,
                "local": figures["local"],
                "ray": figures["ray"],
                "ratio": ratio,
                "build_ratio": build_ratio,
                "same_verdicts": same,
            }
        )
    )


if __name__ == "__main__":
    main()
