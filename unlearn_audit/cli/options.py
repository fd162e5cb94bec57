"""The one boundary: command-line arguments -> the core's objects (datasets and splits,
loaded models, recipes, stores, output folders), each validated here once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unlearn_audit.errors import ConfigError


def json_dict(text: str | None, option: str) -> dict[str, Any]:
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


def recipe_from_args(args: argparse.Namespace, dataset: str, arch: str, base: Any = None) -> Any:
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


def store_from_args(args: argparse.Namespace) -> Any:
    from unlearn_audit.store import Store

    return Store.off() if args.no_cache else Store(args.cache_dir)


def check_out_dir(path: str | Path, flag: str) -> Path:
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


def check_out_file(path: str | Path, flag: str) -> Path:
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


def erm_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ERM training settings of --erm (``None`` without it). Their values are checked by
    the core when the network is built; here only what the command line alone can get wrong."""
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
    settings = {"lambda_reg": args.erm_lambda, "period": args.erm_period}
    return {k: v for k, v in settings.items() if v is not None}


def train_arch(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``--arch`` and its arguments, wrapped in a SISA ensemble with --sisa-shards, or in an
    ERM network with --erm (the core checks the values when it builds them)."""
    kwargs = json_dict(args.arch_kwargs, "--arch-kwargs")
    erm = erm_kwargs(args)
    if erm is not None:
        return "erm", {"base": args.arch, "base_kwargs": kwargs, **erm}
    if args.sisa_shards is None:
        if args.sisa_slices is not None:
            raise ConfigError("`--sisa-slices` needs --sisa-shards S (the number of shards).")
        return args.arch, kwargs
    return "sisa", {
        "base": args.arch,
        "base_kwargs": kwargs,
        "shards": args.sisa_shards,
        "slices": 1 if args.sisa_slices is None else args.sisa_slices,
    }


def update_recorder(args: argparse.Namespace, dataset: Any) -> Any:
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


def members_from_args(args: argparse.Namespace, dataset: Any) -> Any:
    """The ids of ``--member-ids``, checked against the dataset, or ``None``."""
    from unlearn_audit.data.splits import check_member_ids, read_id_file

    if not args.member_ids:
        return None
    return check_member_ids(dataset, read_id_file(args.member_ids, what="member ids"))


def complement(n: int, ids: Any) -> Any:
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
    members = members_from_args(args, dataset)
    splits = make_splits(
        dataset,
        request,
        member_ids=members,
        test_size=args.test_size,
        population_size=args.population_size,
    )
    return dataset, splits


def load_model_from_args(
    path: str, dataset: Any, args: argparse.Namespace, role: str | None = None
) -> Any:
    """A checkpoint loaded with the foreign-checkpoint options, checked against ``dataset``.

    ``role`` (``unlearned``, ``reference``) picks that role's ``--ROLE-arch``,
    ``--ROLE-arch-kwargs`` and ``--ROLE-normalize`` over the shared ones where given.
    """
    from unlearn_audit.models.checkpoints import load_checkpoint

    arch, kwargs, normalize = role_arch(args, role)
    return load_checkpoint(
        path,
        dataset=dataset,
        arch=arch,
        arch_kwargs=kwargs,
        normalize=normalize,
        trust_checkpoint=args.trust_checkpoint,
    )


def role_arch(
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
    return arch, json_dict(kwargs_text, kwargs_flag), normalize


RECIPE_FLAGS = (
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


def audit_recipe(args: argparse.Namespace, dataset: Any, original: Any) -> Any:
    """The recipe given by --recipe and the recipe options, or ``None`` when none is given.

    Single options change the file's fields; without a file they change the recipe the
    original records (or the default one).
    """
    from unlearn_audit.train import Recipe, load_recipe

    flags = any(getattr(args, name) is not None for name in RECIPE_FLAGS)
    if args.recipe is None and not flags:
        if args.override_recipe:
            raise ConfigError("`--override-recipe` needs a recipe: add --recipe FILE or --lr etc.")
        return None
    base = load_recipe(args.recipe) if args.recipe else None
    if base is None and original.info.recipe:
        base = Recipe.from_dict(original.info.recipe)
    return recipe_from_args(args, dataset.name, original.info.arch or args.arch or "", base)


def given_shadows(args: argparse.Namespace, dataset: Any) -> list[tuple[Any, Any]] | None:
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


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def executor_from_args(args: argparse.Namespace) -> Any:
    """``--executor`` with its Ray options (checked: Ray installed, the options only with it)."""
    from unlearn_audit.executors import make_executor

    return make_executor(
        args.executor,
        address=args.ray_address,
        cpus_per_job=args.cpus_per_job,
        gpus_per_job=args.gpus_per_job or 0.0,
    )
