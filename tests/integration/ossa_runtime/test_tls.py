"""TLS end to end on loopback, with throw-away certificates (tests/tls_certs.py):

* the real services (registry, gateway, orchestrator, monitoring) serve gRPC with mTLS
  (OSSA_GRPC_TLS_*), and dial each other through ossa_runtime.tls;
* a real Envoy, rendered from the same settings, serves TLS on its listener (OSSA_TLS_*) and
  dials the services with its client certificate;
* Python's `ssl` proves what the listener accepts: TLS 1.1 and non-spec TLS 1.2 suites are refused,
  TLS 1.2 with the spec's suites and TLS 1.3 work; REST and gRPC work over it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway_http.envoy_config.render import render_envoy_config
from gateway_http.server import build_server as build_gateway
from monitoring_svc.server import build_server as build_monitoring
from orchestrator_svc.server import build_server as build_orchestrator
from ossa_cli.ports import free_ports
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from ossa_sdk import Agent
from registry_svc.server import build_server as build_registry
from tests.envoy import envoy_running
from tests.tls_certs import Certs, make_certs

RSA_SPEC_SUITES = ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256")
ECDSA_SPEC_SUITES = ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256")
# TLS 1.2 suites BoringSSL would accept by default but the spec leaves out.
NON_SPEC_SUITES = ("ECDHE-RSA-AES128-SHA", "AES256-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@contextmanager
def running_envoy(settings: Settings, directory: Path) -> Iterator[int]:
    """Envoy rendered from `settings`, until the block ends; yields its listener port."""
    config = render_envoy_config(settings, directory / "envoy")
    with envoy_running(config, settings.envoy_admin_port, directory / "envoy.log"):
        yield settings.gateway_port


@pytest.fixture(scope="module")
async def mesh(settings: Settings, certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    """The four services with mTLS behind a TLS Envoy; yields the settings they run with."""
    ports = free_ports("127.0.0.1", 6)
    s = settings.replace(
        auth_enabled=False,  # TLS is the subject here (tests/integration/test_auth_* cover tokens)
        gateway_host="127.0.0.1",
        gateway_port=ports[0],
        envoy_admin_port=ports[1],
        registry_port=ports[2],
        gateway_grpc_port=ports[3],
        orchestrator_port=ports[4],
        monitoring_port=ports[5],
        tls_cert_file=str(certs.server_cert),
        tls_key_file=str(certs.server_key),
        tls_ca_file=str(certs.ca),
        grpc_tls_cert_file=str(certs.server_cert),
        grpc_tls_key_file=str(certs.server_key),
        grpc_tls_ca_file=str(certs.ca),
    )
    hosts: list[ServiceHost] = []
    try:
        for build in (build_registry, build_orchestrator, build_monitoring, build_gateway):
            host, _ = await build(s)
            hosts.append(host)
            await host.start()
        with running_envoy(s, tmp_path_factory.mktemp("envoy")):
            yield s
    finally:
        for host in reversed(hosts):
            await host.stop()


def client_context(
    certs: Certs, *, version: ssl.TLSVersion | None = None, ciphers: str | None = None
) -> ssl.SSLContext:
    """A client that trusts the test CA; `version` pins one protocol version, `ciphers` the TLS 1.2 suites."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    if version is not None:
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this OpenSSL even offer TLS 1.1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "TLSv1_1 is deprecated": the point
            context.minimum_version = version
            context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """(protocol version, cipher) the listener agreed to; ssl.SSLError when it refuses."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls_socket,
    ):
        cipher = tls_socket.cipher()
        assert cipher is not None
        return str(tls_socket.version()), cipher[0]


def https_get(port: int, context: ssl.SSLContext, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


async def test_tls_1_1_is_refused(mesh: Settings, certs: Certs) -> None:
    context = client_context(certs, version=ssl.TLSVersion.TLSv1_1)
    with pytest.raises(ssl.SSLError) as caught:
        await asyncio.to_thread(handshake, mesh.gateway_port, context)
    assert "TLSV1_ALERT_PROTOCOL_VERSION" in str(caught.value)  # the server's alert, not a client-side refusal


@pytest.mark.parametrize("suite", RSA_SPEC_SUITES)
async def test_tls_1_2_with_a_spec_suite_works(mesh: Settings, certs: Certs, suite: str) -> None:
    context = client_context(certs, version=ssl.TLSVersion.TLSv1_2, ciphers=suite)
    assert await asyncio.to_thread(handshake, mesh.gateway_port, context) == ("TLSv1.2", suite)


@pytest.mark.parametrize("suite", NON_SPEC_SUITES)
async def test_tls_1_2_with_a_non_spec_suite_is_refused(mesh: Settings, certs: Certs, suite: str) -> None:
    context = client_context(certs, version=ssl.TLSVersion.TLSv1_2, ciphers=suite)
    with pytest.raises(ssl.SSLError, match="ALERT_HANDSHAKE_FAILURE"):  # the server's alert: no shared suite
        await asyncio.to_thread(handshake, mesh.gateway_port, context)


async def test_tls_1_3_works(mesh: Settings, certs: Certs) -> None:
    version, _ = await asyncio.to_thread(handshake, mesh.gateway_port, client_context(certs))
    assert version == "TLSv1.3"
    context = client_context(certs, version=ssl.TLSVersion.TLSv1_3)
    assert (await asyncio.to_thread(handshake, mesh.gateway_port, context))[0] == "TLSv1.3"


async def test_rest_over_https_reaches_every_service_over_mtls(mesh: Settings, certs: Certs) -> None:
    """GET /api/v1/health: Envoy → gateway (mTLS), whose report asks each service (mTLS)."""
    context = client_context(certs)
    started = ["postgres", "redis", "registry", "orchestrator", "monitoring"]  # (not other optional services)
    async with asyncio.timeout(30):
        while True:
            status, body = await asyncio.to_thread(https_get, mesh.gateway_port, context, "/api/v1/health")
            states = {c["name"]: c["state"] for c in body["components"]}
            if all(states.get(name) == "healthy" for name in started):
                break
            await asyncio.sleep(0.2)
    assert status in (200, 503) and set(started) <= set(states), body
    status, doc = await asyncio.to_thread(https_get, mesh.gateway_port, context, "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"


async def test_plain_http_on_the_tls_port_gets_no_answer(mesh: Settings) -> None:
    def plain() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", mesh.gateway_port, timeout=10)
        try:
            conn.request("GET", "/api/v1/health")
            return conn.getresponse().status
        finally:
            conn.close()

    with pytest.raises((http.client.HTTPException, ConnectionError)):
        await asyncio.to_thread(plain)


async def test_grpc_clients_through_the_tls_gateway(mesh: Settings, certs: Certs) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{mesh.gateway_port}", credentials) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def check(target: str, credentials: grpc.ChannelCredentials | None) -> int:
    channel = grpc.aio.insecure_channel(target) if credentials is None else grpc.aio.secure_channel(target, credentials)
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    status: int = reply.status
    return status


async def test_services_require_a_client_certificate(
    mesh: Settings, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    registry = f"127.0.0.1:{mesh.registry_port}"
    ca = certs.ca.read_bytes()
    with_cert = grpc.ssl_channel_credentials(ca, certs.client_key.read_bytes(), certs.client_cert.read_bytes())
    assert await check(registry, with_cert) == health_pb2.HealthCheckResponse.SERVING

    other = make_certs(tmp_path_factory.mktemp("other-ca"), prefix="other-")
    refused = {
        "no client certificate": grpc.ssl_channel_credentials(ca),
        "a certificate from another CA": grpc.ssl_channel_credentials(
            ca, other.client_key.read_bytes(), other.client_cert.read_bytes()
        ),
        "plaintext": None,
    }
    for what, credentials in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await check(registry, credentials)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, what


async def test_an_ecdsa_certificate_serves_the_ecdsa_suites(certs: Certs, tmp_path: Path) -> None:
    ec = make_certs(tmp_path / "ec", key_type="ec")
    gateway, admin = free_ports("127.0.0.1", 2)
    s = Settings.from_env(
        {},
        data_dir=tmp_path,
        gateway_host="127.0.0.1",
        gateway_port=gateway,
        envoy_admin_port=admin,
        tls_cert_file=str(ec.server_cert),
        tls_key_file=str(ec.server_key),
    )
    with running_envoy(s, tmp_path):
        for suite in ECDSA_SPEC_SUITES:
            context = client_context(ec, version=ssl.TLSVersion.TLSv1_2, ciphers=suite)
            assert handshake(gateway, context) == ("TLSv1.2", suite)
        with pytest.raises(ssl.SSLError):
            handshake(gateway, client_context(ec, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-SHA"))


async def test_sdk_agent_registers_through_the_tls_gateway(mesh: Settings, certs: Certs) -> None:
    agent = Agent(
        f"tls-agent-{secrets.token_hex(3)}",
        capabilities=["echo"],
        handler="echo",
        gateway=f"127.0.0.1:{mesh.gateway_port}",
        tls_ca_file=str(certs.ca),
    )
    serving = asyncio.create_task(agent.serve())
    try:
        async with asyncio.timeout(30):
            while True:  # until registered (or serve() failed)
                if agent.id is not None or serving.done():
                    break
                await asyncio.sleep(0.05)
        assert agent.id is not None, serving
    finally:
        agent.stop()
        await serving


def test_sdk_agent_tls_files_are_checked_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no-such-ca\.pem"):
        Agent("a", capabilities=["echo"], handler="echo", tls_ca_file=str(tmp_path / "no-such-ca.pem"))


def test_listener_can_require_client_certificates(certs: Certs, tmp_path: Path) -> None:
    gateway, admin = free_ports("127.0.0.1", 2)
    s = Settings.from_env(
        {},
        data_dir=tmp_path,
        gateway_host="127.0.0.1",
        gateway_port=gateway,
        envoy_admin_port=admin,
        tls_cert_file=str(certs.server_cert),
        tls_key_file=str(certs.server_key),
        tls_ca_file=str(certs.ca),
        tls_client_auth=True,
    )
    with running_envoy(s, tmp_path):
        with_cert = client_context(certs)
        with_cert.load_cert_chain(certs.client_cert, certs.client_key)
        status, doc = https_get(gateway, with_cert, "/api/v1/openapi.json")
        assert status == 200 and doc["openapi"] == "3.1.0"
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                https_get(gateway, client_context(certs, version=version), "/api/v1/openapi.json")
