"""TLS for gRPC between the services: server credentials for ServiceHost and the one channel factory.

Off by default (plaintext on loopback). `OSSA_GRPC_TLS_CERT_FILE` + `OSSA_GRPC_TLS_KEY_FILE` turn it
on: every service serves TLS with that certificate and every internal client (the gateway's health
probes, the orchestrator's registry client, `ossa up`'s readiness probes, Envoy's upstreams)
dials with TLS. `OSSA_GRPC_TLS_CA_FILE` makes it mutual: servers require a client certificate
signed by that CA, clients verify the servers against it and present the same certificate as
their own identity (so it needs both the serverAuth and clientAuth key usages, or none). Without
a CA file clients verify the servers against the system's trusted roots.

Clients verify the name they dial (e.g. `127.0.0.1`) unless `OSSA_GRPC_TLS_SERVER_NAME` says
which name the certificate carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from ossa_runtime import tracing
from ossa_runtime.settings import PREFIX, Settings, SettingsError

# The Settings fields naming files, checked by `check_files` (`ossa up` before starting anything).
FILE_FIELDS = (
    "tls_cert_file",
    "tls_key_file",
    "tls_ca_file",
    "grpc_tls_cert_file",
    "grpc_tls_key_file",
    "grpc_tls_ca_file",
)


def enabled(settings: Settings) -> bool:
    """gRPC between the services uses TLS."""
    return bool(settings.grpc_tls_cert_file and settings.grpc_tls_key_file)


def mutual(settings: Settings) -> bool:
    """Servers require and verify client certificates (mTLS)."""
    return enabled(settings) and bool(settings.grpc_tls_ca_file)


def gateway_tls(settings: Settings) -> bool:
    """Envoy's listener serves TLS."""
    return bool(settings.tls_cert_file and settings.tls_key_file)


def read_file(settings: Settings, name: str) -> bytes:
    """The bytes of the file the setting `name` names; SettingsError naming the variable if unreadable."""
    path = str(getattr(settings, name))
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as err:
        raise SettingsError(f"{PREFIX}{name.upper()}={path!r}: cannot read the file: {err.strerror or err}") from None
    if not data.strip():
        raise SettingsError(f"{PREFIX}{name.upper()}={path!r}: the file is empty")
    return data


def check_files(settings: Settings) -> None:
    """Every configured certificate, key and CA file is readable and looks like PEM."""
    for name in FILE_FIELDS:
        if getattr(settings, name) and b"-----BEGIN " not in read_file(settings, name):
            path = getattr(settings, name)
            raise SettingsError(f"{PREFIX}{name.upper()}={path!r}: not a PEM file (no -----BEGIN line)")


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (mTLS with a CA file) credentials for a service's port; None: plaintext."""
    if not enabled(settings):
        return None
    pair = (read_file(settings, "grpc_tls_key_file"), read_file(settings, "grpc_tls_cert_file"))
    ca = read_file(settings, "grpc_tls_ca_file") if settings.grpc_tls_ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """Credentials an internal client dials a service with; None: plaintext."""
    if not enabled(settings):
        return None
    ca = read_file(settings, "grpc_tls_ca_file") if settings.grpc_tls_ca_file else None
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=read_file(settings, "grpc_tls_key_file"),
        certificate_chain=read_file(settings, "grpc_tls_cert_file"),
    )


def client_credentials(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> grpc.ChannelCredentials:
    """TLS credentials for a client outside the platform (the SDK, agents) from file paths: `ca_file`
    to verify the server (default: the system's roots), `cert_file`/`key_file` as its identity."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("a client certificate needs both its certificate file and its key file")

    def read(what: str, path: str | None) -> bytes | None:
        if not path:
            return None
        try:
            return Path(path).expanduser().read_bytes()
        except OSError as err:
            raise ValueError(f"cannot read the TLS {what} file {path!r}: {err.strerror or err}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read("CA", ca_file),
        private_key=read("key", key_file),
        certificate_chain=read("certificate", cert_file),
    )


def channel_options(settings: Settings, options: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    out = list(options)
    if enabled(settings) and settings.grpc_tls_server_name:
        out.append(("grpc.ssl_target_name_override", settings.grpc_tls_server_name))
    return out


def channel(
    settings: Settings,
    target: str,
    options: Sequence[tuple[str, Any]] = (),
    *,
    interceptors: Sequence[Any] | None = None,
) -> grpc.aio.Channel:
    """The one way to dial a platform service: TLS/mTLS when configured, else plaintext."""
    credentials = channel_credentials(settings)
    chain = [*tracing.client_interceptors(), *(interceptors or ())]  # calls carry the caller's trace
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=list(options), interceptors=chain)
    return grpc.aio.secure_channel(target, credentials, options=channel_options(settings, options), interceptors=chain)
