"""What each ``unlearn-audit`` verb does, once its options are parsed (see :mod:`cli`).

Heavy imports (torch and the rest) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from unlearn_audit.errors import ConfigError


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


def _recipe(args: argparse.Namespace, dataset: str, arch: str, base: Any = None) -> Any:
    """The recipe options applied to ``base`` (default: the toolkit's default recipe)."""
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
    base = base if base is not None else default_recipe(dataset, arch)
    return base.with_options(
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


def _check_out_dir(path: str | Path, flag: str) -> Path:
    """``path`` as a Path, once it is known that files can be written into it (it is created
    later if missing); checked before any work, so a bad ``--out`` costs no training."""
    from unlearn_audit._io import out_dir_problem

    problem = out_dir_problem(path)
    if problem is not None:
        raise ConfigError(
            f"`{flag}` must be a folder you can write into; got {str(path)!r}, but {problem}; "
            "choose another folder (missing ones are created)."
        )
    return Path(path)


def _check_out_file(path: str | Path, flag: str) -> Path:
    """``path`` as a Path, once it is known that it can be written (its folders are created
    later if missing)."""
    from unlearn_audit._io import out_dir_problem

    out = Path(path)
    problem = f"{str(out)!r} is a folder" if out.is_dir() else out_dir_problem(out.parent)
    if problem is not None:
        raise ConfigError(
            f"`{flag}` must be a file path you can write; got {str(path)!r}, but {problem}; "
            "choose another path (missing folders are created)."
        )
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.train import accuracy, resolve_device, train_classifier

    device = resolve_device(args.device)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"`--out` must end in .safetensors; got {args.out!r}.")
    _check_out_file(out, "--out")
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
    arch, arch_kwargs = _train_arch(args)
    recorder = _update_recorder(args, dataset)
    start = time.perf_counter()
    model = train_classifier(
        dataset,
        arch=arch,
        arch_kwargs=arch_kwargs,
        recipe=recipe,
        member_ids=members,
        seed=args.seed,
        device=device,
        store=_store(args),
        trigger=trigger,
        poison_ids=poison,
        update_log=recorder,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    trained_on = dataset.train_ids if members is None else members
    heldout = dataset.heldout_ids if members is None else _complement(len(dataset), members)
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
    print(
        f"trained {what} on {dataset.name} ({len(trained_on)} members, seed {args.seed}) "
        f"in {seconds:.1f} s"
    )
    if arch == "erm":
        print(_erm_summary(model))
    if recorder is not None and recorder.log is not None:
        size = recorder.log.deltas.numel() * 4 / 1e6
        print(f"update log: {len(recorder.log.steps)} steps kept ({size:.1f} MB) in {log_path}")
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


def _erm_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ERM training settings of --erm (``None`` without it)."""
    if not args.erm:
        for flag, value in (("--erm-lambda", args.erm_lambda), ("--erm-period", args.erm_period)):
            if value is not None:
                raise ConfigError(f"`{flag}` needs --erm (train with the ERM mask layer).")
        return None
    if args.sisa_shards is not None:
        raise ConfigError(
            "--erm trains one network with the mask layer, but a SISA ensemble unlearns by "
            "retraining shards; drop one of --erm and --sisa-shards."
        )
    if args.log_updates:
        raise ConfigError(
            "--log-updates records plain training steps, but an ERM model is trained by "
            "alternating paths and unlearns with erm-ktp; drop one of --log-updates and --erm."
        )
    if args.arch in ("erm", "sisa"):
        raise ConfigError(
            "`--arch` names the CNN the mask layer follows with --erm, e.g. small-cnn."
        )
    if args.erm_lambda is not None and not args.erm_lambda >= 0:
        raise ConfigError(f"`--erm-lambda` must be a number >= 0; got {args.erm_lambda!r}.")
    if args.erm_period is not None and args.erm_period < 2:
        raise ConfigError(f"`--erm-period` must be an integer >= 2; got {args.erm_period!r}.")
    settings = {"lambda_reg": args.erm_lambda, "period": args.erm_period}
    return {k: v for k, v in settings.items() if v is not None}


def _train_arch(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``--arch`` and its arguments, wrapped in a SISA ensemble with --sisa-shards, or in an
    ERM network with --erm."""
    kwargs = _json_dict(args.arch_kwargs, "--arch-kwargs")
    erm = _erm_kwargs(args)
    if erm is not None:
        return "erm", {"base": args.arch, "base_kwargs": kwargs, **erm}
    if args.sisa_shards is None:
        if args.sisa_slices is not None:
            raise ConfigError("`--sisa-slices` needs --sisa-shards S (the number of shards).")
        return args.arch, kwargs
    for flag, value in (("--sisa-shards", args.sisa_shards), ("--sisa-slices", args.sisa_slices)):
        if value is not None and value < 1:
            raise ConfigError(f"`{flag}` must be an integer >= 1; got {value!r}.")
    if args.arch == "sisa":
        raise ConfigError("`--arch` names the shard network with --sisa-shards, e.g. small-cnn.")
    return "sisa", {
        "base": args.arch,
        "base_kwargs": kwargs,
        "shards": args.sisa_shards,
        "slices": args.sisa_slices or 1,
    }


def _update_recorder(args: argparse.Namespace, dataset: Any) -> Any:
    """An :class:`UpdateRecorder` for --log-updates (with --log-candidates), or ``None``."""
    from unlearn_audit.data.splits import check_member_ids, read_id_file
    from unlearn_audit.update_log import UpdateRecorder

    if not args.log_updates:
        if args.log_candidates:
            raise ConfigError("`--log-candidates` needs --log-updates.")
        return None
    candidates = None
    if args.log_candidates:
        candidates = check_member_ids(
            dataset, read_id_file(args.log_candidates, what="candidate ids")
        )
    return UpdateRecorder(candidates)


def _erm_summary(model: Any) -> str:
    """One line on the mask G of an ERM model: its shape, CSI and L1-density (seed 000)."""
    from unlearn_audit.checks.representation import erm_mask
    from unlearn_audit.functional.representation import csi, l1_density

    g = erm_mask(model)
    assert g is not None
    total, mean = csi(g) if g.shape[0] > 1 else (0.0, 0.0)
    density = l1_density(g)
    line = (
        f"ERM mask G ({g.shape[0]} classes x {g.shape[1]} channels): CSI {total:.2f} "
        f"(mean over pairs {mean:.3f}), L1-density {density:.3f}"
    )
    empty = [str(c) for c in range(g.shape[0]) if not g[c].any()]
    if density > 0.5:
        line += (
            "\nwarning: G is still dense, so erm-ktp would switch off most channels; raise "
            "--erm-lambda or train longer."
        )
    if empty:
        line += (
            f"\nwarning: class(es) {', '.join(empty)} hold no channel of G, so erm-ktp can only "
            "mask their outputs; lower --erm-lambda or use a wider network."
        )
    return line


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

    if args.out_dir:
        _check_out_dir(args.out_dir, "--out-dir")
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


def load_model_from_args(
    path: str, dataset: Any, args: argparse.Namespace, role: str | None = None
) -> Any:
    """A checkpoint loaded with the foreign-checkpoint options, checked against ``dataset``.

    ``role`` (``unlearned``, ``reference``) picks that role's ``--ROLE-arch``,
    ``--ROLE-arch-kwargs`` and ``--ROLE-normalize`` over the shared ones where given.
    """
    from unlearn_audit.models.checkpoints import load_checkpoint

    arch, kwargs, normalize = _role_arch(args, role)
    return load_checkpoint(
        path,
        dataset=dataset,
        arch=arch,
        arch_kwargs=kwargs,
        normalize=normalize,
        trust_checkpoint=args.trust_checkpoint,
    )


def _role_arch(
    args: argparse.Namespace, role: str | None
) -> tuple[str | None, dict[str, Any], str | None]:
    """``--arch``, ``--arch-kwargs`` and ``--normalize``, overridden by the role's own."""
    arch, kwargs_text, kwargs_flag = args.arch, args.arch_kwargs, "--arch-kwargs"
    normalize = args.normalize
    if role is not None:
        own = getattr(args, f"{role}_arch", None)
        if own is not None:
            # a role's own architecture does not inherit the shared arguments
            arch, kwargs_text = own, None
        if getattr(args, f"{role}_arch_kwargs", None) is not None:
            kwargs_text, kwargs_flag = getattr(args, f"{role}_arch_kwargs"), f"--{role}-arch-kwargs"
        if getattr(args, f"{role}_normalize", None) is not None:
            normalize = getattr(args, f"{role}_normalize")
    return arch, _json_dict(kwargs_text, kwargs_flag), normalize


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
        members = _members(args, dataset)
        parts = [("members", members), ("non-members", _complement(len(dataset), members))]
    else:
        parts = [("training part", dataset.train_ids), ("held-out part", dataset.heldout_ids)]
    for name, ids in parts:
        score = _percent(accuracy(model.module, dataset, ids))
        print(f"  accuracy       {score} on the {name} of {dataset.name}")
    return 0


_RECIPE_FLAGS = (
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "momentum",
    "weight_decay",
    "schedule",
    "milestones",
    "gamma",
    "augment",
    "label_smoothing",
)


def _audit_recipe(args: argparse.Namespace, dataset: Any, original: Any) -> Any:
    """The recipe given by --recipe and the recipe options, or ``None`` when none is given.

    Single options change the file's fields; without a file they change the recipe the
    original records (or the default one).
    """
    from unlearn_audit.train import Recipe, load_recipe

    flags = any(getattr(args, name) is not None for name in _RECIPE_FLAGS)
    if args.recipe is None and not flags:
        if args.override_recipe:
            raise ConfigError("`--override-recipe` needs a recipe: add --recipe FILE or --lr etc.")
        return None
    base = load_recipe(args.recipe) if args.recipe else None
    if base is None and original.info.recipe:
        base = Recipe.from_dict(original.info.recipe)
    return _recipe(args, dataset.name, original.info.arch or args.arch or "", base)


def _given_shadows(args: argparse.Namespace, dataset: Any) -> list[tuple[Any, Any]] | None:
    from unlearn_audit.data.splits import read_id_file

    if not args.shadow and not args.shadow_members:
        return None
    checkpoints, members = args.shadow or [], args.shadow_members or []
    if len(checkpoints) != len(members):
        raise ConfigError(
            f"`--shadow` gives {len(checkpoints)} checkpoint(s) but `--shadow-members` "
            f"{len(members)} id file(s); give one id file per shadow model, in the same order."
        )
    return [
        (
            load_model_from_args(path, dataset, args),
            read_id_file(ids, what=f"member ids of shadow {path}"),
        )
        for path, ids in zip(checkpoints, members, strict=True)
    ]


EXIT_FAILED = 3
EXIT_INCONCLUSIVE = 4


def audit_exit_code(outcome: str, fail_on: str = "fail") -> int:
    """The exit code of an audit with ``outcome`` under ``--fail-on``."""
    if outcome == "FAIL":
        return EXIT_FAILED
    if outcome == "INCONCLUSIVE":
        return EXIT_FAILED if fail_on in ("inconclusive", "warn") else EXIT_INCONCLUSIVE
    if outcome == "WARN" and fail_on == "warn":
        return EXIT_FAILED
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from unlearn_audit.checks import CHECKS
    from unlearn_audit.pipeline import audit

    _check_out_dir(args.out, "--out")
    dataset, splits = load_request(args)
    checks = None
    if args.checks:
        checks = [name.strip() for name in args.checks.split(",") if name.strip()]
        for name in checks:
            CHECKS.get(name)
    original = load_model_from_args(args.original, dataset, args)
    unlearned = load_model_from_args(args.unlearned, dataset, args, "unlearned")
    references = [
        load_model_from_args(path, dataset, args, "reference") for path in args.reference or []
    ]
    shadows = _given_shadows(args, dataset)
    recipe = _audit_recipe(args, dataset, original)
    result = audit(
        original=original,
        unlearned=unlearned,
        dataset=dataset,
        request=splits,
        references=references,
        shadows=shadows,
        profile=args.profile,
        trigger=args.trigger,
        checks=checks,
        policy=args.policy,
        store=_store(args),
        seed=args.seed,
        num_references=args.references,
        num_shadows=args.shadows,
        recipe=recipe,
        override_recipe=args.override_recipe,
        arch=args.arch,
        arch_kwargs=_json_dict(args.arch_kwargs, "--arch-kwargs"),
        conv_layer=args.conv_layer,
        feature_layer=args.feature_layer,
        device=args.device,
        progress=not args.quiet,
        command_line=getattr(args, "command_line", None),
    )
    out = result.save(Path(args.out) / "result.json")
    files = _write_report(result, Path(args.out), pdf=not args.no_pdf, quiet=args.json)
    code = audit_exit_code(result.outcome, args.fail_on)
    if args.json:
        print(
            json.dumps(
                {
                    "outcome": result.outcome,
                    "passed": result.passed,
                    "exit_code": code,
                    "headline": result.headline(),
                    "verdicts": [vars(v) for v in result.verdicts],
                    "checks": {
                        n: {"status": c.status, "reason": c.reason, "cause": c.cause}
                        for n, c in result.checks.items()
                    },
                    "notes": result.notes,
                    "files": {
                        "result": str(out),
                        "html": str(files.html),
                        "pdf": str(files.pdf) if files.pdf else None,
                    },
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(format_summary(result))
        print(f"wrote {out}")
        print(f"wrote {files.html}")
        if files.pdf is not None:
            print(f"wrote {files.pdf}")
    return code


def _write_report(result: Any, out_dir: Path, *, pdf: bool, quiet: bool = False) -> Any:
    import sys

    from unlearn_audit.report import write_report

    files = write_report(result, out_dir, pdf=pdf)
    if files.pdf_error:
        print(f"unlearn-audit: warning: {files.pdf_error}", file=sys.stderr)
    return files


def cmd_report(args: argparse.Namespace) -> int:
    from unlearn_audit.results import AuditResult

    out = _check_out_dir(args.out, "--out") if args.out else Path(args.result).parent
    result = AuditResult.load(args.result)
    files = _write_report(result, out, pdf=not args.no_pdf)
    print(f"wrote {files.html}")
    if files.pdf is not None:
        print(f"wrote {files.pdf}")
    return 0


def cmd_checks(args: argparse.Namespace) -> int:
    from unlearn_audit.checks import CHECKS

    if args.json:
        print(json.dumps({name: check.description for name, check in CHECKS.items()}, indent=2))
        return 0
    for name, check in CHECKS.items():
        print(f"{name:15} {check.description}")
    return 0


def format_summary(result: Any) -> str:
    """The terminal summary: what must be read first (identical models, an inconclusive
    audit), the outcome, one verdict line per claim, the notes, the state of every check."""
    models = result.models
    lines = [*result.headline()]
    lines += [
        f"outcome: {result.outcome}",
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
    for note in result.notes:
        lines.append(f"  note: {note}")
    states = []
    for name, check in result.checks.items():
        state = f"{name} ok" if check.status == "ok" else f"{name} N/A ({check.reason})"
        states.append(f"{state} {check.seconds:.1f} s")
    lines.append("  checks: " + "; ".join(states))
    return "\n".join(lines)


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


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or load) an original on digits, run every method that handles the request,
    audit each against the same references and shadow bank (sisa and erm-ktp: against their
    own SISA and ERM originals), and write the reports."""
    from tqdm.auto import tqdm

    from unlearn_audit.data.datasets import load_dataset
    from unlearn_audit.data.splits import ForgetRequest, make_splits
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.pipeline import audit
    from unlearn_audit.registry import METHOD_PLUGINS
    from unlearn_audit.report import write_report
    from unlearn_audit.report.compare import write_comparison
    from unlearn_audit.store import Store
    from unlearn_audit.train import resolve_device, train_classifier
    from unlearn_audit.update_log import UpdateRecorder, save_update_log

    device = resolve_device(args.device)
    out = _check_out_dir(args.out_dir, "--out-dir")
    store = Store(args.cache_dir)
    dataset = load_dataset("digits")
    if args.forget_random is not None:
        request = ForgetRequest.random(args.forget_random, seed=args.seed)
    else:
        request = ForgetRequest.classes(args.forget_class or "3")
    splits = make_splits(dataset, request)
    scope = "class" if request.kind == "class" else "sample"
    start = time.perf_counter()
    # the update log that `amnesiac` needs (logging leaves the training as it is)
    recorder = UpdateRecorder()
    original = train_classifier(
        dataset, arch="small-cnn", device=device, update_log=recorder, progress=not args.quiet
    )
    save_checkpoint(original, out / "original.safetensors")
    originals: dict[str, Any] = {name: original for name in METHOD_PLUGINS.names()}
    # `sisa` unlearns a SISA ensemble, so it gets an original of its own
    originals["sisa"] = train_classifier(
        dataset,
        arch="sisa",
        arch_kwargs={"base": "small-cnn", "shards": 3, "slices": 2},
        device=device,
        store=store,
        progress=not args.quiet,
    )
    if "erm-ktp" in originals:  # `erm-ktp` needs the ERM mask layer, trained in alternation
        originals["erm-ktp"] = train_classifier(
            dataset,
            arch="erm",
            arch_kwargs={"base": "small-cnn"},
            device=device,
            store=store,
            progress=not args.quiet,
        )
    subjects: dict[str, Any] = {"no-unlearning": original}
    methods = [(n, s) for n, s in METHOD_PLUGINS.items() if scope in s.scope]
    with tempfile.TemporaryDirectory() as folder:
        assert recorder.log is not None
        log = save_update_log(recorder.log, Path(folder) / "original.updates.safetensors")
        for name, spec in tqdm(methods, desc="unlearn", disable=None if not args.quiet else True):
            result = spec.apply(
                originals[name],
                dataset,
                splits,
                hyperparameters={"update_log": str(log)} if name == "amnesiac" else None,
                seed=args.seed,
                device=device,
            )
            subjects[name] = save_checkpoint(result.model, out / name / "unlearned.safetensors")
            if originals[name] is not original:
                save_checkpoint(originals[name], out / name / "original.safetensors")
    results, summary = {}, []
    pdf_error = ""
    for name, model in tqdm(
        subjects.items(), desc="audit", disable=None if not args.quiet else True
    ):
        result = audit(
            original=originals.get(name, original),
            unlearned=model,
            dataset=dataset,
            request=splits,
            profile=args.profile,
            store=store,
            seed=args.seed,
            device=str(device),
            progress=not args.quiet,
            created=_now(),
        )
        result.save(out / name / "result.json")
        files = write_report(result, out / name, pdf=not args.no_pdf)
        pdf_error = pdf_error or files.pdf_error
        results[name] = result
        summary.append(
            {
                "model": name,
                "passed": result.passed,
                "report": str(files.html),
                "verdicts": {v.claim: v.status for v in result.verdicts},
            }
        )
    if pdf_error:  # once, not once per model
        print(f"unlearn-audit: warning: {pdf_error}", file=sys.stderr)
    links = {name: f"{name}/report.html" for name in results}
    comparison = write_comparison(results, out, links=links)
    seconds = time.perf_counter() - start
    if args.json:
        print(
            json.dumps(
                {"comparison": str(comparison), "models": summary, "seconds": round(seconds, 1)},
                indent=2,
            )
        )
        return 0
    print(
        f"demo: {splits.request.describe()} on digits, small-cnn original "
        f"{original.fingerprint}, {len(results)} models audited in {seconds:.0f} s"
    )
    claims = list(summary[0]["verdicts"])
    width = max(len(row["model"]) for row in summary)
    print(f"  {'model':{width}}  " + " ".join(f"{c[:18]:18}" for c in claims))
    for row in summary:
        print(f"  {row['model']:{width}}  " + " ".join(f"{row['verdicts'][c]:18}" for c in claims))
    print(f"reports: {out}/<model>/report.html (and .pdf); comparison: {comparison}")
    return 0


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hyperparameters(pairs: list[str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"`--hp` must be key=value like lr=0.01; got {pair!r}.")
        values[key.strip().replace("-", "_")] = value.strip()
    return values


def cmd_methods(args: argparse.Namespace) -> int:
    from unlearn_audit.registry import METHOD_PLUGINS

    names = [args.name] if args.name else METHOD_PLUGINS.names()
    rows = [_method_row(name, METHOD_PLUGINS.get(name)) for name in names]
    if args.json:
        print(json.dumps(rows[0] if args.name else rows, indent=2))
        return 0
    if args.name:
        row = rows[0]
        print(f"{row['name']}: {row['summary']}")
        print(f"  requests     {' and '.join(row['scope'])}")
        print(f"  needs        {'; '.join(row['needs'])}")
        print(f"  source       {row['paper']}")
        defaults = ", ".join(f"{k}={v!r}" for k, v in row["defaults"].items()) or "none"
        print(f"  defaults     {defaults}  (override with --hp KEY=VALUE)")
        if row["description"]:
            print()
            print(textwrap.indent(row["description"], "  "))
        return 0
    width = max(len(row["name"]) for row in rows) + 2
    for row in rows:
        print(f"{row['name']:{width}}{'+'.join(row['scope']):14}{row['summary']}")
        print(f"{'':{width}}{'':14}needs: {'; '.join(row['needs'])}")
    print("\n`unlearn-audit methods NAME` shows a method's defaults, source and details.")
    return 0


def _method_row(name: str, spec: Any) -> dict[str, Any]:
    """What `methods` shows of one spec: metadata plus the docstring's description."""
    import inspect

    doc = inspect.getdoc(spec.run) or ""
    description = doc.split("\n    Args:")[0].split("\nArgs:")[0].strip()
    return {
        "name": name,
        "scope": list(spec.scope),
        "needs": list(spec.needs),
        "summary": spec.summary,
        "paper": spec.paper,
        "defaults": dict(spec.defaults),
        "description": description,
    }


def cmd_unlearn(args: argparse.Namespace) -> int:
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.registry import METHOD_PLUGINS
    from unlearn_audit.train import resolve_device

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"`--out` must end in .safetensors; got {args.out!r}.")
    _check_out_file(out, "--out")
    spec = METHOD_PLUGINS.get(args.method)
    device = resolve_device(args.device)
    dataset, splits = load_request(args)
    original = load_model_from_args(args.original, dataset, args)
    result = spec.apply(
        original,
        dataset,
        splits,
        hyperparameters=_hyperparameters(args.hp),
        seed=args.seed,
        device=device,
        progress=not args.quiet,
    )
    save_checkpoint(result.model, out)
    summary = {
        "method": args.method,
        "seconds": result.seconds,
        "fingerprint": result.model.fingerprint,
        "checkpoint": str(out),
        "hyperparameters": result.model.info.extra["unlearning"]["hyperparameters"],
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(
        f"{args.method}: {splits.request.describe()} in {result.seconds:.1f} s "
        f"(fingerprint {result.model.fingerprint})"
    )
    print(f"hyperparameters: {json.dumps(summary['hyperparameters'], sort_keys=True, default=str)}")
    print(f"wrote {out}")
    return 0
