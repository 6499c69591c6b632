"""Repeated REST reads answered by Envoy from memory: the HTTP cache in front of the transcoder.

Envoy's cache filter (envoy.filters.http.cache_v2, SimpleHttpCache; the older
envoy.filters.http.cache crashes Envoy 1.40 on its first hit) has these constraints, and this
layout is built around them:

* it never serves a request carrying `authorization`: on the cacheable routes a Lua filter
  (CREDENTIAL_OUT) drops any client-sent `x-ossa-credential`, then moves `authorization` there;
* it stores nothing whose reply has a `vary` header (not implemented in 1.40), and its key is
  only host, path and query: the same filter appends the credential, percent-encoded, to the
  query string (`ossa_credential=...`, always last, so no client can choose another's key), so
  every credential has its own entries and a viewer is never given what was cached for an admin;
* on a miss it sends the request straight to a cluster, skipping the rest of the listener's
  filters (the transcoder included): misses go to an Envoy internal listener
  (`rest_cache_origin`) holding today's chain and routes, which restores `authorization` and
  transcodes as usual (ignoring the parameter), so the services authenticate and authorize every
  miss; the few requests the cache passes on (conditional GETs) get everything back
  (CREDENTIAL_IN) before the front's own transcoder;
* it stores only replies with a freshness lifetime, and counts ages in whole seconds: the
  internal listener adds `cache-control: max-age=1` and `age: 1` to every reply. With max-age=1
  alone an entry was seen served up to 1.5 s after the service produced it (Envoy's Date string
  lags by up to 0.5 s and ages are truncated); the `age: 1` makes Envoy drop each entry at the
  next whole second, so nothing is served more than MAX_AGE_SECONDS after the service produced
  it (measured: 1.002 s at worst, reads 4 ms apart for 12 s, one service call per second). A
  change, a revocation or a deletion shows within that bound. 401/403/5xx are never stored (not
  cacheable statuses); a 404 may be, for the same bound.

Bypasses, all answered by the services: a request with `x-ossa-consistency` (the token every
REST write returns, added by envoy/status.lua: read-your-writes), one with `cache-control:
no-cache` (the filter revalidates with the origin), and every route but CACHEABLE_METHODS.

The access log shows the path as sent (x-envoy-original-path) and the gRPC method without the
query, so the credential in the key is never logged.

`add_rest_cache(config, descriptor)` rewrites the rendered bootstrap (a dict) in place.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from google.api import annotations_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

CACHE_FILTER = "ossa.rest_cache"  # envoy.filters.http.cache_v2 behind a request matcher
CREDENTIAL_OUT = "ossa.credential_out"  # authorization -> x-ossa-credential and the key (front, cacheable routes)
CREDENTIAL_IN = "ossa.credential_in"  # x-ossa-credential -> authorization (before the transcoder)
CACHE_STATUS_FILTER = "ossa.cache_status"  # x-ossa-cache on the replies of the cacheable routes
HCM = "envoy.filters.network.http_connection_manager"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
ORIGIN = "rest_cache_origin"  # the internal listener and the cluster that reaches it
CREDENTIAL_HEADER = "x-ossa-credential"
CONSISTENCY_HEADER = "x-ossa-consistency"
CREDENTIAL_PARAM = "ossa_credential"
CACHE_STATUS_HEADER = "x-ossa-cache"
CACHE_HIT = "cache.response_from_cache_filter"
MAX_AGE_SECONDS = 1  # the bound: how old a reply served from the cache may be
CACHE_CONTROL = f"max-age={MAX_AGE_SECONDS}"
# The GET methods whose REST replies are cached (full gRPC names).
CACHEABLE_METHODS = (
    "ossa.registry.v1.AgentRegistryService.ListAgents",
    "ossa.registry.v1.AgentRegistryService.GetAgent",
    "ossa.orchestrator.v1.OrchestratorService.ListWorkflows",
    "ossa.orchestrator.v1.OrchestratorService.GetWorkflow",
    "ossa.orchestrator.v1.OrchestratorService.ListExecutions",
    "ossa.orchestrator.v1.OrchestratorService.GetExecution",
    "ossa.orchestrator.v1.OrchestratorService.ListExecutionTasks",
)
# GETs that are long polls with this query parameter (orchestrator_svc/watch.py): not cached.
LONG_POLLS = {"ossa.orchestrator.v1.OrchestratorService.GetExecution": "wait"}
_FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
_HEADER_MUTATION = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
_HEADER_MUTATION_PER_ROUTE = _HEADER_MUTATION + "PerRoute"
_LUA = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
_OVERWRITE = "OVERWRITE_IF_EXISTS_OR_ADD"


def cacheable_paths(descriptor: bytes) -> dict[str, str]:
    """gRPC method name -> its google.api.http GET path template, for CACHEABLE_METHODS."""
    wanted = set(CACHEABLE_METHODS)
    found: dict[str, str] = {}
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptor).file:
        for service in file.service:
            for method in service.method:
                name = f"{file.package}.{service.name}.{method.name}"
                if name in wanted:
                    found[name] = method.options.Extensions[annotations_pb2.http].get
    missing = [m for m in CACHEABLE_METHODS if not found.get(m)]
    if missing:
        raise ValueError(f"the descriptor has no GET rule for cacheable method(s) {', '.join(missing)}")
    return found


def path_regex(template: str) -> str:
    """`/api/v1/agents/{agent_id}` -> `/api/v1/agents/[^/]+` (one path segment per variable)."""
    parts = re.split(r"(\{[^}]*\})", template)
    return "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)


def _set(header: str, source: str) -> dict[str, Any]:
    # An absent source header formats as "", and an empty value is not added.
    return {"append": {"header": {"key": header, "value": f"%REQ({source})%"}, "append_action": _OVERWRITE}}


# Front, cacheable routes, before the cache: `authorization` moves to x-ossa-credential (a client's
# own dropped first) and, percent-encoded, to the end of the query string: the cache has no Vary
# support (Envoy 1.40 stores nothing with `vary`) and keys on host, path and query only. Lua, not a
# header mutation: those cannot touch :path, and their query mutations decode and re-encode every
# parameter (a%00b became a NUL in :path). The path as sent is kept for the access log.
CREDENTIAL_OUT_LUA = f"""
local function encode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
function envoy_on_request(handle)
  local headers = handle:headers()
  local path = headers:get(":path")
  local credential = headers:get("authorization") or ""
  headers:remove("{CREDENTIAL_HEADER}")
  if credential ~= "" then
    headers:replace("{CREDENTIAL_HEADER}", credential)
    headers:remove("authorization")
  end
  headers:replace("x-envoy-original-path", path)
  local sep = string.find(path, "?", 1, true) and "&" or "?"
  headers:replace(":path", path .. sep .. "{CREDENTIAL_PARAM}=" .. encode(credential))
