"""`unlearn-audit train`: train a model and save it in our checkpoint format."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from unlearn_audit.cli.options import (
    check_out_file,
    complement,
    load_request,
    members_from_args,
    percent,
    recipe_from_args,
    store_from_args,
    train_arch,
    update_recorder,
)
from unlearn_audit.errors import ConfigError


def cmd_train(args: argparse.Namespace) -> int:
    from unlearn_audit.classifier import attack_success
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.train import accuracy, resolve_device, train_classifier

    device = resolve_device(args.device)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"`--out` must end in .safetensors; got {args.out!r}.")
    check_out_file(out, "--out")
    dataset = load_dataset(args.dataset, args.data_root)
    members = members_from_args(args, dataset)
    recipe = recipe_from_args(args, dataset.name, args.arch)
    trigger = poison = None
    has_request = any(
        getattr(args, name) is not None for name in ("forget_class", "forget_random", "forget_ids")
    )
    if args.backdoor:
        from unlearn_audit.data.triggers import load_trigger

        trigger = load_trigger(args.backdoor).check_fits(dataset.input_shape, dataset.num_classes)
        if not has_request:
            raise ConfigError(
                "`--backdoor` needs the samples that carry it: add --forget-class, "
                "--forget-random or --forget-ids."
            )
        poison = load_request(args, dataset)[1].forget
    elif has_request:
        raise ConfigError(
            "a forget request at training time only chooses where `--backdoor` is planted; "
            "add --backdoor TRIGGER.json, or give the request to the audit instead."
        )
    arch, arch_kwargs = train_arch(args)
    recorder = update_recorder(args, dataset)
    start = time.perf_counter()
    store = store_from_args(args)
    model = train_classifier(
        dataset,
        arch=arch,
        arch_kwargs=arch_kwargs,
        recipe=recipe,
        member_ids=members,
        seed=args.seed,
        device=device,
        store=store,
        trigger=trigger,
        poison_ids=poison,
        update_log=recorder,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    trained_on = dataset.train_ids if members is None else members
    heldout = dataset.heldout_ids if members is None else complement(len(dataset), members)
    if recorder is not None and recorder.log is not None:
        from unlearn_audit.update_log import save_update_log, update_log_path

        # the log first: a checkpoint that promises a log never exists without it
        log_path = save_update_log(recorder.log, update_log_path(out))
    save_checkpoint(model, out)
    what = args.arch
    if arch == "erm":
        what = f"{args.arch} with the ERM mask layer"
    elif arch != args.arch:
        what = (
            f"sisa ({arch_kwargs['shards']} shards x {arch_kwargs['slices']} "
            f"slice{'s' if arch_kwargs['slices'] != 1 else ''} of {args.arch})"
        )
    stored = store.hits > 0  # the same training had run before: its model came from the store
    print(
        f"{'loaded' if stored else 'trained'} {what} on {dataset.name} ({len(trained_on)} "
        f"members, seed {args.seed}) "
        + (
            "from the store (trained earlier with the same data, recipe and seed)"
            if stored
            else f"in {seconds:.1f} s"
        )
    )
    if arch == "erm":
        print(_erm_summary(model))
    if recorder is not None and recorder.log is not None:
        size = recorder.log.deltas.numel() * 4 / 1e6
        print(f"update log: {len(recorder.log.steps)} steps kept ({size:.1f} MB) in {log_path}")
    print(
        f"accuracy: members {percent(accuracy(model.module, dataset, trained_on))}, "
        f"held-out {percent(accuracy(model.module, dataset, heldout))}"
    )
    if trigger is not None and poison is not None:
        print(
            f"backdoor: {len(poison)} forget samples carry the trigger, target {trigger.target}; "
            f"attack success {percent(attack_success(model, dataset, trigger))} on held-out"
        )
    print(f"fingerprint {model.fingerprint}")
    print(f"wrote {out}")
    return 0


def _erm_summary(model: Any) -> str:
    """One line on the mask G of an ERM model (seed 000), with warnings where erm-ktp would
    struggle."""
    from unlearn_audit.erm import mask_summary

    g = mask_summary(model)
    line = (
        f"ERM mask G ({g['classes']} classes x {g['channels']} channels): CSI {g['csi']:.2f} "
        f"(mean over pairs {g['csi_mean']:.3f}), L1-density {g['l1_density']:.3f}"
    )
    if g["l1_density"] > 0.5:
        line += (
            "\nwarning: G is still dense, so erm-ktp would switch off most channels; raise "
            "--erm-lambda or train longer."
        )
    if g["empty_classes"]:
        empty = ", ".join(str(c) for c in g["empty_classes"])
        line += (
            f"\nwarning: class(es) {empty} hold no channel of G, so erm-ktp can only "
            "mask their outputs; lower --erm-lambda or use a wider network."
        )
    return line
