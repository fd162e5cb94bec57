"""The ``unlearn-audit`` command line: :func:`main`, the console script.

Every verb validates its options once, at :mod:`~unlearn_audit.cli.options`. A user mistake
prints one line and exits 1 (2 for a malformed command line); only a bug shows a traceback. The
parser is in :mod:`~unlearn_audit.cli.parser`, each verb group in its own module.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from unlearn_audit.cli.parser import PROG, build_parser
from unlearn_audit.errors import UnlearnAuditError

__all__ = ["PROG", "build_parser", "main"]


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """Warnings as the CLI's errors are: one line, no source location."""
    return f"{PROG}: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = previous


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
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (stops a second error at exit)
        return 0
