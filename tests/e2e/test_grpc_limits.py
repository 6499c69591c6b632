"""Bad input at the edges over gRPC, straight to the services and through Envoy on a real
`ossa up`: each is INVALID_ARGUMENT (or RESOURCE_EXHAUSTED for a message over the size limit)
naming what is wrong, nothing is stored, and the service still answers. REST: test_rest_limits.py."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2 as opb
from ossa.registry.v1 import registry_pb2 as rpb
from ossa_runtime import limits
from tests.e2e.limits import Snapshot, assert_still_answering, no_crashes, published_workflow, row_counts
from tests.e2e.platform import Platform
from tests.protowire import deep_struct, field, spoil

pytestmark = pytest.mark.e2e
REGISTRY = "/ossa.registry.v1.AgentRegistryService/"
ORCHESTRATOR = "/ossa.orchestrator.v1.OrchestratorService/"


@pytest.fixture(params=["direct", "envoy"])
async def channels(request: pytest.FixtureRequest, platform: Platform) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """A channel per service: straight to its port, or all through Envoy's gateway port."""
    if request.param == "envoy":
        async with platform.channel() as gateway:
            yield {"registry": gateway, "orchestrator": gateway}
        return
    async with (
        platform.channel(platform.registry) as registry,
        platform.channel(f"127.0.0.1:{platform.port('orchestrator')}") as orchestrator,
    ):
        yield {"registry": registry, "orchestrator": orchestrator}


@pytest.fixture
async def stored(platform: Platform) -> AsyncIterator[Snapshot]:
    async with row_counts(platform) as snapshot:
        yield snapshot


@pytest.fixture(scope="module")
def workflow_id(platform: Platform) -> str:
    return published_workflow(platform)


@pytest.fixture(scope="module", autouse=True)
def crash_free(platform: Platform) -> Iterator[None]:
    with no_crashes(platform):
        yield


def context(doc: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(doc)
    return message


def agent(name: str = "limits-grpc") -> rpb.CreateAgentRequest:
    return rpb.CreateAgentRequest(name=name, type=rpb.AgentType.worker, version="1.0.0")


async def refused(
    channels: dict[str, grpc.aio.Channel], stored: Snapshot, service: str, method: str, data: bytes
) -> grpc.aio.AioRpcError:
    """Send raw request bytes; return the error, having checked that nothing was stored."""
    before = await stored()
    call = channels[service].unary_unary(method, None, None)  # bytes in, bytes out
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(data, timeout=60)
    assert await stored() == before, "a refused request stored something"
    return err.value


def assert_invalid(err: grpc.aio.AioRpcError, field_name: str, *needles: str) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    details = err.details() or ""
    assert f"invalid request: {field_name}: " in details and len(details) < 8192, details
    for needle in needles:
        assert needle in details, details


async def test_a_message_over_the_size_limit(
    platform: Platform, channels: dict[str, grpc.aio.Channel], stored: Snapshot, workflow_id: str
) -> None:
    big = opb.StartExecutionRequest(workflow_id=workflow_id, context=context({"doc": "y" * (50 * 1024 * 1024)}))
    err = await refused(channels, stored, "orchestrator", ORCHESTRATOR + "StartExecution", big.SerializeToString())
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
    assert f"vs. {limits.GRPC_MAX_MESSAGE_BYTES}" in (err.details() or "")
    two = opb.StartExecutionRequest(workflow_id=workflow_id, context=context({"doc": "y" * (2 * 1024 * 1024)}))
    err = await refused(channels, stored, "orchestrator", ORCHESTRATOR + "StartExecution", two.SerializeToString())
    assert_invalid(err, "context", f"must be at most {limits.CONTEXT_MAX_BYTES} bytes of JSON")
    assert_still_answering(platform)


async def test_what_protobuf_cannot_decode(
    platform: Platform, channels: dict[str, grpc.aio.Channel], stored: Snapshot
) -> None:
    create = REGISTRY + "CreateAgent"
    err = await refused(channels, stored, "registry", create, spoil(agent("SPOILED"), "SPOILED"))
    assert_invalid(err, "name", "is not valid UTF-8")
    deep = agent().SerializeToString() + field(6, deep_struct(10_000))  # metadata 10,000 levels deep
    err = await refused(channels, stored, "registry", create, deep)
    assert_invalid(err, "metadata", f"must nest at most {limits.JSON_MAX_DEPTH} levels deep")
    err = await refused(channels, stored, "registry", create, b"\xff\xff\xff")
    assert_invalid(err, "request", "corrupt protobuf wire format")
    async with platform.channel(token="") as anonymous:  # the caller is authenticated first
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await anonymous.unary_unary(create, None, None)(b"\xff\xff\xff", timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert_still_answering(platform)


@pytest.mark.parametrize(
    ("service", "method", "message", "field_name", "needle"),
    [
        ("registry", "CreateAgent", agent("x" * 1024 * 1024), "name", "must be at most 255 characters"),
        ("registry", "CreateAgent", agent("a\x00b"), "name", "control characters"),
        ("registry", "ListAgents", rpb.ListAgentsRequest(limit=-5), "limit", "got -5"),
        ("registry", "ListAgents", rpb.ListAgentsRequest(offset=-(2**31)), "offset", "must not be negative"),
        (
            "orchestrator",
            "StartExecution",
            opb.StartExecutionRequest(priority=2**31 - 1),
            "priority",
            "between 1 and 10",
        ),
        (
            "orchestrator",
            "StartExecution",
            opb.StartExecutionRequest(context=context({"x": math.nan})),
            "context",
            "NaN",
        ),
        ("orchestrator", "StartExecution", opb.StartExecutionRequest(context=context({"x": "\x00"})), "context", "NUL"),
        ("orchestrator", "ListExecutions", opb.ListExecutionsRequest(limit=2**31 - 1), "limit", "between 1 and 1000"),
        (
            "orchestrator",
            "CreateWorkflow",
            opb.CreateWorkflowRequest(
                name="n",
                version="1.0.0",
                definition=context({"steps": [{"id": "a", "capability": "x", "priority": math.inf}]}),
            ),
            "definition",
            "NaN or Infinity",
        ),
    ],
)
async def test_bad_fields_are_named(
    channels: dict[str, grpc.aio.Channel],
    stored: Snapshot,
    workflow_id: str,
    service: str,
    method: str,
    message: Any,
    field_name: str,
    needle: str,
) -> None:
    if isinstance(message, opb.StartExecutionRequest):
        message.workflow_id = workflow_id
    prefix = REGISTRY if service == "registry" else ORCHESTRATOR
    err = await refused(channels, stored, service, prefix + method, message.SerializeToString())
    assert_invalid(err, field_name, needle)
