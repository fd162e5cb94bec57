"""How much faster is slicing in-memory tensors than a per-sample DataLoader?

Runs one shuffled epoch of batches over the training part of a dataset both ways (no model),
then one training epoch of small-cnn, and prints the times, the ratio and a JSON line.

    python benchmarks/bench_batching.py [--dataset fashion-mnist] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from unlearn_audit.data.datasets import load_dataset
from unlearn_audit.errors import UnlearnAuditError
from unlearn_audit.train import Recipe, train_classifier


def _epoch_slicing(dataset, ids, batch_size: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    for x, y, _ in dataset.batches(ids, batch_size, shuffle=True, generator=gen):
        x.sum(), y.sum()
    return time.perf_counter() - start


def _epoch_dataloader(dataset, ids, batch_size: int) -> float:  # type: ignore[no-untyped-def]
    x_all, y_all = dataset.load(ids)
    loader = DataLoader(TensorDataset(x_all, y_all), batch_size=batch_size, shuffle=True)
    start = time.perf_counter()
    for x, y in loader:
        x.sum(), y.sum()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-root")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    try:
        dataset = load_dataset(args.dataset, args.data_root)
    except UnlearnAuditError as exc:
        print(f"falling back to digits: {exc}")
        dataset = load_dataset("digits")
    ids = dataset.train_ids
    slicing = min(_epoch_slicing(dataset, ids, args.batch_size) for _ in range(3))
    loader = min(_epoch_dataloader(dataset, ids, args.batch_size) for _ in range(3))
    start = time.perf_counter()
    train_classifier(dataset, arch="small-cnn", recipe=Recipe(epochs=1, batch_size=args.batch_size),
                     device="cpu", progress=False)  # fmt: skip
    train_epoch = time.perf_counter() - start
    result = {
        "dataset": dataset.name,
        "samples": len(ids),
        "batch_size": args.batch_size,
        "slicing_epoch_s": round(slicing, 4),
        "dataloader_epoch_s": round(loader, 4),
        "speedup": round(loader / slicing, 2),
        "small_cnn_train_epoch_s": round(train_epoch, 2),
        "threads": torch.get_num_threads(),
    }
    print(f"{dataset.name}: {len(ids)} samples, batches of {args.batch_size}")
    print(f"  slicing      {slicing:.3f} s/epoch")
    print(f"  DataLoader   {loader:.3f} s/epoch   ratio {result['speedup']}x")
    print(f"  small-cnn training epoch {train_epoch:.1f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
