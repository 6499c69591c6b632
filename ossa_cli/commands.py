"""What the operator commands share: run one async command, turning its CommandError into a line;
make one call through a generated stub, turning a refusal into one."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ossa_cli.remote import CommandError, Remote, fail, refused

AsyncCommand = Callable[[argparse.Namespace], Awaitable[int]]


def sync(func: AsyncCommand) -> Callable[[argparse.Namespace], int]:
    """The `command` for argparse: run `func(args)` to its exit code; a CommandError is printed."""

    def command(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(func(args))  # type: ignore[arg-type]
        except CommandError as err:
            return fail(err)

    return command


async def call(args: argparse.Namespace, stub: Callable[[grpc.aio.Channel], Any], method: str, request: Any,
               what: str) -> Any:  # fmt: skip
    """`stub(channel).<method>(request)` on the gateway the arguments name; a refusal is `what: <why>`."""
    async with Remote.from_args(args).channel() as channel:
        try:
            return await getattr(stub(channel), method)(request)
        except grpc.aio.AioRpcError as err:
            raise refused(err, what) from None
