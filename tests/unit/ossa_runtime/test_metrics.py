"""ossa_runtime.metrics: every RPC is counted by the interceptor, /metrics serves it, gauges are sampled."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import pytest

from ossa_runtime import errors, metrics
from ossa_runtime.metrics_http import MetricsEndpoint
from ossa_runtime.server import PortInUseError, ServiceHost
from tests.prom import get, has, parse, promtool_check, scrape, value

UNARY = "/test.v1.Test/Unary"
STREAM = "/test.v1.Test/Stream"


async def unary(request: bytes, context: Any) -> bytes:
    if request == b"notfound":
        raise errors.NotFound("thing 7 not found")
    if request == b"crash":
        raise ZeroDivisionError("boom")
    if request == b"slow":
        await asyncio.sleep(0.3)
    return b"ok"


async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    if request == b"fail":
        raise errors.AlreadyExists("dup")
    if request == b"hang":
        await asyncio.sleep(30)
    yield b"second"


class Service:
    def __init__(self, host: ServiceHost, grpc_port: int) -> None:
        self.host = host
        self.target = f"127.0.0.1:{grpc_port}"

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def metrics_port(self) -> int:
        assert self.host.metrics.port is not None
        return self.host.metrics.port

    async def unary(self, payload: bytes) -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(self.target) as channel:
            try:
                await channel.unary_unary(UNARY)(payload)
            except grpc.aio.AioRpcError as err:
                return err.code()
        return grpc.StatusCode.OK

    async def stream(self, payload: bytes) -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(self.target) as channel:
            try:
                async for _ in channel.unary_stream(STREAM)(payload):
                    pass
            except grpc.aio.AioRpcError as err:
                return err.code()
        return grpc.StatusCode.OK


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    host = ServiceHost(f"unit-{secrets.token_hex(3)}", grace_seconds=0.1)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    host.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.v1.Test", handlers),))
    port = host.bind("127.0.0.1", 0)
    host.metrics.listen("127.0.0.1", 0)
    await host.start()
    yield Service(host, port)
    await host.stop()


async def test_every_rpc_is_counted_with_service_method_and_status(service: Service) -> None:
    codes = [await service.unary(p) for p in (b"a", b"b", b"notfound", b"crash")]
    codes += [await service.stream(b"ok"), await service.stream(b"fail")]
    assert codes[2:4] == [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL]
    s = parse(await scrape(service.metrics_port))
    svc = service.name
    assert value(s, "ossa_requests_total", service=svc, method=UNARY, status="OK") == 2
    assert value(s, "ossa_requests_total", service=svc, method=UNARY, status="NOT_FOUND") == 1
    assert value(s, "ossa_requests_total", service=svc, method=UNARY, status="INTERNAL") == 1
    assert value(s, "ossa_requests_total", service=svc, method=STREAM, status="OK") == 1
    assert value(s, "ossa_requests_total", service=svc, method=STREAM, status="ALREADY_EXISTS") == 1
    assert value(s, "ossa_errors_total", service=svc) == 3  # non-OK only
    assert value(s, "ossa_errors_total", service=svc, status="OK") == 0
    assert value(s, "ossa_errors_total", service=svc, method=UNARY, status="INTERNAL") == 1
    assert value(s, "ossa_request_duration_seconds_count", service=svc) == 6
    assert value(s, "ossa_request_duration_seconds_bucket", service=svc, method=UNARY, status="OK", le="+Inf") == 2


async def test_duration_is_the_handlers_time(service: Service) -> None:
    await service.unary(b"slow")
    s = parse(await scrape(service.metrics_port))
    labels = {"service": service.name, "method": UNARY, "status": "OK"}
    assert value(s, "ossa_request_duration_seconds_bucket", le="0.25", **labels) == 0
    assert value(s, "ossa_request_duration_seconds_bucket", le="0.5", **labels) == 1
    assert 0.3 <= value(s, "ossa_request_duration_seconds_sum", **labels) < 0.5


async def test_cancelled_and_timed_out_calls_are_not_ok(service: Service) -> None:
    async with grpc.aio.insecure_channel(service.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary(UNARY)(b"slow", timeout=0.05)
        call = channel.unary_stream(STREAM)(b"hang")
        await call.read()
        call.cancel()
    svc = service.name
    for _ in range(50):  # the server notices the cancellation a moment later
        s = parse(await scrape(service.metrics_port))
        if value(s, "ossa_errors_total", service=svc, method=STREAM, status="CANCELLED") == 1:
            break
        await asyncio.sleep(0.05)
    assert value(s, "ossa_errors_total", service=svc, method=STREAM, status="CANCELLED") == 1
    assert value(s, "ossa_errors_total", service=svc, method=UNARY, status="DEADLINE_EXCEEDED") == 1
    assert value(s, "ossa_requests_total", service=svc, status="OK") == 0


async def test_health_checks_are_rpcs_too(service: Service) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(service.target) as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    s = parse(await scrape(service.metrics_port))
    assert value(s, "ossa_requests_total", service=service.name, method="/grpc.health.v1.Health/Check") == 1


async def test_endpoint_serves_every_spec_metric_and_passes_promtool(service: Service) -> None:
    await service.unary(b"notfound")
    text = await scrape(service.metrics_port)
    s = parse(text)
    for name in ("ossa_requests_total", "ossa_errors_total", "ossa_request_duration_seconds_count"):
        assert has(s, name)
    for name in (
        "ossa_requests_total",
        "ossa_errors_total",
        "ossa_tasks_completed_total",
        "ossa_request_duration_seconds",
        "ossa_task_duration_seconds",
        "ossa_db_query_duration_seconds",
        "ossa_workflow_completion_time",
    ):
        assert f"# TYPE {name.removesuffix('_total')} " in text or f"# TYPE {name} " in text, name
    assert "process_cpu_seconds_total" in text  # one process: the client's process metrics too
    promtool_check("metrics", stdin=text)


async def test_endpoint_http_behaviour(service: Service) -> None:
    port = service.metrics_port
    status, ctype, body = await get(port)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    status, ctype, body = await get(port, accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and ctype.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    status, _, body = await get(port, method="HEAD")
    assert status == 200 and body == b""
    assert (await get(port, "/metrics?x=1"))[0] == 200
    assert (await get(port, "/"))[0] == 404
    assert (await get(port, method="POST"))[0] == 405
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"garbage\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 400")
    writer.close()


async def test_stop_closes_the_endpoint_and_is_idempotent() -> None:
    host = ServiceHost("unit-stop", grace_seconds=0.1)
    host.bind("127.0.0.1", 0)
    host.metrics.listen("127.0.0.1", 0)
    await host.start()
    port = host.metrics.port
    assert port is not None
    idle = await asyncio.open_connection("127.0.0.1", port)  # a connection that never sends a request
    await host.stop()
    await host.stop()
    assert await asyncio.wait_for(idle[0].read(), 5) == b""  # closed by the stop, not left hanging
    idle[1].close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_busy_metrics_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        host = ServiceHost("unit-busy", grace_seconds=0.1)
        host.bind("127.0.0.1", 0)
        host.metrics.listen("127.0.0.1", port)
        with pytest.raises(PortInUseError, match=f"unit-busy: cannot serve /metrics on 127.0.0.1:{port}"):
            await host.start()
        await host.stop()


async def test_endpoint_is_off_unless_asked() -> None:
    host = ServiceHost("unit-off", grace_seconds=0.1)
    host.bind("127.0.0.1", 0)
    await host.start()
    assert host.metrics.port is None
    await host.stop()


# Sampled gauges ----------------------------------------------------------------------------------


async def test_sampled_gauges_are_read_at_each_scrape() -> None:
    queue = [3.0]

    async def sample() -> Mapping[str, float]:
        return {metrics.QUEUE_SIZE: queue[0], metrics.WORKFLOWS_RUNNING: 1}

    endpoint = MetricsEndpoint("unit-gauges")
    endpoint.add_gauges(metrics.SampledGauges([metrics.QUEUE_SIZE, metrics.WORKFLOWS_RUNNING], sample))
    s = parse((await endpoint.scrape())[0].decode())
    assert (value(s, "ossa_queue_size"), value(s, "ossa_workflows_running")) == (3, 1)
    queue[0] = 7
    s = parse((await endpoint.scrape())[0].decode())
    assert value(s, "ossa_queue_size") == 7
    promtool_check("metrics", stdin=(await endpoint.scrape())[0].decode())


async def test_a_failing_or_slow_sample_leaves_its_gauges_out() -> None:
    mode = ["fail"]
    calls = [0]
    release = asyncio.Event()  # the slow sample runs until released (no race with the clock)

    async def sample() -> Mapping[str, float]:
        calls[0] += 1
        if mode[0] == "fail":
            raise ConnectionError("redis is down")
        if mode[0] == "slow":
            await release.wait()
        return {metrics.AGENTS_ACTIVE: 4}

    gauges = metrics.SampledGauges([metrics.AGENTS_ACTIVE], sample, timeout=0.2)
    endpoint = MetricsEndpoint("unit-failing")
    endpoint.add_gauges(gauges)
    body, _ = await endpoint.scrape()
    assert not has(parse(body.decode()), "ossa_agents_active")
    assert b"ossa_requests_total" in body  # the scrape itself still answers
    mode[0] = "ok"
    assert value(parse((await endpoint.scrape())[0].decode()), "ossa_agents_active") == 4
    mode[0] = "slow"
    assert not has(parse((await endpoint.scrape())[0].decode()), "ossa_agents_active")  # no stale 4
    before = calls[0]
    await asyncio.sleep(0.1)
    await endpoint.scrape()  # the slow sample still runs: awaited, not started again
    assert calls[0] == before
    release.set()
    await endpoint.stop()  # waits for the sample in flight
    assert gauges._running is not None and gauges._running.done()


def test_sampled_gauges_only_take_the_spec_gauges() -> None:
    async def sample() -> Mapping[str, float]:
        return {}

    with pytest.raises(ValueError, match="not a sampled gauge"):
        metrics.SampledGauges(["ossa_made_up"], sample)


# SQL operation labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "operation"),
    [
        ("SELECT 1", "select"),
        ("  insert into t values ($1)", "insert"),
        ("UPDATE tasks SET x = 1", "update"),
        ("DELETE FROM agents WHERE id = $1 RETURNING id", "delete"),
        ("BEGIN;", "begin"),
        ("COMMIT;", "commit"),
        ("WITH picked AS (SELECT id FROM tasks LIMIT 1 FOR UPDATE SKIP LOCKED) UPDATE tasks t SET a = 1", "update"),
        ("WITH a AS (SELECT 1), b AS (SELECT (2)) SELECT * FROM a, b", "select"),
        ("WITH x AS (DELETE FROM t RETURNING *) INSERT INTO u SELECT * FROM x", "insert"),
        ("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;", "reset"),
        ("EXPLAIN SELECT 1", "other"),
        ("", "other"),
    ],
)
def test_sql_operation(query: str, operation: str) -> None:
    assert metrics.sql_operation(query) == operation


def test_query_logger_feeds_the_db_histogram() -> None:
    class Logged:
        query = "SELECT 1"
        elapsed = 0.002

    service = f"unit-db-{secrets.token_hex(3)}"
    metrics.query_logger(service)(Logged())
    count = metrics.DB_QUERY_DURATION.labels(service, "select")._sum.get()  # type: ignore[attr-defined]
    assert count == pytest.approx(0.002)


def test_task_and_workflow_recorders() -> None:
    capability = f"cap-{secrets.token_hex(3)}"
    metrics.observe_attempt(capability, "completed", 1.5)
    metrics.observe_attempt(capability, "expired", -1)  # clock skew never gives a negative observation
    metrics.count_task(capability, "completed")
    registry = metrics.exposition_registry()
    s = parse(metrics.render(registry)[0].decode())
    assert value(s, "ossa_task_duration_seconds_count", capability=capability) == 2
    assert value(s, "ossa_task_duration_seconds_sum", capability=capability) == 1.5
    assert value(s, "ossa_tasks_completed_total", capability=capability, outcome="completed") == 1
