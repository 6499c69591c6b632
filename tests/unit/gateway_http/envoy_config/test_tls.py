"""TLS configuration: Envoy's listener and upstream TLS contexts (rendered and `envoy --mode
validate`d with real throw-away certificates), the settings that turn them on, and
ossa_runtime.tls's credentials."""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from gateway_http.envoy_config.binary import validate_envoy_config
from gateway_http.envoy_config.descriptor import CLUSTERS
from gateway_http.envoy_config.render import render_envoy_config
from gateway_http.envoy_config.tls import CIPHER_SUITES, SPEC_CIPHER_SUITES
from ossa_cli.agent import CLIENT_CERT_ENV, CLIENT_KEY_ENV, tls_options
from ossa_cli.main import build_parser
from ossa_cli.plan import build_plan
from ossa_cli.probes import http_status, readiness_tls
from ossa_runtime import tls
from ossa_runtime.settings import Settings, SettingsError
from ossa_runtime.topology import SERVICES
from tests.tls_certs import Certs, make_certs

SERVICE_CLUSTERS = CLUSTERS  # every platform service Envoy routes to
TLS_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "OSSA_DATA_DIR": str(tmp_path),
        "OSSA_GATEWAY_HOST": "127.0.0.1",
        "OSSA_GATEWAY_PORT": "13100",
        "OSSA_ENVOY_ADMIN_PORT": "19901",
    }
    return Settings.from_env({**base, **{f"OSSA_{k.upper()}": v for k, v in env.items()}})


