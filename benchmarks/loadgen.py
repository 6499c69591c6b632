"""Cheap load generators starting one-step executions, one at a time or in batches.

REST: a few threads, each with its own keep-alive HTTP/1.1 connection (http.client) to Envoy,
POST /api/v1/orchestrate (or /api/v1/orchestrate:batch). gRPC: the generated grpc.aio stubs
through Envoy, a fixed number of calls in flight, StartExecution (or StartExecutions). Each
execution's context is {"seq": i}. What comes back: when each execution's start was sent (wall
clock, to compare with the server's completed_at), when the last reply came, and the errors.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2

from benchmarks import auth
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc

CALL = 30.0  # seconds: the deadline of one start call (a batch of 100 included)
UNIMPLEMENTED = 12  # the gRPC code, also in the REST error body


@dataclass
class Starts:
    sent: dict[str, float] = field(default_factory=dict)  # execution id -> wall time its request was sent
    first: float = 0.0  # wall time the first request was sent
    took: float = 0.0  # seconds from the first request to the last reply
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unavailable: str = ""  # the server does not implement this call
    latency: list[float] = field(default_factory=list)  # seconds from sending each answered request to its reply
    calls: int = 0  # gRPC calls the SDK made for the requests (sdk_starts only)

    def add(self, ids: list[str], sent: float) -> None:
        for execution_id in ids:
            self.sent[execution_id] = sent
        self.latency.append(time.time() - sent)


def chunks(n: int, size: int) -> list[range]:
    """0..n-1 in ranges of `size` (size 0 or 1: one item each)."""
    size = max(1, size)
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


# REST -----------------------------------------------------------------------------------------------


def _rest_body(workflow_id: str, seqs: range, batch: bool) -> bytes:
    items = [{"workflow_id": workflow_id, "context": {"seq": i}} for i in seqs]
    return json.dumps({"executions": items} if batch else items[0]).encode()


def _rest_ids(data: bytes, batch: bool) -> list[str]:
    parsed = json.loads(data)
    if batch:
        return [str(e["execution_id"]) for e in parsed["executions"]]
    return [str(parsed["execution_id"])]


def rest_starts(gateway: str, workflow_id: str, n: int, connections: int = 8, batch: int = 0) -> Starts:
    """n executions over REST via Envoy: `connections` threads with keep-alive connections; with
    `batch` > 0, POST /api/v1/orchestrate:batch with that many per request."""
    path = "/api/v1/orchestrate:batch" if batch else "/api/v1/orchestrate"
    work = iter(chunks(n, batch))
    lock = threading.Lock()
    out = Starts()
    headers = {"content-type": "application/json", **auth.headers()}
    host, port = gateway.rsplit(":", 1)

    def next_chunk() -> range | None:
        with lock:
            return None if out.unavailable else next(work, None)

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=CALL)
        while (seqs := next_chunk()) is not None:
            body = _rest_body(workflow_id, seqs, batch > 0)
            sent = time.time()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as err:
                conn.close()  # reconnects on the next request
                with lock:
                    out.errors[f"{type(err).__name__}: {err}"] += len(seqs)
                continue
            _rest_outcome(out, lock, resp.status, data, seqs, sent, batch > 0)
        conn.close()

    out.first = time.time()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.took = time.time() - out.first
    return out


def _rest_outcome(out: Starts, lock: threading.Lock, status: int, data: bytes, seqs: range, sent: float,
                  batch: bool) -> None:  # fmt: skip
    with lock:
        out.requests += 1
        if status in (200, 202):
            out.add(_rest_ids(data, batch), sent)
            return
        try:
            error = json.loads(data)
        except ValueError:
            error = {"message": data[:200].decode(errors="replace")}
        if error.get("code") == UNIMPLEMENTED or status == 404:
            out.unavailable = f"HTTP {status} {error.get('message', '')}".strip()
        out.errors[f"HTTP {status}: {error.get('message', '')}"] += len(seqs)


# gRPC -----------------------------------------------------------------------------------------------


def _request(workflow_id: str, seq: int) -> pb.StartExecutionRequest:
    context = struct_pb2.Struct()
    context.update({"seq": seq})
    return pb.StartExecutionRequest(workflow_id=workflow_id, context=context)


async def grpc_starts(gateway: str, workflow_id: str, n: int, in_flight: int = 16, batch: int = 0,
                      channels: int = 2) -> Starts:  # fmt: skip
    """n executions over gRPC via Envoy with the generated stubs, `in_flight` calls at once over
    `channels` channels; with `batch` > 0, StartExecutions with that many per call."""
    chans = [grpc.aio.insecure_channel(gateway, interceptors=auth.interceptors()) for _ in range(channels)]
    stubs = [orchestrator_pb2_grpc.OrchestratorServiceStub(c) for c in chans]
    work = iter(chunks(n, batch))
    out = Starts()
    if batch and not hasattr(pb, "StartExecutionsRequest"):  # stubs of a version before StartExecutions
        out.unavailable = "these generated stubs have no StartExecutions"

    async def caller(stub: Any) -> None:
        while not out.unavailable and (seqs := next(work, None)) is not None:
            sent = time.time()
            try:
                ids = await _call(stub, workflow_id, seqs, batch > 0)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    out.unavailable = f"UNIMPLEMENTED {err.details()}"
                out.errors[f"{err.code().name}: {err.details()}"] += len(seqs)
                continue
            finally:
                out.requests += 1
            out.add(ids, sent)

    try:
        out.first = time.time()
        await asyncio.gather(*(caller(stubs[i % len(stubs)]) for i in range(in_flight)))
        out.took = time.time() - out.first
    finally:
        for c in chans:
            await c.close(None)
    return out


async def sdk_starts(gateway: str, workflow_id: str, n: int, in_flight: int = 16) -> Starts:
    """n executions with the SDK's `Client.start` via Envoy, `in_flight` starts at once on one client
    (its concurrent starts share StartExecutions calls: ossa_sdk.starts); `requests` counts starts."""
    from ossa_sdk import Client  # only the SDK rows need it (and an SDK that batches starts)

    out = Starts()
    work = iter(range(n))
    async with Client(gateway, token=os.environ.get(auth.TOKEN_ENV, "")) as client:
        if not hasattr(client, "_starts"):
            out.unavailable = "this SDK's Client does not batch concurrent starts"
            return out

        async def caller() -> None:
            while (seq := next(work, None)) is not None:
                sent = time.time()
                try:
                    execution_id = await asyncio.wait_for(client.start(workflow_id, context={"seq": seq}), CALL)
                except grpc.aio.AioRpcError as err:
                    out.errors[f"{err.code().name}: {err.details()}"] += 1
                    continue
                finally:
                    out.requests += 1
                out.add([execution_id], sent)

        out.first = time.time()
        await asyncio.gather(*(caller() for _ in range(in_flight)))
        out.took = time.time() - out.first
        out.calls = client._starts.calls
    return out


async def _call(stub: Any, workflow_id: str, seqs: range, batch: bool) -> list[str]:
    if not batch:
        reply = await stub.StartExecution(_request(workflow_id, seqs[0]), timeout=CALL)
        return [str(reply.execution_id)]
    request = pb.StartExecutionsRequest(executions=[_request(workflow_id, i) for i in seqs])
    replies = await stub.StartExecutions(request, timeout=CALL)
    return [str(e.execution_id) for e in replies.executions]
