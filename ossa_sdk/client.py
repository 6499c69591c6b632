"""`Client`: start workflow executions and wait for them without polling (WatchExecution).

    from ossa_sdk import Client

    async with Client(gateway="127.0.0.1:3100", token=...) as client:
        execution = await client.run_and_wait(workflow_name="summarise", workflow_version="1.0.0",
                                              context={"doc": "..."}, on_change=print)
        print(execution["status"], execution["results"])

`run_and_wait` starts the execution, then holds a WatchExecution stream: the orchestrator pushes
its state first and then every status and task change, and ends the stream at the final status.
A stream that breaks (orchestrator restarted, network) is opened again; its first message is the
state at that moment, so nothing is lost. Executions are dicts shaped like the REST API's JSON.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from types import TracebackType
from typing import Any, TypeAlias

import grpc
from google.protobuf import json_format, struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa_runtime.auth.client import bearer_interceptors
from ossa_runtime.tls import client_credentials
from ossa_sdk.agent import DEFAULT_GATEWAY, TOKEN_ENV
from ossa_sdk.backoff import Backoff
from ossa_sdk.starts import StartBatcher

FINAL = ("completed", "failed", "cancelled")
# Worth opening the stream again for; any other error is the caller's to see.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
Change: TypeAlias = dict[str, Any]  # {"execution": {...}, "tasks": [{...}, ...], "initial": bool}
OnChange: TypeAlias = Callable[[Change], Awaitable[None] | None]


def _dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return out


class Client:
    """A caller of the platform (not an agent). `gateway` is the gRPC address (Envoy); `orchestrator`
    overrides it to reach the orchestrator directly. `token` defaults to $OSSA_TOKEN; `tls` /
    `tls_ca_file` (with `tls_cert_file` + `tls_key_file`) dial over TLS. `batch_starts=False` makes
    every start() its own StartExecution call."""

    def __init__(
        self,
        gateway: str = DEFAULT_GATEWAY,
        *,
        orchestrator: str | None = None,
        token: str | None = None,
        tls: bool = False,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        backoff: Callable[[], Backoff] = Backoff,
        batch_starts: bool = True,
    ) -> None:
        target = orchestrator or gateway
        interceptors = bearer_interceptors(os.environ.get(TOKEN_ENV, "") if token is None else token)
        if tls or tls_ca_file or tls_cert_file or tls_key_file:
            credentials = client_credentials(tls_ca_file, tls_cert_file, tls_key_file)
            self._channel = grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
        else:
            self._channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
        self.orchestrator = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)
        self._backoff = backoff
        # Concurrent start() calls share StartExecutions calls (ossa_sdk.starts); off: one call each.
        self._starts = StartBatcher(self.orchestrator.StartExecution, self.orchestrator.StartExecutions)
        self._batch_starts = batch_starts

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:  # fmt: skip
        await self.close()

    async def start(
        self,
        workflow_id: str = "",
        *,
        workflow_name: str = "",
        workflow_version: str = "",
        context: Mapping[str, Any] | None = None,
        priority: int = 0,
        idempotency_key: str = "",
    ) -> str:
        """Start an execution of a published workflow (by id, or name + version); its id. Starts made
        concurrently on one client share StartExecutions calls (see ossa_sdk.starts)."""
        struct = struct_pb2.Struct()
        struct.update(dict(context or {}))
        request = pb.StartExecutionRequest(
            workflow_id=workflow_id, workflow_name=workflow_name, workflow_version=workflow_version,
            context=struct, priority=priority, idempotency_key=idempotency_key,
        )  # fmt: skip
        if self._batch_starts:
            reply = await self._starts.start(request)
        else:
            reply = await self.orchestrator.StartExecution(request)
        execution_id: str = reply.execution_id
        return execution_id

    async def wait(self, execution_id: str, *, on_change: OnChange | None = None,
                   timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
        """The execution once it has a final status; `on_change` is called with each change (the
        first with the state when the watch began). TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            return await self._watch(execution_id, on_change)

    async def run_and_wait(
        self,
        workflow_id: str = "",
        *,
        workflow_name: str = "",
        workflow_version: str = "",
        context: Mapping[str, Any] | None = None,
        priority: int = 0,
        idempotency_key: str = "",
        on_change: OnChange | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Start an execution and return it once it has a final status (completed, failed or
        cancelled), without polling. See `start` and `wait`."""
        execution_id = await self.start(
            workflow_id, workflow_name=workflow_name, workflow_version=workflow_version, context=context,
            priority=priority, idempotency_key=idempotency_key,
        )  # fmt: skip
        return await self.wait(execution_id, on_change=on_change, timeout=timeout)

    async def _watch(self, execution_id: str, on_change: OnChange | None) -> dict[str, Any]:
        backoff = self._backoff()
        while True:
            call = self.orchestrator.WatchExecution(pb.WatchExecutionRequest(execution_id=execution_id))
            try:
                async for message in call:
                    backoff.reset()
                    execution = _dict(message.execution)
                    if on_change is not None:
                        change = {"execution": execution, "tasks": [_dict(t) for t in message.tasks],
                                  "initial": message.initial}  # fmt: skip
                        result = on_change(change)
                        if inspect.isawaitable(result):
                            await result
                    if execution["status"] in FINAL:
                        return execution
            except grpc.aio.AioRpcError as err:
                if err.code() not in RETRYABLE:
                    raise
            finally:
                with suppress(Exception):
                    call.cancel()
            await asyncio.sleep(backoff.next())  # the stream ended early: watch again


async def run_and_wait(gateway: str = DEFAULT_GATEWAY, workflow_id: str = "", *, token: str | None = None,
                       **options: Any) -> dict[str, Any]:  # fmt: skip
    """`Client(gateway, token=token).run_and_wait(workflow_id, **options)` with a client of its own."""
    async with Client(gateway, token=token) as client:
        return await client.run_and_wait(workflow_id, **options)
