"""Istio's traffic rules, translated for the gateway's Envoy: the same canary locally as on Kubernetes.

`istio/` holds the VirtualService (header `canary: "true"` → subset v2, otherwise 90/10 between
v1 and v2) and the DestinationRule (subsets by the pods' `version` label) that Istio applies in a
cluster. `ossa up --canary` runs one process per subset and rewrites the rendered Envoy config
with `apply_canary`: the upstream cluster of the VirtualService's host is cloned once per subset
and every route to it becomes one route per VirtualService rule, in order (header matches, then
`weighted_clusters` with the rule's weights). `retarget_upstreams` points each upstream cluster at
the host in `OSSA_<SERVICE>_HOST` (containers, where the services are not on one host).

Only what the platform's rules use is translated (header matches: exact, prefix, regex; weighted
destinations); anything else is refused with an error naming the field, never silently dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway_http.envoy_config.addresses import cluster_type
from gateway_http.envoy_config.streams import STREAM_CLUSTERS, stream_cluster
from ossa_runtime.settings import Settings
from ossa_runtime.topology import SERVICES

VIRTUAL_SERVICE = "VirtualService"
DESTINATION_RULE = "DestinationRule"
ISTIO_NETWORKING = "networking.istio.io/"
HEADER_MATCH_KINDS = ("exact", "prefix", "regex")
# The Kubernetes Service (Istio host) of each Envoy upstream cluster.
HOST_OF_CLUSTER = {"gateway": "ossa-gateway", **{s.name: f"ossa-{s.name}" for s in SERVICES if s.name != "gateway"}}
HOST_OF_CLUSTER.update({stream: HOST_OF_CLUSTER[base] for base, stream in STREAM_CLUSTERS.items()})  # streams.py


class CanaryError(ValueError):
    """The Istio resources cannot be translated; the message names the file and field."""


@dataclass(frozen=True)
class Destination:
    subset: str
    weight: int


@dataclass(frozen=True)
class Rule:
    headers: tuple[tuple[str, str, str], ...]  # (header, kind, value), all must match
    destinations: tuple[Destination, ...]


@dataclass(frozen=True)
class TrafficPolicy:
    host: str  # the Istio host (Kubernetes Service name), e.g. ossa-gateway
    rules: tuple[Rule, ...]
    subsets: dict[str, dict[str, str]]  # subset name -> pod labels

    @property
    def cluster(self) -> str:
        """The Envoy upstream cluster serving the host."""
        for cluster, host in HOST_OF_CLUSTER.items():
            if host == self.host:
                return cluster
        raise CanaryError(f"hosts: {self.host!r} is none of the platform's services {sorted(HOST_OF_CLUSTER.values())}")

    @property
    def clusters(self) -> list[str]:
        """Every Envoy upstream cluster serving the host: its cluster and its streams' copy, if any."""
        return [c for c, host in HOST_OF_CLUSTER.items() if host == self.host]

    def version_label(self, subset: str) -> str:
        """What a subset's process reports as its version label (its pods' `version` label)."""
        return self.subsets[subset].get("version", subset)


# Reading istio/ ----------------------------------------------------------------------------------


