"""Render the gateway's Envoy bootstrap from the template in envoy/envoy.yaml (package `ossa_envoy`).

`render_envoy_config(settings, out_dir)` writes `out_dir/envoy.yaml` plus the files it points at
(the proto descriptor set, the OpenAPI document and the Lua status filter), so the directory is
self-contained and Envoy can be (re)started from it alone. The list of transcoded services and the
per-method routes (streaming methods, `response_body` unwrapping, success statuses) are computed from
the descriptor (gateway_http/envoy_config/descriptor.py):
adding a service to protos/ and regenerating gen/ is enough for Envoy to serve it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from string import Template

import yaml

from gateway_http.envoy_config.addresses import cluster_type, loopback
from gateway_http.envoy_config.cache import add_rest_cache
from gateway_http.envoy_config.console_routes import render_console
from gateway_http.envoy_config.descriptor import (
    DESCRIPTOR_NAME,
    OPENAPI_NAME,
    GrpcMethod,
    descriptor_bytes,
    envoy_descriptor,
    grpc_methods,
    openapi_bytes,
    ossa_services,
)
from gateway_http.envoy_config.streams import add_stream_clusters, stream_cluster
from gateway_http.envoy_config.tls import listener_transport_socket, upstream_transport_socket
from gateway_http.envoy_config.tracing import access_trace_id, collector_cluster, hcm_tracing
from gateway_http.openapi_tables import success_status
from ossa_runtime import limits
from ossa_runtime.settings import Settings

CONFIG_NAME = "envoy.yaml"
LUA_NAME = "status.lua"
RENDERED_HEADER = (
    "# Rendered by gateway_http/envoy_config/render.py from envoy/envoy.yaml (see its comments); do not edit.\n"
)

# Upstream response timeout for unary calls (REST and gRPC alike); streaming methods have none.
UNARY_TIMEOUT = "15s"
# Unary methods that may take longer, by path (each gets its own route with this timeout).
SLOW_METHODS = {
    "/ossa.search.v1.SearchService/Reindex": "600s",
    "/ossa.orchestrator.v1.OrchestratorService/GetExecution": "75s",  # ?wait= long polls (at most 60 s)
}
CONNECT_TIMEOUT = "1s"
# Retried only when the request cannot have reached the service (same as the template's routes).
# A retry goes to another worker of the service when it has several (not the one that just refused).
RETRY_POLICY = {
    "retry_on": "connect-failure,refused-stream",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 3,
}
# REST request bodies (413 beyond: the buffer filter, and the transcoder's internal buffers) and
# request headers (431 beyond), from ossa_runtime/limits.py; the transcoder's reply buffer.
MAX_REQUEST_BODY_BYTES = limits.HTTP_MAX_BODY_BYTES
MAX_REQUEST_HEADERS_KB = limits.HTTP_MAX_HEADERS_KB
MAX_RESPONSE_BODY_BYTES = 16 * 1024 * 1024

# Envoy's own error replies: HTTP status -> the gRPC code written in the error body, so that they
# read like the errors the services send through the transcoder (which maps gRPC -> HTTP the same
# way: NOT_FOUND 404, INVALID_ARGUMENT 400, UNAVAILABLE 503, ...). Anything else >= 400 is UNKNOWN.
HTTP_TO_GRPC: dict[int, int] = {
    400: 3,  # INVALID_ARGUMENT: bad JSON, bad enum value, unknown query parameter
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND: no route / no method for this verb and path
    409: 6,  # ALREADY_EXISTS
    413: 8,  # RESOURCE_EXHAUSTED: request body too large
    429: 8,  # RESOURCE_EXHAUSTED: rate limited
    431: 8,  # RESOURCE_EXHAUSTED: request headers (or URL) too large
    500: 13,  # INTERNAL
    501: 12,  # UNIMPLEMENTED
    502: 14,  # UNAVAILABLE: the upstream broke the connection
    503: 14,  # UNAVAILABLE: upstream down or overloaded
    504: 4,  # DEADLINE_EXCEEDED: upstream timeout
}
DEFAULT_GRPC_CODE = 2  # UNKNOWN
# Envoy's 404s all mean "no method for this verb and path" (the router has no route, or the
# transcoder cannot map the path): say which, as the request was sent.
NOT_FOUND_MESSAGE = "no route for %REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)% %PATH(NQ:ORIG_OR_PATH)%"
# Envoy's own words for these say nothing of the limit: name what is too large and how large it may be.
LIMIT_MESSAGES = {
    413: f"request body: must be at most {MAX_REQUEST_BODY_BYTES} bytes",
    431: f"request headers: must be at most {MAX_REQUEST_HEADERS_KB} KiB in all, the URL included",
}


# Rendering -------------------------------------------------------------------------------------


def _yaml(value: object) -> str:
    """A YAML flow scalar/sequence/mapping (JSON is valid YAML)."""
    return json.dumps(value)


def _endpoints(targets: Sequence[tuple[str, int]]) -> str:
    return _yaml(
        [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}} for host, port in targets]
    )


def _method_routes(methods: Iterable[GrpcMethod]) -> list[str]:
    """Exact-path routes ahead of the per-package prefix routes, for the methods that need one:
    streaming methods (no timeout), slow ones (SLOW_METHODS), and methods with Lua metadata
    (`response_body`, or a success status other than 200: `_lua_metadata`)."""
    routes = []
    for method in methods:
        lua = _lua_metadata(method)
        if not method.cluster or not (method.streaming or method.path in SLOW_METHODS or lua):
            continue
        route: dict[str, object] = {"match": {"path": method.path}, "route": _method_action(method)}
        if lua:
            route["metadata"] = {"filter_metadata": {"envoy.filters.http.lua": lua}}
        routes.append("- " + _yaml(route))
    return routes


def _method_action(method: GrpcMethod) -> dict[str, object]:
    """The route action: the method's cluster (its stream copy for a stream), no timeout for a stream."""
    cluster = method.cluster or ""  # _method_routes skips methods without one
    action: dict[str, object] = {"cluster": stream_cluster(cluster) if method.streaming else cluster}
    if method.streaming:  # streams.py: a stream is not counted with the calls
        action["timeout"] = "0s"
        action["idle_timeout"] = "0s"  # long-lived lease and heartbeat streams may be quiet for minutes
    else:
        action["timeout"] = SLOW_METHODS.get(method.path, UNARY_TIMEOUT)
        action["retry_policy"] = RETRY_POLICY
    return action


