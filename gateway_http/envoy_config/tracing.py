"""Envoy's part of a trace: its own span per request, exported to the same OTLP collector.

With an OTLP endpoint configured (OSSA_OTLP_ENDPOINT, and OSSA_TRACING_EXPORTER unset or
`otlp`), the HTTP connection manager gets an OpenTelemetry tracer: Envoy continues the
client's `traceparent` (or starts a trace), records an ingress span and sends the services a
`traceparent` naming it, so REST → Envoy → service → orchestrator → agent is one trace.
Without one, Envoy records nothing and passes the client's `traceparent` through unchanged (the
transcoder forwards request headers as gRPC metadata), so the services still continue it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway_http.envoy_config.addresses import cluster_type
from ossa_runtime.settings import Settings, SettingsError

CLUSTER = "otlp_collector"
SERVICE_NAME = "ossa-gateway"


def collector(settings: Settings) -> tuple[str, int, bool] | None:
    """(host, port, tls) of the OTLP/gRPC collector, or None when Envoy does not trace."""
    if settings.trace_exporter != "otlp":
        return None
    raw = settings.otlp_endpoint.strip()
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    if not parts.hostname or parts.scheme not in {"http", "https"}:
        raise SettingsError(f"OSSA_OTLP_ENDPOINT={raw!r}: use http://host:port (OTLP over gRPC)")
    tls = parts.scheme == "https" or not settings.otlp_insecure
    return parts.hostname, parts.port or 4317, tls


def access_trace_id(settings: Settings) -> str:
    """The access log's trace_id: Envoy's trace when it traces, else the client's `traceparent`'s."""
    return "%TRACE_ID%" if collector(settings) is not None else "%DYNAMIC_METADATA(ossa:trace_id)%"


def hcm_tracing(settings: Settings) -> list[str]:
    """The connection manager's `tracing` block (a comment when tracing is off)."""
    if collector(settings) is None:
        return ["# tracing: off (no OTLP endpoint configured; a client's traceparent still passes through)"]
    return [
        "tracing:",
        "  provider:",
        "    name: envoy.tracers.opentelemetry",
        "    typed_config:",
        '      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig',
        f"      grpc_service: {{envoy_grpc: {{cluster_name: {CLUSTER}}}, timeout: 2s}}",
        f"      service_name: {SERVICE_NAME}",
    ]


def collector_cluster(settings: Settings) -> list[str]:
    """The upstream cluster Envoy exports its spans to (a comment when tracing is off)."""
    target = collector(settings)
    if target is None:
        return ["# (no OTLP collector cluster: tracing is off)"]
    host, port, tls = target
    lines = [
        f"- name: {CLUSTER}",
        f"  type: {cluster_type([host])}",
        "  connect_timeout: 1s",
        "  dns_lookup_family: V4_PREFERRED",
        "  typed_extension_protocol_options:",
        "    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:",
        '      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        "      explicit_http_config: {http2_protocol_options: {}}",
        "  load_assignment:",
        f"    cluster_name: {CLUSTER}",
        "    endpoints:",
        "      - lb_endpoints:",
        f'          - endpoint: {{address: {{socket_address: {{address: "{host}", port_value: {port}}}}}}}',
    ]
    if tls:
        lines += [
            "  transport_socket:",
            "    name: envoy.transport_sockets.tls",
            "    typed_config:",
            '      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
            f"      sni: {host}",
        ]
    return lines