def load_documents(paths: Iterable[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(path.read_text("utf-8")))
        except (OSError, yaml.YAMLError) as err:
            raise CanaryError(f"{path}: cannot read: {err}") from None
        for doc in docs:
            if isinstance(doc, dict):
                yield path, doc


def load_policy(istio_dir: Path, host: str = "ossa-gateway") -> TrafficPolicy:
    """The VirtualService and DestinationRule for `host` in the YAML files of `istio_dir`."""
    files = sorted(Path(istio_dir).glob("*.yaml"))
    if not files:
        raise CanaryError(f"{istio_dir}: no *.yaml files")
    vs: tuple[Path, dict[str, Any]] | None = None
    dr: tuple[Path, dict[str, Any]] | None = None
    for path, doc in load_documents(files):
        if not str(doc.get("apiVersion", "")).startswith(ISTIO_NETWORKING):
            continue
        spec = doc.get("spec") or {}
        if doc.get("kind") == VIRTUAL_SERVICE and host in (spec.get("hosts") or []):
            vs = (path, doc)
        elif doc.get("kind") == DESTINATION_RULE and spec.get("host") == host:
            dr = (path, doc)
    if vs is None:
        raise CanaryError(f"{istio_dir}: no VirtualService for host {host!r}")
    if dr is None:
        raise CanaryError(f"{istio_dir}: no DestinationRule for host {host!r}")
    subsets = parse_subsets(dr[0], dr[1])
    rules = parse_rules(vs[0], vs[1], host)
    for i, rule in enumerate(rules):
        for j, dest in enumerate(rule.destinations):
            if dest.subset not in subsets:
                raise CanaryError(
                    f"{vs[0]}: spec.http[{i}].route[{j}].destination.subset: {dest.subset!r} is not a subset of the "
                    f"DestinationRule in {dr[0]} ({sorted(subsets)})"
                )
    return TrafficPolicy(host, tuple(rules), subsets)


def parse_subsets(path: Path, doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    subsets: dict[str, dict[str, str]] = {}
    for i, subset in enumerate((doc.get("spec") or {}).get("subsets") or []):
        name = subset.get("name") if isinstance(subset, dict) else None
        labels = subset.get("labels") if isinstance(subset, dict) else None
        if not isinstance(name, str) or not name:
            raise CanaryError(f"{path}: spec.subsets[{i}].name: a subset needs a name")
        if not isinstance(labels, dict) or not labels:
            raise CanaryError(f"{path}: spec.subsets[{i}].labels: a subset needs pod labels")
        if name in subsets:
            raise CanaryError(f"{path}: spec.subsets[{i}].name: {name!r} is defined twice")
        subsets[name] = {str(k): str(v) for k, v in labels.items()}
    if not subsets:
        raise CanaryError(f"{path}: spec.subsets: no subsets")
    return subsets


def parse_rules(path: Path, doc: dict[str, Any], host: str) -> list[Rule]:
    http = (doc.get("spec") or {}).get("http")
    if not isinstance(http, list) or not http:
        raise CanaryError(f"{path}: spec.http: no HTTP routes")
    rules = []
    for i, entry in enumerate(http):
        where = f"{path}: spec.http[{i}]"
        extra = sorted(set(entry) - {"name", "match", "route"})
        if extra:
            raise CanaryError(f"{where}: {', '.join(extra)} cannot be translated to the local Envoy")
        matches = entry.get("match") or [{}]
        if len(matches) != 1:
            raise CanaryError(f"{where}.match: only one match block per route is translated")
        headers = []
        for name, cond in (matches[0].get("headers") or {}).items():
            kinds = [k for k in HEADER_MATCH_KINDS if k in (cond or {})]
            if len(kinds) != 1 or len(cond) != 1:
                raise CanaryError(
                    f"{where}.match[0].headers.{name}: use exactly one of {', '.join(HEADER_MATCH_KINDS)}"
                )
            headers.append((str(name).lower(), kinds[0], str(cond[kinds[0]])))
        other = sorted(set(matches[0]) - {"headers", "name"})
        if other:
            raise CanaryError(f"{where}.match[0]: {', '.join(other)} cannot be translated (only headers)")
        rules.append(Rule(tuple(headers), tuple(_destinations(where, entry.get("route"), host))))
    return rules


def _destinations(where: str, route: Any, host: str) -> list[Destination]:
    if not isinstance(route, list) or not route:
        raise CanaryError(f"{where}.route: no destinations")
    out = []
    for j, item in enumerate(route):
        dest = (item or {}).get("destination") or {}
        if dest.get("host") != host:
            raise CanaryError(f"{where}.route[{j}].destination.host: {dest.get('host')!r}, expected {host!r}")
        subset = dest.get("subset")
        if not isinstance(subset, str) or not subset:
            raise CanaryError(f"{where}.route[{j}].destination.subset: missing")
        weight = item.get("weight", 100 if len(route) == 1 else None)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise CanaryError(f"{where}.route[{j}].weight: {weight!r} must be an integer from 0 to 100")
        out.append(Destination(subset, weight))
    total = sum(d.weight for d in out)
    if total != 100:
        raise CanaryError(f"{where}.route: the weights add up to {total}, not 100")
    return out


# Rewriting the rendered Envoy config -------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(Path(path).read_text("utf-8"))
    return config


def write_config(path: Path, config: dict[str, Any]) -> None:
    text = "# Rendered by gateway_http/envoy_config/canary.py from the template's output; do not edit.\n"
    text += yaml.safe_dump(config, sort_keys=False, width=1000)
    tmp = path.with_name(f".{path.name}.canary.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


def _clusters(config: dict[str, Any]) -> list[dict[str, Any]]:
    clusters: list[dict[str, Any]] = config["static_resources"]["clusters"]
    return clusters


def _routes(config: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Every virtual host's route list, in place."""
    for listener in config["static_resources"]["listeners"]:
        for chain in listener.get("filter_chains", []):
            for flt in chain.get("filters", []):
                for vhost in flt.get("typed_config", {}).get("route_config", {}).get("virtual_hosts", []):
                    yield vhost["routes"]


def _set_endpoint(cluster: dict[str, Any], host: str, port: int) -> None:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
    cluster["load_assignment"] = {"cluster_name": cluster["name"], "endpoints": [{"lb_endpoints": [endpoint]}]}
    cluster["type"] = cluster_type([host])


def retarget_upstreams(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Point each upstream cluster at its service's `OSSA_<SERVICE>_HOST`, where one is set."""
    by_name = {c["name"]: c for c in _clusters(config)}
    for info in SERVICES:
        host = str(getattr(settings, info.host_field))
        if not host:
            continue
        for name in {info.name, stream_cluster(info.name)} & by_name.keys():  # the streams' copy too
            _set_endpoint(by_name[name], host, info.port(settings))
    return config


def apply_canary(config: dict[str, Any], policy: TrafficPolicy, targets: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """Clone the host's clusters per subset (`targets`: subset -> its process's address) and split their routes."""
    clusters = _clusters(config)
    by_name = {c["name"]: c for c in clusters}
    if policy.cluster not in by_name:
        raise CanaryError(f"the Envoy config has no cluster {policy.cluster!r}")
    missing = sorted(set(policy.subsets) - set(targets))
    if missing:
        raise CanaryError(f"no process for subset(s) {', '.join(missing)}")
    for base_name in [c for c in policy.clusters if c in by_name]:  # the streams' copy too (streams.py)
        for subset in policy.subsets:
            clone = copy.deepcopy(by_name[base_name])
            clone["name"] = subset_cluster(base_name, subset)
            _set_endpoint(clone, *targets[subset])
            clusters.append(clone)
        for routes in _routes(config):
            routes[:] = [new for route in routes for new in _split(route, base_name, policy)]
    return config


def subset_cluster(cluster: str, subset: str) -> str:
    return f"{cluster}-{subset}"


def _split(route: dict[str, Any], cluster: str, policy: TrafficPolicy) -> list[dict[str, Any]]:
    action = route.get("route")
    if not isinstance(action, dict) or action.get("cluster") != cluster:
        return [route]
    out = []
    for rule in policy.rules:
        new = copy.deepcopy(route)
        match = new["match"]
        headers = list(match.get("headers", [])) + [_header(*h) for h in rule.headers]
        if headers:
            match["headers"] = headers
        new_action = dict(action)
        del new_action["cluster"]
        live = [d for d in rule.destinations if d.weight > 0]
        if len(live) == 1:
            new_action["cluster"] = subset_cluster(cluster, live[0].subset)
        else:
            weighted = [{"name": subset_cluster(cluster, d.subset), "weight": d.weight} for d in live]
            new_action["weighted_clusters"] = {"clusters": weighted}
        new["route"] = new_action
        out.append(new)
    return out


def _header(name: str, kind: str, value: str) -> dict[str, Any]:
    matcher: dict[str, Any] = {"safe_regex": {"regex": value}} if kind == "regex" else {kind: value}
    return {"name": name, "string_match": matcher}