def render(s: Settings, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = render_envoy_config(s, tmp_path / "envoy")
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return path, config


def filter_chain(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]  # the gateway; then the cache's internal origin
    chain: dict[str, Any] = listener["filter_chains"][0]
    return chain


def clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def test_spec_cipher_suites_map_to_boringssl_names() -> None:
    assert list(SPEC_CIPHER_SUITES) == [
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ]
    assert CIPHER_SUITES == [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ]


def test_plaintext_by_default(tmp_path: Path) -> None:
    path, config = render(settings(tmp_path), tmp_path)
    assert "transport_socket" not in filter_chain(config)
    assert filter_chain(config)["filters"][0]["name"] == "envoy.filters.network.http_connection_manager"
    assert all("transport_socket" not in c for c in clusters(config).values())
    validate_envoy_config(path)


def test_listener_serves_tls_with_the_spec_ciphers(tmp_path: Path, certs: Certs) -> None:
    s = settings(tmp_path, tls_cert_file=str(certs.server_cert), tls_key_file=str(certs.server_key))
    path, config = render(s, tmp_path)
    socket = filter_chain(config)["transport_socket"]
    assert socket["name"] == "envoy.transport_sockets.tls"
    context = socket["typed_config"]
    assert context["@type"] == TLS_TYPES + "DownstreamTlsContext"
    common = context["common_tls_context"]
    assert common["tls_params"] == {
        "tls_minimum_protocol_version": "TLSv1_2",
        "tls_maximum_protocol_version": "TLSv1_3",
        "cipher_suites": CIPHER_SUITES,
    }
    assert common["alpn_protocols"] == ["h2", "http/1.1"]  # gRPC and REST on one port
    (pair,) = common["tls_certificates"]
    assert pair == {
        "certificate_chain": {"filename": str(certs.server_cert)},
        "private_key": {"filename": str(certs.server_key)},
    }
    assert "validation_context" not in common and "require_client_certificate" not in context
    assert all("transport_socket" not in c for c in clusters(config).values())  # upstreams stay plaintext
    validate_envoy_config(path)


def test_listener_client_certificates(tmp_path: Path, certs: Certs) -> None:
    s = settings(
        tmp_path,
        tls_cert_file=str(certs.server_cert),
        tls_key_file=str(certs.server_key),
        tls_ca_file=str(certs.ca),
        tls_client_auth="true",
    )
    path, config = render(s, tmp_path)
    context = filter_chain(config)["transport_socket"]["typed_config"]
    assert context["require_client_certificate"] is True
    assert context["common_tls_context"]["validation_context"] == {"trusted_ca": {"filename": str(certs.ca)}}
    validate_envoy_config(path)


def test_relative_certificate_paths_become_absolute(
    tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(certs.server_cert.parent)
    s = settings(tmp_path, tls_cert_file=certs.server_cert.name, tls_key_file=certs.server_key.name)
    _, config = render(s, tmp_path)
    (pair,) = filter_chain(config)["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificates"]
    assert pair["certificate_chain"]["filename"] == str(certs.server_cert)


def test_upstreams_use_mtls_when_grpc_tls_is_configured(tmp_path: Path, certs: Certs) -> None:
    s = settings(
        tmp_path,
        grpc_tls_cert_file=str(certs.server_cert),
        grpc_tls_key_file=str(certs.server_key),
        grpc_tls_ca_file=str(certs.ca),
    )
    path, config = render(s, tmp_path)
    assert "transport_socket" not in filter_chain(config)  # the listener stays plaintext
    for name in SERVICE_CLUSTERS:
        socket = clusters(config)[name]["transport_socket"]
        context = socket["typed_config"]
        assert context["@type"] == TLS_TYPES + "UpstreamTlsContext", name
        common = context["common_tls_context"]
        assert common["alpn_protocols"] == ["h2"]
        assert common["tls_certificates"][0]["certificate_chain"] == {"filename": str(certs.server_cert)}
        assert common["validation_context"] == {"trusted_ca": {"filename": str(certs.ca)}}
        assert "sni" not in context
    validate_envoy_config(path)


def test_upstream_server_name_sets_sni_and_san_check(tmp_path: Path, certs: Certs) -> None:
    s = settings(
        tmp_path,
        grpc_tls_cert_file=str(certs.server_cert),
        grpc_tls_key_file=str(certs.server_key),
        grpc_tls_ca_file=str(certs.ca),
        grpc_tls_server_name="localhost",
    )
    path, config = render(s, tmp_path)
    context = clusters(config)["registry"]["transport_socket"]["typed_config"]
    assert context["sni"] == "localhost"
    assert context["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "localhost"}}
    ]
    validate_envoy_config(path)


def test_tls_everywhere_validates(tmp_path: Path, certs: Certs) -> None:
    s = settings(
        tmp_path,
        tls_cert_file=str(certs.server_cert),
        tls_key_file=str(certs.server_key),
        grpc_tls_cert_file=str(certs.server_cert),
        grpc_tls_key_file=str(certs.server_key),
    )
    path, config = render(s, tmp_path)
    assert "transport_socket" in filter_chain(config)
    assert all("transport_socket" in clusters(config)[n] for n in SERVICE_CLUSTERS)
    validate_envoy_config(path)


def test_envoy_validate_rejects_a_missing_certificate(tmp_path: Path, certs: Certs) -> None:
    s = settings(tmp_path, tls_cert_file=str(tmp_path / "nope.crt"), tls_key_file=str(certs.server_key))
    path, _ = render(s, tmp_path)
    with pytest.raises(ValueError, match=r"nope\.crt"):
        validate_envoy_config(path)


# Settings and ossa_runtime.tls -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        ({"tls_cert_file": "/x.crt"}, ["OSSA_TLS_CERT_FILE", "OSSA_TLS_KEY_FILE"]),
        ({"tls_key_file": "/x.key"}, ["OSSA_TLS_CERT_FILE", "OSSA_TLS_KEY_FILE"]),
        ({"grpc_tls_cert_file": "/x.crt"}, ["OSSA_GRPC_TLS_CERT_FILE", "OSSA_GRPC_TLS_KEY_FILE"]),
        ({"grpc_tls_ca_file": "/ca.crt"}, ["OSSA_GRPC_TLS_CA_FILE"]),
        ({"tls_cert_file": "/x", "tls_key_file": "/y", "tls_client_auth": "1"}, ["OSSA_TLS_CLIENT_AUTH"]),
        ({"tls_client_auth": "maybe"}, ["OSSA_TLS_CLIENT_AUTH"]),
    ],
)
def test_incomplete_tls_settings_name_the_variables(tmp_path: Path, env: dict[str, str], needles: list[str]) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(tmp_path, **env)
    for needle in needles:
        assert needle in str(caught.value)


def test_check_files_names_the_variable(tmp_path: Path, certs: Certs) -> None:
    missing = settings(tmp_path, grpc_tls_cert_file=str(tmp_path / "gone.crt"), grpc_tls_key_file=str(certs.server_key))
    with pytest.raises(SettingsError, match=r"OSSA_GRPC_TLS_CERT_FILE=.*gone\.crt.*cannot read"):
        tls.check_files(missing)
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    junk = settings(tmp_path, tls_cert_file=str(tmp_path / "junk.crt"), tls_key_file=str(certs.server_key))
    with pytest.raises(SettingsError, match=r"OSSA_TLS_CERT_FILE=.*not a PEM file"):
        tls.check_files(junk)
    tls.check_files(settings(tmp_path, tls_cert_file=str(certs.server_cert), tls_key_file=str(certs.server_key)))


