"""`--env OSSA_X=V` (repeatable): settings for the platform a benchmark starts with `--start`.

Such a platform does not inherit the shell's OSSA_* variables (tests/e2e/platform.py gives it free
ports of its own), so a setting to compare (say OSSA_BATCH_LINGER_MS=0 against the default) is
passed this way.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    example = "e.g. OSSA_BATCH_LINGER_MS=0"
    parser.add_argument("--env", action="append", default=[], type=_setting, metavar="OSSA_X=V",
                        help=f"a setting for the started platform (repeatable), {example}")  # fmt: skip


def settings(args: argparse.Namespace) -> dict[str, str]:
    return dict(args.env)


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("OSSA_"):
        raise argparse.ArgumentTypeError(f"{text!r}: give OSSA_NAME=VALUE")
    return name, value
