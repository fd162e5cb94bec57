"""The ``unlearn-audit`` command line's parser: every verb and its options (no validation
beyond argparse's; :mod:`unlearn_audit.cli.options` turns the arguments into core objects)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from unlearn_audit import __version__
from unlearn_audit.cli.auditing import cmd_audit, cmd_checks, cmd_report
from unlearn_audit.cli.demo import cmd_demo
from unlearn_audit.cli.inspection import (
    cmd_archs,
    cmd_datasets,
    cmd_inspect,
    cmd_splits,
    cmd_store,
)
from unlearn_audit.cli.training import cmd_train
from unlearn_audit.cli.unlearning import cmd_methods, cmd_unlearn

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
        help="non-members used as test (count or fraction; default: half, at most 10000)",
    )
    group.add_argument(
        "--population-size",
        type=_count_or_fraction,
        metavar="N|F",
        help="non-members used as population (default: the rest, at most twice the members)",
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


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str) -> int:
    """A size in bytes from ``123``, ``500M``, ``2G``, ``1.5T`` (powers of 1024; a trailing B is
    allowed)."""
    value = text.strip().upper().removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        number = -1.0
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 500M or 2G, got {text!r}")
    return int(number * _UNITS[unit])


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "where references and shadow models train",
        "local: here, one after another; ray: one Ray task per model (install the [ray] extra)",
    )
    group.add_argument("--executor", choices=("local", "ray"), default="local")
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="a running Ray cluster (host:6379 or ray://host:10001; default: start a local one)",
    )
    group.add_argument(
        "--cpus-per-job",
        type=_positive_float,
        default=1.0,
        metavar="N",
        help="CPUs (and torch threads) per training job on Ray (default: 1)",
    )
    group.add_argument(
        "--gpus-per-job",
        type=_positive_float,
        metavar="F",
        help="GPUs per training job on Ray, fractions allowed (0.25: four jobs per GPU); "
        "default: none, the jobs train on CPU",
    )


def _add_recipe_options(parser: argparse.ArgumentParser, *, audit: bool = False) -> None:
    if audit:
        group = parser.add_argument_group(
            "the original's training recipe",
            "how the original was trained: references and shadow models are trained the same "
            "way (default: the recipe the original's checkpoint records, else the toolkit's "
            "default, which the report then says)",
        )
        group.add_argument(
            "--recipe",
            metavar="FILE",
            help="TOML or JSON file of recipe fields (optimizer, lr, epochs, batch_size, "
            "momentum, weight_decay, schedule, milestones, gamma, augment, label_smoothing); "
            "the options below change single fields",
        )
        group.add_argument(
            "--override-recipe",
            action="store_true",
            help="use the given recipe even where it contradicts the one the original records",
        )
    else:
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
    if not audit:  # an audit's --seed comes with the request options
        group.add_argument(
            "--seed",
            type=int,
            default=0,
            help="training seed, also of --forget-random (default: 0)",
        )


def _add_role_options(parser: argparse.ArgumentParser) -> None:
    for role in ("unlearned", "reference"):
        group = parser.add_argument_group(
            f"{role} model's architecture",
            f"override --arch, --arch-kwargs and --normalize for the {role} checkpoint(s)",
        )
        group.add_argument(f"--{role}-arch", metavar="ARCH", help="zoo name or module:factory")
        group.add_argument(f"--{role}-arch-kwargs", metavar="JSON")
        group.add_argument(f"--{role}-normalize", metavar="none|MEAN,STD")


def _add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("foreign checkpoints")
    group.add_argument(
        "--arch",
        help="architecture of a state_dict: zoo name or module:factory (for every checkpoint "
        "unless a --ROLE-arch says otherwise; for a TorchScript original, also what its "
        "references and shadows are trained as)",
    )
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
    structure = train.add_argument_group(
        "training-time structures", "what the methods `sisa`, `amnesiac` and `erm-ktp` unlearn with"
    )
    structure.add_argument(
        "--erm",
        action="store_true",
        help="add the entanglement-reduced mask layer G after the last conv stage of --arch "
        "and train by alternating the standard and mask paths (ERM-KTP); G is stored in the "
        "checkpoint",
    )
    structure.add_argument(
        "--erm-lambda",
        type=float,
        metavar="L",
        help="with --erm, weight of the mask penalty (L1 budget + row orthogonality; default 0.2)",
    )
    structure.add_argument(
        "--erm-period",
        type=int,
        metavar="P",
        help="with --erm, one epoch in P takes the mask path (default 3)",
    )
    structure.add_argument(
        "--sisa-shards",
        type=int,
        metavar="S",
        help="train a SISA ensemble of S shard models of --arch (averaged probabilities)",
    )
    structure.add_argument(
        "--sisa-slices",
        type=int,
        metavar="R",
        help="cut each shard into R slices, with a checkpoint before each (default: 1)",
    )
    structure.add_argument(
        "--log-updates",
        action="store_true",
        help="store every step's parameter update and batch ids in OUT.updates.safetensors "
        "(one model's size per step)",
    )
    structure.add_argument(
        "--log-candidates",
        metavar="FILE",
        help="with --log-updates, keep only the steps whose batch holds one of these ids "
        "(one per line)",
    )
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
        description="Gather the evidence of every check, judge it against the policy and "
        "write result.json and the report. Exit codes: 0 every claim passed or warned; 1 an "
        "error (bad input); 2 a malformed command line; 3 at least one claim failed; 4 "
        "inconclusive (no claim failed, but a claim that applies could not be judged from "
        "these models).",
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
        help="quick trains nothing (without --reference and --shadow the claims that need "
        "them are not judged: outcome PARTIAL, exit 5); standard (default) adds membership "
        "and relearn; full has more shadows and references",
    )
    options.add_argument("--checks", metavar="A,B", help="only these checks (default: all)")
    options.add_argument(
        "--references", type=int, metavar="N", help="reference seeds to train when none are given"
    )
    options.add_argument("--shadows", type=int, metavar="K", help="shadow models (default 4)")
    options.add_argument(
        "--no-null-audit",
        dest="null_audit",
        action="store_false",
        help="skip the null audit (with 2+ references the first is also judged as if it were "
        "the unlearned model, to show which verdicts a true retrain passes)",
    )
    options.add_argument(
        "--shadow",
        nargs="+",
        metavar="CKPT",
        help="your own shadow models (of the original's architecture) instead of training them",
    )
    options.add_argument(
        "--shadow-members",
        nargs="+",
        metavar="FILE",
        help="one id file per --shadow: the population samples it was trained on",
    )
    options.add_argument(
        "--fail-on",
        choices=("fail", "inconclusive", "warn"),
        default="fail",
        help="lowest outcome that exits 3: fail (default; inconclusive exits 4, partial 5), "
        "inconclusive (inconclusive and partial exit 3 too), or warn (a warning as well)",
    )
    options.add_argument(
        "--trigger",
        metavar="TRIGGER.json",
        help="backdoor trigger of a foreign original (ours record theirs)",
    )
    options.add_argument("--policy", metavar="POLICY.toml", help="thresholds (default: built in)")
    options.add_argument(
        "--plan",
        action="store_true",
        help="print what the audit would train and forward (and what the store already "
        "holds), then stop without running anything",
    )
    options.add_argument(
        "--inference-batch-size",
        type=int,
        metavar="N",
        help="samples per forward pass (default 512 on CPU, 2048 on CUDA); --batch-size is "
        "the training recipe's",
    )
    options.add_argument(
        "--no-pdf", action="store_true", help="write report.html but not report.pdf"
    )
    options.add_argument(
        "--out",
        default="reports/audit",
        metavar="DIR",
        help="where result.json, report.html and report.pdf go (default: reports/audit)",
    )
    _add_checkpoint_options(audit)
    _add_role_options(audit)
    _add_recipe_options(audit, audit=True)
    _add_runtime_options(audit)
    _add_executor_options(audit)
    _add_json_option(audit)
    audit.set_defaults(run=cmd_audit)

    report = verbs.add_parser(
        "report",
        help="rebuild report.html and report.pdf from a result.json",
        description="Render the HTML and PDF report of an audit from its result.json alone.",
    )
    report.add_argument("result", metavar="RESULT.json", help="written by `unlearn-audit audit`")
    report.add_argument("--out", metavar="DIR", help="default: the folder of RESULT.json")
    report.add_argument("--no-pdf", action="store_true", help="write report.html only")
    report.set_defaults(run=cmd_report)

    checks = verbs.add_parser("checks", help="list the registered checks")
    _add_json_option(checks)
    checks.set_defaults(run=cmd_checks)

    datasets = verbs.add_parser("datasets", help="list the registered datasets")
    _add_json_option(datasets)
    datasets.set_defaults(run=cmd_datasets)
    archs = verbs.add_parser("archs", help="list the registered architectures")
    _add_json_option(archs)
    archs.set_defaults(run=cmd_archs)

    store = verbs.add_parser(
        "store",
        help="list what the store holds (models, outputs, relearn curves) and prune it",
        description="Without --older-than or --max-size: what the store holds, by kind. With "
        "them: delete entries unused for that long, then the least recently used until the "
        "store fits the size.",
    )
    store.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the store (default: $UNLEARN_AUDIT_CACHE or ~/.cache/unlearn-audit)",
    )
    store.add_argument(
        "--older-than", metavar="DAYS", type=float, help="delete entries unused for DAYS days"
    )
    store.add_argument(
        "--max-size",
        metavar="SIZE",
        type=_size,
        help="delete least recently used entries until at most SIZE remain (e.g. 500M, 2G)",
    )
    _add_json_option(store)
    store.set_defaults(run=cmd_store)

    demo = verbs.add_parser(
        "demo",
        help="the whole product on the embedded digits dataset",
        description="Train (or load) a small CNN on digits, run every bundled method that "
        "handles the request, audit each against the same references and shadow bank, and "
        "write per-method reports and a comparison report.",
    )
    demo_request = demo.add_mutually_exclusive_group()
    demo_request.add_argument(
        "--forget-class", help="class the demo forgets (the default request: class 3)"
    )
    demo_request.add_argument(
        "--forget-random",
        metavar="AMOUNT",
        help="forget a random fraction (0.05) or count (50) of the members instead",
    )
    demo.add_argument("--out-dir", default="reports/demo", help="default: reports/demo")
    demo.add_argument(
        "--profile",
        default="standard",
        choices=("quick", "standard", "full"),
        help="audit profile (default: standard; quick trains no references or shadows)",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of methods and audits")
    demo.add_argument(
        "--methods",
        metavar="NAMES",
        help="comma-separated methods to run (default: every method that handles the request)",
    )
    demo.add_argument("--no-pdf", action="store_true", help="HTML reports only")
    _add_runtime_options(demo)
    _add_executor_options(demo)
    _add_json_option(demo)
    demo.set_defaults(run=cmd_demo)

    methods = verbs.add_parser(
        "methods",
        help="list the bundled unlearning methods, or describe one",
        description="List the unlearning methods (bundled and from plugins): the requests they "
        "handle and what they need; with NAME, its defaults, source and details.",
    )
    methods.add_argument("name", nargs="?", metavar="NAME", help="describe this method")
    _add_json_option(methods)
    methods.set_defaults(run=cmd_methods)

    unlearn = verbs.add_parser(
        "unlearn",
        help="apply a bundled unlearning method to a checkpoint",
        description="Run an unlearning method on the original for a forget request and save "
        "the unlearned model (its checkpoint records the method, hyperparameters and time).",
    )
    unlearn.add_argument("--original", required=True, metavar="CKPT")
    unlearn.add_argument("--method", required=True, help="see `unlearn-audit methods`")
    unlearn.add_argument("--hp", nargs="+", metavar="KEY=VALUE", help="hyperparameters")
    unlearn.add_argument("--out", required=True, metavar="FILE.safetensors")
    _add_data_options(unlearn)
    _add_request_options(unlearn)
    _add_checkpoint_options(unlearn)
    unlearn.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    unlearn.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_json_option(unlearn)
    unlearn.set_defaults(run=cmd_unlearn)
    return parser


def _add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def _version_text() -> str:
    return f"{PROG} {__version__}"