def test_credentials_follow_the_settings(tmp_path: Path, certs: Certs) -> None:
    plain = settings(tmp_path)
    assert not tls.enabled(plain) and tls.server_credentials(plain) is None and tls.channel_credentials(plain) is None
    one_way = settings(tmp_path, grpc_tls_cert_file=str(certs.server_cert), grpc_tls_key_file=str(certs.server_key))
    assert tls.enabled(one_way) and not tls.mutual(one_way)
    assert isinstance(tls.server_credentials(one_way), grpc.ServerCredentials)
    mutual = one_way.replace(grpc_tls_ca_file=str(certs.ca), grpc_tls_server_name="localhost")
    assert tls.mutual(mutual) and isinstance(tls.channel_credentials(mutual), grpc.ChannelCredentials)
    assert ("grpc.ssl_target_name_override", "localhost") in tls.channel_options(mutual)
    assert tls.channel_options(plain.replace(grpc_tls_server_name="localhost")) == []


def test_client_credentials_errors_name_the_file(tmp_path: Path, certs: Certs) -> None:
    assert isinstance(tls.client_credentials(str(certs.ca)), grpc.ChannelCredentials)
    with pytest.raises(ValueError, match="both"):
        tls.client_credentials(str(certs.ca), cert_file=str(certs.client_cert))
    with pytest.raises(ValueError, match=r"missing\.pem"):
        tls.client_credentials(str(tmp_path / "missing.pem"))


# Clients: `ossa agent serve` flags, `ossa up`'s probes ---------------------------------------------


def test_agent_cli_tls_options(tmp_path: Path, certs: Certs) -> None:
    parser = build_parser()
    base = ["agent", "serve", "--name", "a", "--capability", "c", "--handler", "echo"]
    args = parser.parse_args(base)
    assert tls_options(args, settings(tmp_path), env={}) == {
        "tls": False,
        "tls_ca_file": None,
        "tls_cert_file": None,
        "tls_key_file": None,
    }
    from_env = tls_options(
        args,
        settings(tmp_path, tls_ca_file=str(certs.ca)),
        env={CLIENT_CERT_ENV: str(certs.client_cert), CLIENT_KEY_ENV: str(certs.client_key)},
    )
    assert from_env == {
        "tls": True,
        "tls_ca_file": str(certs.ca),
        "tls_cert_file": str(certs.client_cert),
        "tls_key_file": str(certs.client_key),
    }
    flags = parser.parse_args([*base, "--tls-ca", "/ca.pem", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"])
    assert tls_options(flags, settings(tmp_path, tls_ca_file=str(certs.ca)), env={})["tls_ca_file"] == "/ca.pem"
    assert tls_options(parser.parse_args([*base, "--tls"]), settings(tmp_path), env={})["tls"] is True


def test_up_dials_the_gateway_with_https_when_it_serves_tls(tmp_path: Path, certs: Certs) -> None:
    plain = build_plan(settings(tmp_path))
    assert plain.gateway_url.startswith("http://")
    secured = build_plan(settings(tmp_path, tls_cert_file=str(certs.server_cert), tls_key_file=str(certs.server_key)))
    assert secured.gateway_url == "https://127.0.0.1:13100"


async def test_http_probe_speaks_tls(tmp_path: Path, certs: Certs) -> None:
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(certs.server_cert, certs.server_key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await http_status("127.0.0.1", port, "/api/v1/health", ssl_context=readiness_tls()) == 200
    finally:
        server.close()
        await server.wait_closed()


def test_every_service_binds_with_the_tls_settings() -> None:
    """A service that binds without `tls.server_credentials(settings)` would stay plaintext (and
    fail `ossa up`'s TLS readiness probe) when gRPC TLS is configured."""
    root = Path(__file__).resolve().parents[4]
    binders = []
    for info in SERVICES:
        for path in sorted((root / info.package).glob("*.py")):
            text = path.read_text("utf-8")
            for call in re.findall(r"host\.bind\((?:[^()]|\([^()]*\))*\)", text):
                binders.append(path.name)
                assert "tls.server_credentials(settings)" in call, f"{path}: {call}"
    assert len(binders) >= 4
