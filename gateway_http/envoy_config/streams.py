"""Long-lived streams get clusters of their own, so that they do not skew the balancing of calls.

Envoy's least-request balancer counts an open stream (an agent's Work stream, a Heartbeat stream:
open for hours) as a request in flight on its worker for as long as it lasts. With one cluster for
both, every unary call went to the worker holding *fewer* streams. With one agent and two
orchestrator workers, every StartExecution landed on the worker without the agent's Work stream:
no start could lease its task to the idle agent in its own statement (sync match), and every task
waited for a pub/sub hop and a claim on the other worker.

So the streaming methods of a service that runs as several workers route to `<cluster>_streams`, a
copy of its cluster (same endpoints, health checks, outlier detection and balancing) whose counts
are streams only: streams spread over the workers among themselves, calls among themselves.
"""

from __future__ import annotations

import copy
from typing import Any

# The clusters whose streaming methods go to a copy of their own (services with several workers).
STREAM_CLUSTERS = {"orchestrator": "orchestrator_streams", "registry": "registry_streams"}


def stream_cluster(cluster: str) -> str:
    """The cluster a streaming method of `cluster` is routed to."""
    return STREAM_CLUSTERS.get(cluster, cluster)


def add_stream_clusters(config: dict[str, Any]) -> dict[str, Any]:
    """Append the stream copy of each cluster in STREAM_CLUSTERS that the config has (in place)."""
    clusters: list[dict[str, Any]] = config["static_resources"]["clusters"]
    have = {c["name"] for c in clusters}
    for cluster in list(clusters):
        name = STREAM_CLUSTERS.get(cluster["name"])
        if name is None or name in have:
            continue
        clone = copy.deepcopy(cluster)
        clone["name"] = name
        if "load_assignment" in clone:
            clone["load_assignment"]["cluster_name"] = name
        clusters.append(clone)
    return config