def _lua_metadata(method: GrpcMethod) -> dict[str, object]:
    """What envoy/status.lua reads from the method's route: `response_body` (unwrap that field)
    and `http_status` (the REST success status when not 200, gateway_http/openapi_tables.py)."""
    lua: dict[str, object] = {}
    if method.response_body and not method.server_streaming:
        lua["response_body"] = method.response_body
        if method.response_body_sole:
            lua["response_body_sole"] = True
    status = success_status(f"{method.service}.{method.name}")
    if status != 200:
        lua["http_status"] = status
    return lua


def _local_reply_mappers() -> list[str]:
    """One mapper per HTTP status in HTTP_TO_GRPC, then a catch-all for any other status >= 400.

    Every mapper skips gRPC clients: Envoy answers those with a trailers-only gRPC status. A
    request is from a REST client when its content-type is not application/grpc*, or when the
    transcoder has already rewritten it into a gRPC request (it then carries the original path).
    """
    not_grpc = {
        "or_filter": {
            "filters": [
                {
                    "header_filter": {
                        "header": {
                            "name": "content-type",
                            "string_match": {"prefix": "application/grpc"},
                            "invert_match": True,
                            "treat_missing_header_as_empty": True,
                        }
                    }
                },
                {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True}}},
            ]
        }
    }

    def status_is(op: str, code: int) -> dict[str, object]:
        comparison = {"op": op, "value": {"default_value": code, "runtime_key": f"ossa.local_reply.{code}"}}
        return {"status_code_filter": {"comparison": comparison}}

    def mapper(filters: list[dict[str, object]], grpc_code: int, message: str) -> str:
        body = {
            "json_format": {"code": grpc_code, "message": message, "details": []},
            "content_type": "application/json",
        }
        return "- " + _yaml({"filter": {"and_filter": {"filters": [not_grpc, *filters]}}, "body_format_override": body})

    messages = {404: NOT_FOUND_MESSAGE, **LIMIT_MESSAGES}
    lines = [
        mapper([status_is("EQ", http)], grpc, messages.get(http, "%LOCAL_REPLY_BODY%"))
        for http, grpc in HTTP_TO_GRPC.items()
    ]
    lines.append(mapper([status_is("GE", 400)], DEFAULT_GRPC_CODE, "%LOCAL_REPLY_BODY%"))
    return lines


def _substitute(template: str, values: dict[str, str], blocks: dict[str, list[str]]) -> str:
    """string.Template substitution; a block placeholder alone on its line gets one item per line
    at that line's indentation."""
    values = dict(values)
    for name, lines in blocks.items():
        match = re.search(rf"^([ \t]*)\${name}[ \t]*$", template, re.MULTILINE)
        if match is None:
            raise ValueError(f"template has no line holding only ${name}")
        values[name] = ("\n" + match.group(1)).join(lines)
    return Template(template).substitute(values)


