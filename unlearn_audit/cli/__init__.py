"""The ``unlearn-audit`` command line: :func:`main`, the console script.

Every verb validates its options once, at :mod:`~unlearn_audit.cli.options`. A user mistake
prints one line and exits 1 (2 for a malformed command line); only a bug shows a traceback. The
core's errors name the API's parameters (`` `member_ids` ``); :func:`as_flags` names the options
instead (`` `--member-ids` ``). The
parser is in :mod:`~unlearn_audit.cli.parser`, each verb group in its own module.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from unlearn_audit._process import fewer_collections
from unlearn_audit.cli.parser import PROG, build_parser
from unlearn_audit.errors import UnlearnAuditError

__all__ = ["PROG", "as_flags", "build_parser", "main", "run"]


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """Warnings as the CLI's errors are: one line, no source location."""
    return f"{PROG}: warning: {message}\n"


# core parameters whose command-line option has another name
_ALIASES = {
    "normalization": "--normalize",
    "num_references": "--references",
    "update_log": "--log-updates",
}
_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")
# errors about a file's fields (a recipe, a policy, a trigger, result.json) keep its spelling
_FILE_CONTENT = re.compile(r"(recipe|policy|trigger) file |result\.json|audit result")


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """A core error as the command line says it: the parameters it names in backticks
    (`` `member_ids` ``) become the options that set them (`` `--member-ids` ``)."""
    if _FILE_CONTENT.search(message):  # names the fields of a file, not options
        return message
    options = _ALIASES | _options(parser)

    def flag(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"`{options[name]}`" if name in options else match.group(0)

    return _PARAMETER.sub(flag, message)


def _options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``dest -> --long-option`` over the parser and all its verbs."""
    found: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb in action.choices.values():
                found |= {k: v for k, v in _options(verb).items() if k not in found}
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in found:
            found[action.dest] = longs[0]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (the garbage collector runs
    less often meanwhile: :func:`~unlearn_audit._process.fewer_collections`)."""
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        with fewer_collections():
            return _main(argv)
    finally:
        warnings.formatwarning = previous


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script (and ``python -m unlearn_audit``): :func:`main`, then the exit
    without the interpreter's teardown.

    Tearing down torch, SciPy, scikit-learn, captum and matplotlib took 0.65-0.70 s after a
    quick digits audit had finished (2.6-2.8 s); the output is flushed and the exit handlers
    (``atexit``: Ray's shutdown, temporary folders, logging) run as on a normal exit, then the
    process ends with :func:`main`'s code.
    """
    code = main(argv)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = [PROG, *(sys.argv[1:] if argv is None else argv)]
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except UnlearnAuditError as exc:
        print(f"{PROG}: error: {as_flags(str(exc), parser)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (stops a second error at exit)
        return 0
