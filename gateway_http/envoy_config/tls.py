"""The TLS parts of the Envoy bootstrap: the listener's DownstreamTlsContext and the clusters'
UpstreamTlsContext. Each is one YAML line (`transport_socket: {...}`) substituted into
envoy/envoy.yaml, or an empty line when TLS is off (plaintext, the default).

Listener: with `OSSA_TLS_CERT_FILE` and `OSSA_TLS_KEY_FILE` Envoy serves TLS 1.2 and 1.3 only, with
exactly the spec's four TLS 1.2 cipher suites (TLS 1.3 suites are fixed by BoringSSL, all AEAD),
and offers ALPN h2 and http/1.1 so gRPC and REST clients share the port. `OSSA_TLS_CA_FILE`
verifies client certificates when a client sends one; `OSSA_TLS_CLIENT_AUTH=true` requires one.

Upstreams: with `OSSA_GRPC_TLS_CERT_FILE`/`_KEY_FILE` (ossa_runtime.tls) Envoy dials the services
over TLS with ALPN h2, presents that certificate as its client identity (mTLS) and verifies the
services against `OSSA_GRPC_TLS_CA_FILE` (else the system's roots), by `OSSA_GRPC_TLS_SERVER_NAME`
too when it is set.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from ossa_runtime import tls
from ossa_runtime.settings import Settings

# The spec's cipher suites (IANA names) and their BoringSSL/OpenSSL names, which Envoy takes.
SPEC_CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
}
CIPHER_SUITES = list(SPEC_CIPHER_SUITES.values())
MIN_VERSION = "TLSv1_2"
MAX_VERSION = "TLSv1_3"
DOWNSTREAM_ALPN = ["h2", "http/1.1"]
TLS_SOCKET = "envoy.transport_sockets.tls"
_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


def _file(path: str) -> dict[str, str]:
    """A DataSource for a file, by absolute path (Envoy's working directory is not ours)."""
    return {"filename": str(Path(path).expanduser().resolve())}


def _system_roots() -> str | None:
    """The system's CA bundle (Envoy has no built-in trust store)."""
    found = ssl.get_default_verify_paths().cafile
    return found if found and Path(found).is_file() else None


def _socket(kind: str, context: dict[str, object]) -> str:
    socket = {"name": TLS_SOCKET, "typed_config": {"@type": _TYPES + kind, **context}}
    return "transport_socket: " + json.dumps(socket)


def listener_transport_socket(settings: Settings) -> str:
    """The gateway listener's DownstreamTlsContext (`transport_socket: {...}`), or "" for plaintext."""
    if not tls.gateway_tls(settings):
        return ""
    common: dict[str, object] = {
        "tls_params": {
            "tls_minimum_protocol_version": MIN_VERSION,
            "tls_maximum_protocol_version": MAX_VERSION,
            "cipher_suites": CIPHER_SUITES,
        },
        "tls_certificates": [
            {"certificate_chain": _file(settings.tls_cert_file), "private_key": _file(settings.tls_key_file)}
        ],
        "alpn_protocols": DOWNSTREAM_ALPN,
    }
    if settings.tls_ca_file:
        common["validation_context"] = {"trusted_ca": _file(settings.tls_ca_file)}
    context: dict[str, object] = {"common_tls_context": common}
    if settings.tls_client_auth:
        context["require_client_certificate"] = True
    return _socket("DownstreamTlsContext", context)


def upstream_transport_socket(settings: Settings) -> str:
    """The services' clusters' UpstreamTlsContext (`transport_socket: {...}`), or "" for plaintext."""
    if not tls.enabled(settings):
        return ""
    validation: dict[str, object] = {}
    roots = settings.grpc_tls_ca_file or _system_roots()
    if roots:
        validation["trusted_ca"] = _file(roots)
    if settings.grpc_tls_server_name:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "DNS", "matcher": {"exact": settings.grpc_tls_server_name}}
        ]
    common: dict[str, object] = {
        "tls_params": {"tls_minimum_protocol_version": MIN_VERSION},
        "tls_certificates": [
            {"certificate_chain": _file(settings.grpc_tls_cert_file), "private_key": _file(settings.grpc_tls_key_file)}
        ],
        "alpn_protocols": ["h2"],  # gRPC servers require it
    }
    if validation:
        common["validation_context"] = validation
    context: dict[str, object] = {"common_tls_context": common}
    if settings.grpc_tls_server_name:
        context["sni"] = settings.grpc_tls_server_name
    return _socket("UpstreamTlsContext", context)
