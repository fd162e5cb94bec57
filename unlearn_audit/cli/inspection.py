"""`splits`, `inspect`, `datasets`, `archs` and `store`: look at data, requests, checkpoints
and the store."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unlearn_audit.cli.options import (
    check_out_dir,
    complement,
    load_model_from_args,
    load_request,
    members_from_args,
    percent,
)
from unlearn_audit.errors import ConfigError


def cmd_splits(args: argparse.Namespace) -> int:
    from unlearn_audit._io import write_atomic

    if args.out_dir:
        check_out_dir(args.out_dir, "--out-dir")
    dataset, splits = load_request(args)
    print(f"{dataset.name} (fingerprint {dataset.fingerprint}): {splits.request.describe()}")
    for name in splits.names():
        ids = splits.get(name)
        print(f"  {name:18} {len(ids):6d} samples   fingerprint {splits.fingerprints[name]}")
    if args.out_dir:
        out = Path(args.out_dir)
        for name in splits.names():
            write_atomic(out / f"{name}.txt", _id_writer(splits.get(name)))
        print(f"wrote {len(splits.names())} id files to {out}")
    return 0


def _id_writer(ids: Any) -> Callable[[Path], None]:
    text = "".join(f"{int(i)}\n" for i in ids)

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return write


def cmd_inspect(args: argparse.Namespace) -> int:
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.models.layers import find_layers
    from unlearn_audit.train import accuracy, resolve_device

    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, args.data_root)
    model = load_model_from_args(args.checkpoint, dataset, args)
    info = model.info
    hookable = model.hookable
    layers = (
        None
        if hookable is None
        else find_layers(hookable, conv_layer=args.conv_layer, feature_layer=args.feature_layer)
    )
    norm = model.normalization
    print(f"{args.checkpoint}: {model.kind} checkpoint, fingerprint {model.fingerprint}")
    kwargs = f" {json.dumps(info.arch_kwargs)}" if info.arch_kwargs else ""
    print(f"  architecture   {info.arch or '(compiled or pickled module)'}{kwargs}")
    print(f"  classes        {info.num_classes}, input {info.input_shape}")
    print(f"  normalisation  {norm.to_dict() if norm else 'none'}")
    if info.dataset:
        same = "same data" if info.dataset_fingerprint == dataset.fingerprint else "DIFFERENT data"
        print(f"  trained on     {info.dataset} ({same} as --dataset), seed {info.seed}")
        print(f"  members        fingerprint {info.members_fingerprint}")
        print(f"  recipe         {json.dumps(info.recipe, sort_keys=True)}")
        history = info.extra.get("history")
        if isinstance(history, dict) and history.get("epochs"):
            last = history["epochs"][-1]
            print(
                f"  training       {len(history['epochs'])} epochs, {history['steps']} steps, "
                f"{history['seconds']:.1f} s, final loss {last['loss']:.4f}"
            )
    if layers is None:
        print(f"  layers         not readable: {model.readable_note}")
    else:
        if model.is_compiled:
            print(f"  layers         {model.readable_note} (checked on every batch)")
        print(f"  last conv      {layers.conv or '(none)'}")
        print(f"  features       {layers.features_from} of {layers.features}")
    model.module.to(device)
    if args.member_ids:
        members = members_from_args(args, dataset)
        parts = [("members", members), ("non-members", complement(len(dataset), members))]
    else:
        parts = [("training part", dataset.train_ids), ("held-out part", dataset.heldout_ids)]
    for name, ids in parts:
        score = percent(accuracy(model.module, dataset, ids))
        print(f"  accuracy       {score} on the {name} of {dataset.name}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from unlearn_audit.data.datasets import DATASETS

    rows = []
    for name, spec in DATASETS.items():
        if spec.default_root:
            found = "found" if Path(spec.default_root).is_dir() else "not found"
            where = f"{spec.default_root}: {found}"
        elif spec.needs_root:
            where = "--data-root"
        else:
            where = "embedded"
        rows.append({"name": name, "description": spec.description, "where": where})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:14} {row['description']} [{row['where']}]")
    return 0


def cmd_archs(args: argparse.Namespace) -> int:
    from unlearn_audit.models.zoo import ARCHS

    rows = {
        name: (factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else ""
        for name, factory in ARCHS.items()
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, summary in rows.items():
        print(f"{name:10} {summary}")
    print("or package.module:factory / path/to/file.py:factory for your own")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from unlearn_audit.store import Store

    store = Store(args.cache_dir)
    removed = []
    if args.older_than is not None or args.max_size is not None:
        if args.older_than is not None and args.older_than < 0:
            raise ConfigError("`--older-than` must be a number of days >= 0.")
        removed = store.prune(
            older_than=None if args.older_than is None else args.older_than * 86400.0,
            max_bytes=args.max_size,
        )
    kinds: dict[str, dict[str, int]] = {}
    for entry in store.entries():
        kind = kinds.setdefault(entry.kind, {"entries": 0, "bytes": 0})
        kind["entries"] += 1
        kind["bytes"] += entry.size
    total = sum(kind["bytes"] for kind in kinds.values())
    if args.json:
        print(
            json.dumps(
                {
                    "root": str(store.root),
                    "kinds": kinds,
                    "bytes": total,
                    "removed": {"entries": len(removed), "bytes": sum(e.size for e in removed)},
                }
            )
        )
        return 0
    if removed:
        print(f"removed {len(removed)} entries ({_bytes(sum(e.size for e in removed))})")
    print(f"store {store.root}: {_bytes(total)}")
    width = max((len(name) for name in kinds), default=0)
    for name, kind in sorted(kinds.items()):
        print(f"  {name:{width}} {kind['entries']:6d} entries  {_bytes(kind['bytes']):>10}")
    return 0


def _bytes(count: int) -> str:
    size, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