def render_envoy_config(
    settings: Settings,
    out_dir: Path,
    *,
    targets: Mapping[str, Sequence[tuple[str, int]]] | None = None,
    descriptor: bytes | None = None,
) -> Path:
    """Write `out_dir/envoy.yaml` and the files it references; return the config's path.

    `targets` lists the processes of a service run as several workers, by name ("registry",
    "orchestrator"): Envoy balances requests over them (default: the settings' host and port);
    `descriptor` replaces the packaged FileDescriptorSet (tests).
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    descriptor = descriptor_bytes() if descriptor is None else descriptor
    openapi = openapi_bytes()
    template_dir = files("ossa_envoy")

    descriptor_path = out_dir / DESCRIPTOR_NAME
    openapi_path = out_dir / OPENAPI_NAME
    lua_path = out_dir / LUA_NAME
    _write_if_changed(descriptor_path, envoy_descriptor(descriptor))
    _write_if_changed(openapi_path, openapi)
    _write_if_changed(lua_path, template_dir.joinpath(LUA_NAME).read_bytes())

    upstream_host = loopback(settings.host)
    registry = _targets(targets, "registry", (settings.host, settings.registry_port))
    orchestrator = _targets(targets, "orchestrator", (settings.host, settings.orchestrator_port))
    services = ossa_services(descriptor)
    if not services:
        raise ValueError("the descriptor has no service in an ossa.* package")

    values = {
        "gateway_host": "127.0.0.1" if settings.gateway_host == "localhost" else settings.gateway_host,
        "gateway_port": str(settings.gateway_port),
        "admin_port": str(settings.envoy_admin_port),
        "upstream_host": upstream_host,
        "upstream_cluster_type": cluster_type([upstream_host]),
        "gateway_grpc_port": str(settings.gateway_grpc_port),
        "orchestrator_port": str(settings.orchestrator_port),
        "monitoring_port": str(settings.monitoring_port),
        "search_port": str(settings.search_port),
        "registry_cluster_type": cluster_type(h for h, _ in registry),
        "registry_endpoints": _endpoints(registry),
        "orchestrator_cluster_type": cluster_type(h for h, _ in orchestrator),
        "orchestrator_endpoints": _endpoints(orchestrator),
        "descriptor_path": _yaml(str(descriptor_path)),
        "openapi_path": _yaml(str(openapi_path)),
        "lua_path": _yaml(str(lua_path)),
        "services": _yaml(services),
        "unary_timeout": UNARY_TIMEOUT,
        "retry_policy": _yaml(RETRY_POLICY),
        "connect_timeout": CONNECT_TIMEOUT,
        "max_direct_response_bytes": str(max(1024 * 1024, 2 * len(openapi))),
        "max_request_body_bytes": str(MAX_REQUEST_BODY_BYTES),
        "max_request_headers_kb": str(MAX_REQUEST_HEADERS_KB),
        "max_response_body_bytes": str(MAX_RESPONSE_BODY_BYTES),
        "listener_tls": listener_transport_socket(settings),
        "upstream_tls": upstream_transport_socket(settings),
        "access_trace_id": access_trace_id(settings),
    }
    blocks = {
        "method_routes": _method_routes(grpc_methods(descriptor)),
        "console_routes": render_console(out_dir),  # /console: static files (console_routes.py)
        "local_reply_mappers": _local_reply_mappers(),
        "hcm_tracing": hcm_tracing(settings),
        "collector_cluster": collector_cluster(settings),
    }
    text = _substitute(template_dir.joinpath(CONFIG_NAME).read_text("utf-8"), values, blocks)
    # The REST read cache and its internal origin listener (gateway_http/envoy_config/cache.py).
    config = add_rest_cache(add_stream_clusters(yaml.safe_load(text)), descriptor, timeout=UNARY_TIMEOUT)
    text = RENDERED_HEADER + yaml.safe_dump(config, sort_keys=False, width=1000)
    config_path = out_dir / CONFIG_NAME
    _write_if_changed(config_path, text.encode("utf-8"))
    return config_path


def _targets(targets: Mapping[str, Sequence[tuple[str, int]]] | None, name: str,
             default: tuple[str, int]) -> list[tuple[str, int]]:  # fmt: skip
    """The endpoints of cluster `name`: its workers' addresses, or the one default address."""
    chosen = list((targets or {}).get(name) or [default])
    return [(loopback(host), port) for host, port in chosen]


def _write_if_changed(path: Path, data: bytes) -> None:
    """Atomic replace, skipped when the content is the same (a running Envoy reads these files)."""
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
