"""What the operator commands share: run one async command, turning its CommandError into a line."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from ossa_cli.remote import CommandError, fail

AsyncCommand = Callable[[argparse.Namespace], Awaitable[int]]


def sync(func: AsyncCommand) -> Callable[[argparse.Namespace], int]:
    """The `command` for argparse: run `func(args)` to its exit code; a CommandError is printed."""

    def command(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(func(args))  # type: ignore[arg-type]
        except CommandError as err:
            return fail(err)

    return command
