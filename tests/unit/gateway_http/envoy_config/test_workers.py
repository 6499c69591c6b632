"""A service run as several workers behind a real Envoy (`ossa up --orchestrators N`, `--registry-workers N`):
requests are spread over them, and a worker that stops gets no more (retries go to another one,
health checks take it out)."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from concurrent import futures
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health, health_pb2_grpc

from gateway_http.envoy_config.render import render_envoy_config
from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.envoy import envoy_running
from tests.unit.gateway_http.envoy_config.test_render import free_port, make_settings


class _Worker(registry_pb2_grpc.AgentRegistryServiceServicer):
    """A registry worker that says which one answered."""

    def __init__(self, name: str, seen: Counter[str]) -> None:
        self.name = name
        self.seen = seen
        self.lock = threading.Lock()

    def CreateAgent(self, request: registry_pb2.CreateAgentRequest, context: grpc.ServicerContext) -> object:
        with self.lock:
            self.seen[self.name] += 1
        return registry_pb2.CreateAgentResponse(agent=registry_pb2.Agent(name=request.name, version=self.name))


def _start(name: str, seen: Counter[str]) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server(_Worker(name, seen), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)  # "" is SERVING
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _register(conn: http.client.HTTPConnection, n: int) -> list[int]:
    statuses = []
    for i in range(n):
        conn.request("POST", "/api/v1/agents", body=json.dumps({"name": f"a{i}", "type": "worker"}),
                      headers={"content-type": "application/json"})  # fmt: skip
        reply = conn.getresponse()
        reply.read()
        statuses.append(reply.status)
    return statuses


def test_requests_are_spread_and_a_stopped_worker_gets_none(tmp_path: Path) -> None:
    seen: Counter[str] = Counter()
    (one, port_one), (two, port_two) = _start("one", seen), _start("two", seen)
    settings = make_settings(tmp_path, gateway_port=free_port(), envoy_admin_port=free_port(), registry_port=port_one)
    workers = {"registry": [("127.0.0.1", port_one), ("127.0.0.1", port_two)]}
    config = render_envoy_config(settings, tmp_path / "envoy", targets=workers)
    clusters = yaml.safe_load(config.read_text())["static_resources"]["clusters"]
    cluster = next(c for c in clusters if c["name"] == "registry")
    assert cluster["health_checks"][0]["grpc_health_check"] == {}
    try:
        with envoy_running(config, settings.envoy_admin_port, tmp_path / "envoy.log"):
            conn = http.client.HTTPConnection("127.0.0.1", settings.gateway_port, timeout=10)
            try:
                assert _register(conn, 40) == [201] * 40
                assert seen["one"] > 0 and seen["two"] > 0, seen  # both workers served
                one.stop(None)  # the worker is gone: its port refuses connections
                before = dict(seen)
                assert _register(conn, 40) == [201] * 40  # nothing fails: retried on the other worker
                assert seen["one"] == before["one"] and seen["two"] == before["two"] + 40, seen
            finally:
                conn.close()
    finally:
        one.stop(None)
        two.stop(None)
