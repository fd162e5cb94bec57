"""The ``unlearn-audit`` command line.

Every verb validates its options once, at this boundary. A user mistake prints one line and
exits 1 (2 for a malformed command line); only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from unlearn_audit import __version__
from unlearn_audit.errors import ConfigError, UnlearnAuditError

PROG = "unlearn-audit"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        default="digits",
        help="dataset name (see `unlearn-audit datasets`; default: digits)",
    )
    group.add_argument(
        "--data-root",
        metavar="PATH",
        help="where the dataset's files are (folder, or .npz file for npz)",
    )
    group.add_argument(
        "--member-ids",
        metavar="FILE",
        help="ids the model is trained on, one per line (default: the dataset's training part)",
    )


def _add_request_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    title = "forget request (give exactly one)" if required else "forget request (for --backdoor)"
    group = parser.add_argument_group(title)
    kinds = group.add_mutually_exclusive_group(required=required)
    kinds.add_argument(
        "--forget-class", metavar="C[,C]", help="forget whole classes, by index or name (3 or 3,5)"
    )
    kinds.add_argument(
        "--forget-random",
        metavar="AMOUNT",
        help="forget a random fraction (0.05) or count (50) of the members",
    )
    kinds.add_argument("--forget-ids", metavar="FILE", help="forget the ids in FILE, one per line")
    if required:  # `train` has its own --seed, which then also draws --forget-random
        group.add_argument(
            "--seed", type=int, default=0, help="seed of --forget-random (default: 0)"
        )
    group.add_argument(
        "--test-size",
        type=_count_or_fraction,
        metavar="N|F",
        help="non-members used as test (count or fraction; default: half)",
    )
    group.add_argument(
        "--population-size",
        type=_count_or_fraction,
        metavar="N|F",
        help="non-members used as population (default: the rest)",
    )


def _count_or_fraction(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runtime")
    group.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when present; default)"
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="store for trained models (default: $UNLEARN_AUDIT_CACHE or ~/.cache/unlearn-audit)",
    )
    group.add_argument(
        "--no-cache", action="store_true", help="train afresh and do not store the result"
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "training recipe", "defaults depend on the dataset and architecture"
    )
    group.add_argument("--optimizer", choices=("sgd", "adam", "adamw"))
    group.add_argument("--lr", type=float, metavar="X", help="peak learning rate")
    group.add_argument("--epochs", type=int, metavar="N")
    group.add_argument("--batch-size", type=int, metavar="N")
    group.add_argument("--momentum", type=float, metavar="X")
    group.add_argument("--weight-decay", type=float, metavar="X")
    group.add_argument("--schedule", choices=("constant", "cosine", "step"))
    group.add_argument("--milestones", metavar="E1,E2", help="epochs of the step schedule")
    group.add_argument("--gamma", type=float, metavar="X", help="decay factor of the step schedule")
    group.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random shifts (and flips where the dataset allows them)",
    )
    group.add_argument("--label-smoothing", type=float, metavar="X")
    group.add_argument(
        "--seed", type=int, default=0, help="training seed, also of --forget-random (default: 0)"
    )


def _json_dict(text: str | None, option: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(
            f"`{option}` must be a JSON object like '{{\"width\": 64}}'; got {text!r}."
        )
    return value


def _recipe(args: argparse.Namespace, dataset: str, arch: str) -> Any:
    from unlearn_audit.train import default_recipe

    milestones = None
    if args.milestones:
        try:
            milestones = tuple(int(m) for m in args.milestones.split(","))
        except ValueError:
            raise ConfigError(
                "`--milestones` must be comma-separated epochs like 10,20; "
                f"got {args.milestones!r}."
            ) from None
    return default_recipe(dataset, arch).with_options(
        optimizer=args.optimizer,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        milestones=milestones,
        gamma=args.gamma,
        augment=args.augment,
        label_smoothing=args.label_smoothing,
    )


def _store(args: argparse.Namespace) -> Any:
    from unlearn_audit.store import Store

    return None if args.no_cache else Store(args.cache_dir)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def cmd_train(args: argparse.Namespace) -> int:
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.train import accuracy, resolve_device, train_classifier

    device = resolve_device(args.device)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"`--out` must end in .safetensors; got {args.out!r}.")
    dataset = load_dataset(args.dataset, args.data_root)
    members = _members(args, dataset)
    recipe = _recipe(args, dataset.name, args.arch)
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
    start = time.perf_counter()
    model = train_classifier(
        dataset,
        arch=args.arch,
        arch_kwargs=_json_dict(args.arch_kwargs, "--arch-kwargs"),
        recipe=recipe,
        member_ids=members,
        seed=args.seed,
        device=device,
        store=_store(args),
        trigger=trigger,
        poison_ids=poison,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    trained_on = dataset.train_ids if members is None else members
    heldout = dataset.heldout_ids if members is None else _complement(len(dataset), members)
    save_checkpoint(model, out)
    print(
        f"trained {args.arch} on {dataset.name} ({len(trained_on)} members, seed {args.seed}) "
        f"in {seconds:.1f} s"
    )
    print(
        f"accuracy: members {_percent(accuracy(model.module, dataset, trained_on))}, "
        f"held-out {_percent(accuracy(model.module, dataset, heldout))}"
    )
    if trigger is not None and poison is not None:
        print(
            f"backdoor: {len(poison)} forget samples carry the trigger, target {trigger.target}; "
            f"attack success {_percent(_attack_success(model, dataset, trigger))} on held-out"
        )
    print(f"fingerprint {model.fingerprint}")
    print(f"wrote {out}")
    return 0


def _attack_success(model: Any, dataset: Any, trigger: Any) -> float:
    """Share of triggered held-out inputs of other classes that the model calls the target."""
    import numpy as np
    import torch

    ids = dataset.heldout_ids[dataset.labels[dataset.heldout_ids] != trigger.target]
    x, _ = dataset.load(ids)
    with torch.inference_mode():
        predicted = model.module(trigger.apply(x)).argmax(1).numpy()
    return float(np.mean(predicted == trigger.target))


def _members(args: argparse.Namespace, dataset: Any) -> Any:
    """The ids of ``--member-ids``, checked against the dataset, or ``None``."""
    from unlearn_audit.data.splits import check_member_ids, read_id_file

    if not args.member_ids:
        return None
    return check_member_ids(dataset, read_id_file(args.member_ids, what="member ids"))


def _complement(n: int, ids: Any) -> Any:
    import numpy as np

    return np.setdiff1d(np.arange(n), ids)


def load_request(args: argparse.Namespace, dataset: Any = None) -> tuple[Any, Any]:
    """Dataset and :class:`Splits` from the data and request options (validated here, once)."""
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.data.splits import ForgetRequest, make_splits

    dataset = dataset or load_dataset(args.dataset, args.data_root)
    if args.forget_class is not None:
        request = ForgetRequest.classes(args.forget_class)
    elif args.forget_random is not None:
        request = ForgetRequest.random(args.forget_random, seed=args.seed)
    else:
        request = ForgetRequest.from_id_file(args.forget_ids)
    members = _members(args, dataset)
    splits = make_splits(
        dataset,
        request,
        member_ids=members,
        test_size=args.test_size,
        population_size=args.population_size,
    )
    return dataset, splits


def cmd_splits(args: argparse.Namespace) -> int:
    from unlearn_audit._io import write_atomic

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


def _add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("foreign checkpoints")
    group.add_argument("--arch", help="architecture of a state_dict: zoo name or module:factory")
    group.add_argument("--arch-kwargs", metavar="JSON", help="extra factory arguments")
    group.add_argument(
        "--normalize",
        metavar="none|MEAN,STD",
        help="input normalisation the model expects (default: the dataset's usual "
        "one; our checkpoints record theirs)",
    )
    group.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow pickled modules (loading them runs code from the file)",
    )
    group.add_argument(
        "--conv-layer", metavar="NAME", help="convolution for Grad-CAM (default: the last Conv2d)"
    )
    group.add_argument(
        "--feature-layer",
        metavar="NAME",
        help="module whose output is the features (default: input of the last Linear)",
    )


def load_model_from_args(path: str, dataset: Any, args: argparse.Namespace) -> Any:
    """A checkpoint loaded with the foreign-checkpoint options, checked against ``dataset``."""
    from unlearn_audit.models.checkpoints import load_checkpoint

    return load_checkpoint(
        path,
        dataset=dataset,
        arch=args.arch,
        arch_kwargs=_json_dict(args.arch_kwargs, "--arch-kwargs"),
        normalize=args.normalize,
        trust_checkpoint=args.trust_checkpoint,
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.models.layers import find_layers
    from unlearn_audit.train import accuracy, resolve_device

    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, args.data_root)
    model = load_model_from_args(args.checkpoint, dataset, args)
    info = model.info
    layers = find_layers(model.module, conv_layer=args.conv_layer, feature_layer=args.feature_layer)
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
    print(f"  last conv      {layers.conv or '(none)'}")
    print(f"  features       {layers.features_from} of {layers.features}")
    model.module.to(device)
    if args.member_ids:
        members = _members(args, dataset)
        parts = [("members", members), ("non-members", _complement(len(dataset), members))]
    else:
        parts = [("training part", dataset.train_ids), ("held-out part", dataset.heldout_ids)]
    for name, ids in parts:
        score = _percent(accuracy(model.module, dataset, ids))
        print(f"  accuracy       {score} on the {name} of {dataset.name}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from unlearn_audit.audit import audit
    from unlearn_audit.checks import CHECKS

    dataset, splits = load_request(args)
    checks = None
    if args.checks:
        checks = [name.strip() for name in args.checks.split(",") if name.strip()]
        for name in checks:
            CHECKS.get(name)
    original = load_model_from_args(args.original, dataset, args)
    unlearned = load_model_from_args(args.unlearned, dataset, args)
    references = [load_model_from_args(path, dataset, args) for path in args.reference or []]
    result = audit(
        original=original,
        unlearned=unlearned,
        dataset=dataset,
        request=splits,
        references=references,
        profile=args.profile,
        trigger=args.trigger,
        checks=checks,
        policy=args.policy,
        store=_store(args),
        seed=args.seed,
        num_references=args.references,
        num_shadows=args.shadows,
        conv_layer=args.conv_layer,
        feature_layer=args.feature_layer,
        device=args.device,
        progress=not args.quiet,
    )
    out = result.save(Path(args.out) / "result.json")
    print(format_summary(result))
    print(f"wrote {out}")
    return 0 if result.passed else 2


def format_summary(result: Any) -> str:
    """The terminal summary: one verdict line per claim, then the state of every check."""
    models = result.models
    lines = [
        f"audit: {result.request['description']} on {result.dataset['name']} "
        f"(unlearned {models['unlearned']['fingerprint']}, original "
        f"{models['original']['fingerprint']}, profile {result.config['profile']})",
        f"  {'claim':20} {'verdict':7} {'measured':>9} {'reference':>9}  evidence",
    ]
    for verdict in result.verdicts:
        measured = "" if verdict.measured is None else f"{verdict.measured:.3f}"
        reference = "" if verdict.reference is None else f"{verdict.reference:.3f}"
        lines.append(
            f"  {verdict.claim:20} {verdict.status:7} {measured:>9} {reference:>9}  "
            f"{verdict.evidence}"
        )
    states = []
    for name, check in result.checks.items():
        state = f"{name} ok" if check.status == "ok" else f"{name} N/A ({check.reason})"
        states.append(f"{state} {check.seconds:.1f} s")
    lines.append("  checks: " + "; ".join(states))
    return "\n".join(lines)


def cmd_datasets(args: argparse.Namespace) -> int:
    from unlearn_audit.data.datasets import DATASETS

    for name, spec in DATASETS.items():
        if spec.default_root:
            found = "found" if Path(spec.default_root).is_dir() else "not found"
            where = f"[{spec.default_root}: {found}]"
        elif spec.needs_root:
            where = "[--data-root]"
        else:
            where = "[embedded]"
        print(f"{name:14} {spec.description} {where}")
    return 0


def cmd_archs(args: argparse.Namespace) -> int:
    from unlearn_audit.models.zoo import ARCHS

    for name, factory in ARCHS.items():
        summary = (factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else ""
        print(f"{name:10} {summary}")
    print("or package.module:factory / path/to/file.py:factory for your own")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.data.splits import ForgetRequest, make_splits
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.train import accuracy, resolve_device, train_classifier

    device = resolve_device(args.device)
    dataset = load_dataset("digits")
    splits = make_splits(dataset, ForgetRequest.classes(args.forget_class))
    start = time.perf_counter()
    model = train_classifier(
        dataset,
        arch="small-cnn",
        device=device,
        store=_store(args),
        progress=not args.quiet,
    )
    out = save_checkpoint(model, Path(args.out_dir) / "original.safetensors")
    print(
        f"demo: small-cnn on digits, original trained or loaded in "
        f"{time.perf_counter() - start:.1f} s (fingerprint {model.fingerprint})"
    )
    print(f"request: {splits.request.describe()}")
    for name in splits.names():
        ids = splits.get(name)
        print(
            f"  {name:18} {len(ids):5d} samples   accuracy "
            f"{_percent(accuracy(model.module, dataset, ids))}"
        )
    print(f"wrote {out}")
    return 0


_EXAMPLES = """examples:
  unlearn-audit demo
  unlearn-audit train --dataset digits --arch small-cnn --out original.safetensors
  unlearn-audit splits --dataset digits --forget-class 3 --out-dir ids/
  unlearn-audit inspect model.pt --dataset digits --arch small-cnn
  unlearn-audit VERB --help   (options of one verb)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Audit machine unlearning: gather evidence that a PyTorch image classifier really "
            "forgot the requested data, and what forgetting cost."
        ),
    )
    parser.add_argument("--version", action="version", version=_version_text())
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    train = verbs.add_parser(
        "train",
        help="train a model and save it as a checkpoint",
        description="Train a zoo or imported architecture on a dataset and "
        "save it in unlearn-audit's .safetensors format.",
    )
    _add_data_options(train)
    model = train.add_argument_group("model")
    model.add_argument(
        "--arch",
        default="small-cnn",
        help="zoo name (see `unlearn-audit archs`) or package.module:factory",
    )
    model.add_argument("--arch-kwargs", metavar="JSON", help="extra factory arguments")
    model.add_argument(
        "--out", required=True, metavar="FILE.safetensors", help="where to write the checkpoint"
    )
    _add_recipe_options(train)
    backdoor = train.add_argument_group("backdoor (BadNets)")
    backdoor.add_argument(
        "--backdoor",
        metavar="TRIGGER.json",
        help='plant a trigger on the forget set, e.g. {"kind": "patch", "size": 2, "row": 0, '
        '"col": 0, "value": 1.0, "target": 0}',
    )
    _add_request_options(train, required=False)
    _add_runtime_options(train)
    train.set_defaults(run=cmd_train)

    splits = verbs.add_parser(
        "splits",
        help="show (and save) the splits of a forget request",
        description="Turn a forget request into forget, retain, test and "
        "population ids, print their sizes and fingerprints, "
        "and optionally write one id file per split.",
    )
    _add_data_options(splits)
    _add_request_options(splits)
    splits.add_argument("--out-dir", metavar="DIR", help="write DIR/<split>.txt id files")
    splits.set_defaults(run=cmd_splits)

    inspect = verbs.add_parser(
        "inspect",
        help="load a checkpoint and show what it holds",
        description="Load any supported checkpoint against a dataset: "
        "show its fingerprint, recorded training, the layers "
        "the checks will read, and its accuracy.",
    )
    inspect.add_argument("checkpoint", help=".safetensors, .pt/.pth state_dict, or TorchScript")
    _add_data_options(inspect)
    _add_checkpoint_options(inspect)
    inspect.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    inspect.set_defaults(run=cmd_inspect)

    audit = verbs.add_parser(
        "audit",
        help="audit an unlearned model against its original",
        description="Gather the evidence of every check, judge it against "
        "the policy and write result.json. Exit 0 when no claim "
        "fails, 2 when one does, 1 on error.",
    )
    models = audit.add_argument_group("models")
    models.add_argument(
        "--original", required=True, metavar="CKPT", help="the model before unlearning"
    )
    models.add_argument("--unlearned", required=True, metavar="CKPT", help="the model under audit")
    models.add_argument(
        "--reference",
        nargs="+",
        metavar="CKPT",
        help="models retrained without the forget set (default: train them)",
    )
    _add_data_options(audit)
    _add_request_options(audit)
    options = audit.add_argument_group("audit")
    options.add_argument(
        "--profile",
        default="standard",
        choices=("quick", "standard", "full"),
        help="quick trains nothing; standard (default) adds membership and "
        "relearn; full has more shadows and references",
    )
    options.add_argument("--checks", metavar="A,B", help="only these checks (default: all)")
    options.add_argument(
        "--references", type=int, metavar="N", help="reference seeds to train when none are given"
    )
    options.add_argument("--shadows", type=int, metavar="K", help="shadow models (default 4)")
    options.add_argument(
        "--trigger",
        metavar="TRIGGER.json",
        help="backdoor trigger of a foreign original (ours record theirs)",
    )
    options.add_argument("--policy", metavar="POLICY.toml", help="thresholds (default: built in)")
    options.add_argument(
        "--out",
        default="reports/audit",
        metavar="DIR",
        help="where result.json goes (default: reports/audit)",
    )
    _add_checkpoint_options(audit)
    _add_runtime_options(audit)
    audit.set_defaults(run=cmd_audit)

    datasets = verbs.add_parser("datasets", help="list the registered datasets")
    datasets.set_defaults(run=cmd_datasets)
    archs = verbs.add_parser("archs", help="list the registered architectures")
    archs.set_defaults(run=cmd_archs)

    demo = verbs.add_parser("demo", help="run the demo on the embedded digits dataset")
    demo.add_argument("--forget-class", default="3", help="class the demo forgets (default: 3)")
    demo.add_argument("--out-dir", default="reports/demo", help="default: reports/demo")
    _add_runtime_options(demo)
    demo.set_defaults(run=cmd_demo)
    return parser


def _version_text() -> str:
    return f"{PROG} {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except UnlearnAuditError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (stops a second error at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