end
"""
# Front, after the cache, for the few cacheable-route requests it passes on (conditional GETs):
# everything back as the client sent it, before the transcoder.
CREDENTIAL_IN_LUA = f"""
function envoy_on_request(handle)
  local headers = handle:headers()
  local credential = headers:get("{CREDENTIAL_HEADER}")
  if credential ~= nil then
    headers:replace("authorization", credential)
    headers:remove("{CREDENTIAL_HEADER}")
  end
  local path = headers:get("x-envoy-original-path")
  if path ~= nil then
    headers:replace(":path", path)
  end
end
"""
# The origin (internal listener): `authorization` back; its transcoder ignores the key's parameter.
ORIGIN_CREDENTIAL_IN = [_set("authorization", CREDENTIAL_HEADER), {"remove": CREDENTIAL_HEADER}]
# Where a reply came from (every reply carries `age`, see the module docstring, so `age` does not
# tell): `cache.response_from_cache_filter` for a hit.
CACHE_STATUS = [
    {
        "append": {
            "header": {"key": CACHE_STATUS_HEADER, "value": "%RESPONSE_CODE_DETAILS%"},
            "append_action": _OVERWRITE,
        }
    }
]


def _lua(name: str, source: str) -> dict[str, Any]:
    """A Lua filter off by default; the cacheable routes enable it (`_enable_lua`)."""
    return {
        "name": name,
        "disabled": True,
        "typed_config": {"@type": _LUA, "source_codes": {name: {"inline_string": source}}},
    }


def _enable_lua(name: str) -> dict[str, Any]:
    return {"@type": _FILTER_CONFIG, "config": {"@type": _LUA + "PerRoute", "name": name}}


def _header_input(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
            "header_name": name,
        },
    }


def _predicate(header: str, match: dict[str, Any]) -> dict[str, Any]:
    return {"single_predicate": {"input": _header_input(header), "value_match": match}}


def cache_filter(descriptor: bytes) -> dict[str, Any]:
    """The cache, skipped for every request but a GET of a cacheable path without a consistency
    token (the cache filter has no per-route switch); misses go to the internal listener."""
    paths = "|".join(path_regex(t) for t in cacheable_paths(descriptor).values())
    cacheable = {
        "and_matcher": {
            "predicate": [
                _predicate(":method", {"exact": "GET"}),
                _predicate(":path", {"safe_regex": {"google_re2": {}, "regex": f"(?:{paths})(?:\\?.*)?"}}),
                {"not_matcher": _predicate(CONSISTENCY_HEADER, {"safe_regex": {"google_re2": {}, "regex": ".*"}})},
            ]
        }
    }
    skip = {
        "name": "skip",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"},
    }
    cache = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cache_v2.v3.CacheV2Config",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.cache_v2.simple_http_cache.v3.SimpleHttpCacheV2Config"
        },
        "override_upstream_cluster": ORIGIN,
    }
    return {
        "name": CACHE_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher",
            "xds_matcher": {
                "matcher_list": {"matchers": [{"predicate": {"not_matcher": cacheable}, "on_match": {"action": skip}}]}
            },
            "extension_config": {"name": "envoy.filters.http.cache_v2", "typed_config": cache},
        },
    }


def cache_routes(descriptor: bytes, timeout: str) -> list[dict[str, Any]]:
    """Front routes for the cacheable GETs (without a consistency token): the cache and the credential
    moves on. Requests the cache filter passes on (no-cache aside: no-store, ...) continue through the
    front chain, whose transcoder re-routes them by gRPC path, as every other REST call."""

    per_filter = {
        CREDENTIAL_OUT: _enable_lua(CREDENTIAL_OUT),
        CREDENTIAL_IN: _enable_lua(CREDENTIAL_IN),
        CACHE_STATUS_FILTER: {
            "@type": _FILTER_CONFIG,
            "config": {"@type": _HEADER_MUTATION_PER_ROUTE, "mutations": {"response_mutations": CACHE_STATUS}},
        },
    }
    routes = []
    for name, template in cacheable_paths(descriptor).items():
        if name in LONG_POLLS:  # never cached; the transcoder routes it by gRPC path (its own timeout)
            wait = {"query_parameters": [{"name": LONG_POLLS[name], "present_match": True}]}
            match = {"safe_regex": {"regex": path_regex(template)}, **wait}
            routes.append({"name": f"long-poll:{name}", "match": match, "route": {"cluster": ORIGIN, "timeout": "0s"}})
        headers = [
            {"name": ":method", "string_match": {"exact": "GET"}},
            {"name": CONSISTENCY_HEADER, "present_match": True, "invert_match": True},
        ]
        routes.append(
            {
                "name": f"cache:{name}",
                "match": {"safe_regex": {"regex": path_regex(template)}, "headers": headers},
                "route": {"cluster": ORIGIN, "timeout": timeout},
                "typed_per_filter_config": copy.deepcopy(per_filter),
            }
        )
    return routes


def _hcm(listener: dict[str, Any]) -> dict[str, Any]:
    for chain in listener.get("filter_chains", []):
        for flt in chain.get("filters", []):
            if flt.get("name") == HCM:
                manager: dict[str, Any] = flt["typed_config"]
                return manager
    raise ValueError(f"listener {listener.get('name')!r} has no HTTP connection manager")


def origin_listener(front: dict[str, Any]) -> dict[str, Any]:
    """The internal listener: a copy of the front connection manager (today's chain and routes),
    with `authorization` restored first and the freshness headers the cache needs on every reply."""
    manager = copy.deepcopy(front)
    manager["stat_prefix"] = ORIGIN
    manager.pop("access_log", None)  # the front listener logs the request once
    manager["use_remote_address"] = False  # keep the client's x-forwarded-for as the front set it
    # The front checked the client's headers against the limit; the key and the copy of the path
    # added since must not turn a request near it into a 431.
    manager["max_request_headers_kb"] = 4 * int(manager.get("max_request_headers_kb", 60))
    for flt in manager["http_filters"]:
        if flt["name"] == TRANSCODER:  # the key's parameter is not a field of any request
            flt["typed_config"]["ignored_query_parameters"] = [CREDENTIAL_PARAM]
    manager["http_filters"] = [
        {
            "name": CREDENTIAL_IN,
            "typed_config": {"@type": _HEADER_MUTATION, "mutations": {"request_mutations": ORIGIN_CREDENTIAL_IN}},
        },
        *manager["http_filters"],
    ]
    routes = manager["route_config"]
    routes["name"] = ORIGIN
    for vhost in routes["virtual_hosts"]:
        vhost["response_headers_to_add"] = [
            {"header": {"key": "cache-control", "value": CACHE_CONTROL}, "append_action": _OVERWRITE},
            {"header": {"key": "age", "value": "1"}, "append_action": _OVERWRITE},
        ]
    return {
        "name": ORIGIN,
        "internal_listener": {},
        "filter_chains": [{"filters": [{"name": HCM, "typed_config": manager}]}],
    }


def origin_cluster() -> dict[str, Any]:
    endpoint = {"endpoint": {"address": {"envoy_internal_address": {"server_listener_name": ORIGIN}}}}
    return {
        "name": ORIGIN,
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": ORIGIN, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def add_rest_cache(config: dict[str, Any], descriptor: bytes, *, timeout: str) -> dict[str, Any]:
    """Put the cache in front of the first listener's chain and add the internal origin listener."""
    resources = config["static_resources"]
    front_listener = resources["listeners"][0]
    front = _hcm(front_listener)
    origin = origin_listener(front)
    front["http_filters"] = [
        {"name": CACHE_STATUS_FILTER, "disabled": True, "typed_config": {"@type": _HEADER_MUTATION}},
        _lua(CREDENTIAL_OUT, CREDENTIAL_OUT_LUA),
        cache_filter(descriptor),
        _lua(CREDENTIAL_IN, CREDENTIAL_IN_LUA),
        *front["http_filters"],
    ]
    routes = front["route_config"]["virtual_hosts"][0]["routes"]
    # After the files Envoy answers itself (OpenAPI, console), before the routes by gRPC path.
    at = max((i + 1 for i, r in enumerate(routes) if "direct_response" in r), default=0)
    routes[at:at] = cache_routes(descriptor, timeout)
    resources["listeners"].append(origin)
    resources["clusters"].append(origin_cluster())
    extension = {
        "name": "envoy.bootstrap.internal_listener",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"
        },
    }
    config.setdefault("bootstrap_extensions", []).append(extension)
    return config
