"""Secrets stay secret, on a platform run as production would be: `ossa up` with its secrets in
`*_FILE` mounts (OSSA_JWT_SECRET_FILE, OSSA_API_KEY_FILE), TLS on Envoy's listener and mTLS between
the services, debug logging. After REST and gRPC traffic (tokens, logins, bad tokens), no log
file, rendered config, captured output or /metrics page holds the JWT secret, the API key, the
database password or any token.
"""

from __future__ import annotations

import secrets
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from ossa_cli.postgres import EmbeddedPostgres
from tests.e2e.platform import Platform, make_platform, request
from tests.tls_certs import make_certs

pytestmark = pytest.mark.e2e

JWT_SECRET = f"e2e-jwt-secret-{secrets.token_hex(24)}"
API_KEY = f"e2e-api-key-{secrets.token_hex(16)}"
# Tokens seen during the run: none of them may be logged either.
SEEN_TOKENS: list[str] = []
METRICS_PAGES: list[str] = []


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("secure")
    certs = make_certs(root / "certs")
    mounted = root / "secrets"  # as a Kubernetes secret volume would be
    mounted.mkdir()
    (mounted / "jwt-secret").write_text(JWT_SECRET + "\n")
    (mounted / "api-key").write_text(API_KEY + "\n")
    platform = make_platform(
        root / "data",
        {
            "OSSA_JWT_SECRET_FILE": str(mounted / "jwt-secret"),
            "OSSA_API_KEY_FILE": str(mounted / "api-key"),
            "OSSA_TLS_CERT_FILE": str(certs.server_cert),
            "OSSA_TLS_KEY_FILE": str(certs.server_key),
            "OSSA_GRPC_TLS_CERT_FILE": str(certs.server_cert),
            "OSSA_GRPC_TLS_KEY_FILE": str(certs.server_key),
            "OSSA_GRPC_TLS_CA_FILE": str(certs.ca),
            "OSSA_LOG_LEVEL": "debug",
        },
    )
    platform.tls = ssl.create_default_context(cafile=str(certs.ca))
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


def call(p: Platform, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, object]:
    headers = {"authorization": f"Bearer {token}"} if token else None
    status, _, reply = request(p.gateway, method, path, body, headers=headers, tls=p.tls)
    return status, reply


def test_traffic_over_tls_with_secrets_from_files(secure: Platform) -> None:
    admin = (secure.data_dir / "admin.token").read_text().strip()
    SEEN_TOKENS.append(admin)
    status, body = call(secure, "GET", "/api/v1/health")
    assert status == 200, body

    agent = {"name": f"secretive-{secrets.token_hex(3)}", "type": "worker", "version": "1.0.0"}
    status, body = call(secure, "POST", "/api/v1/agents", agent, token=admin)
    assert status == 201, body

    forged = admin[: admin.rindex(".") + 1] + "AAAA" + admin[admin.rindex(".") + 5 :]
    SEEN_TOKENS.append(forged)
    status, body = call(secure, "GET", "/api/v1/agents", token=forged)
    assert status == 401 and forged not in str(body), body

    status, body = call(secure, "POST", "/api/v1/auth/login", {"api_key": API_KEY})  # the mounted key logs in
    assert status == 200 and isinstance(body, dict), body
    session_token = str(body["access_token"])
    SEEN_TOKENS.append(session_token)
    status, body = call(secure, "GET", "/api/v1/agents", token=session_token)
    assert status == 200, body
    status, body = call(secure, "POST", "/api/v1/auth/login", {"api_key": API_KEY + "x"})
    assert status == 401 and API_KEY not in str(body), body

    credentials = grpc.ssl_channel_credentials(root_certificates=Path(secure.env["OSSA_GRPC_TLS_CA_FILE"]).read_bytes())
    with grpc.secure_channel(secure.gateway, credentials) as channel:
        stub = registry_pb2_grpc.AgentRegistryServiceStub(channel)
        reply = stub.ListAgents(registry_pb2.ListAgentsRequest(), metadata=[("authorization", f"Bearer {admin}")])
        assert agent["name"] in [a.name for a in reply.agents]

    for service in ("gateway", "registry", "orchestrator", "monitoring"):
        url = f"http://127.0.0.1:{secure.port(service + '_metrics')}/metrics"
        with urllib.request.urlopen(url, timeout=10) as page:
            METRICS_PAGES.append(page.read().decode())


def test_no_secret_in_any_log_output_or_metrics(secure: Platform) -> None:
    assert SEEN_TOKENS, "run with the traffic test before it"
    assert secure.stop() == 0, secure.log_tail()  # every log is flushed and closed
    db_password = EmbeddedPostgres.in_data_dir(secure.data_dir, secure.port("postgres")).password()
    needles = {"JWT secret": JWT_SECRET, "API key": API_KEY, "database password": db_password}
    needles.update({f"token {i}": token for i, token in enumerate(SEEN_TOKENS)})
    # Also each token's signature alone: a log that cut a token short must not keep the part that matters.
    needles.update({f"signature of token {i}": token.rsplit(".", 1)[1] for i, token in enumerate(SEEN_TOKENS)})

    texts = {"ossa up output": secure.output.read_text(errors="replace")}
    for folder in ("logs", "envoy"):
        for path in sorted((secure.data_dir / folder).rglob("*")):
            if path.is_file():
                texts[str(path.relative_to(secure.data_dir))] = path.read_text(errors="replace")
    texts.update({f"/metrics page {i}": page for i, page in enumerate(METRICS_PAGES)})
    assert any(name.startswith("logs/") for name in texts) and len(METRICS_PAGES) == 4

    leaks = [
        f"{what} in {where}" for where, text in texts.items() for what, secret in needles.items() if secret in text
    ]
    assert not leaks, leaks
