"""`ossa up --canary`: the Istio canary of istio/, run for real on one machine.

One gateway process per DestinationRule subset of `ossa-gateway` (the first on the usual ports,
the others on free ones), each reporting its subset's `version` label (GetHealth `version` is
`<package version>+<label>`, e.g. `0.1.9+green`), and Envoy's routes rewritten from the
VirtualService by gateway_http/envoy_config/canary.py: `canary: true` → v2, otherwise 90/10.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway_http.envoy_config.canary import (
    CanaryError,
    TrafficPolicy,
    apply_canary,
    load_policy,
    read_config,
    write_config,
)
from gateway_http.envoy_config.render import CONFIG_NAME
from ossa_cli.children import Component
from ossa_cli.embedded import command_prefix
from ossa_cli.plan import Plan
from ossa_cli.ports import PortClaim, free_ports
from ossa_cli.probes import all_of, connect_host, grpc_health, http_ok
from ossa_runtime.settings import PREFIX
from ossa_runtime.topology import GATEWAY

HOST = "ossa-gateway"


def default_istio_dir() -> Path:
    """istio/ of the source checkout this package runs from."""
    return Path(__file__).resolve().parent.parent / "istio"


@dataclass(frozen=True)
class CanaryProcess:
    subset: str
    label: str
    port: int
    metrics_port: int


def add_canary(plan: Plan, istio_dir: Path | None = None) -> list[CanaryProcess]:
    """Change `plan` to run one gateway per subset behind Envoy's translated routes; CanaryError if it cannot."""
    source = istio_dir or default_istio_dir()
    if not source.is_dir():
        raise CanaryError(f"{source}: no such directory (pass --istio-dir)")
    policy = load_policy(source, HOST)
    s = plan.settings
    services = next((stage for stage in plan.stages if any(c.name == GATEWAY.name for c in stage)), None)
    envoy = next((c for stage in plan.stages for c in stage if c.name == "envoy"), None)
    if services is None or envoy is None:
        raise CanaryError("the plan runs no gateway process or no Envoy")
    base = next(c for c in services if c.name == GATEWAY.name)
    subsets = list(policy.subsets)
    extra = free_ports(s.host if s.host not in ("0.0.0.0", "::") else "127.0.0.1", 2 * (len(subsets) - 1))
    procs = [CanaryProcess(subsets[0], policy.version_label(subsets[0]), s.gateway_grpc_port, s.gateway_metrics_port)]
    for i, subset in enumerate(subsets[1:]):
        procs.append(CanaryProcess(subset, policy.version_label(subset), extra[2 * i], extra[2 * i + 1]))

    base.name = f"gateway-{procs[0].subset}"
    base.env = _with_label(base.env, plan, procs[0])
    for proc in procs[1:]:
        services.append(_gateway_copy(plan, proc))
        plan.claims.append(PortClaim(f"gateway-{proc.subset}", s.host, proc.port, "gateway_grpc_port"))
        plan.claims.append(
            PortClaim(f"gateway-{proc.subset} metrics", s.host, proc.metrics_port, "gateway_metrics_port")
        )
    envoy.prepare = _rewrite_after(envoy.prepare, plan, policy, procs)
    return procs


def _overrides(proc: CanaryProcess) -> dict[str, str]:
    return {
        f"{PREFIX}GATEWAY_GRPC_PORT": str(proc.port),
        f"{PREFIX}GATEWAY_METRICS_PORT": str(proc.metrics_port),
        f"{PREFIX}VERSION_LABEL": proc.label,
    }


def _with_label(
    env: Callable[[], Mapping[str, str]] | None, plan: Plan, proc: CanaryProcess
) -> Callable[[], Mapping[str, str]]:
    def labelled() -> Mapping[str, str]:
        base = env() if env is not None else plan.service_env(GATEWAY.name)
        return {**base, **_overrides(proc)}

    return labelled


def _gateway_copy(plan: Plan, proc: CanaryProcess) -> Component:
    s = plan.settings
    host = connect_host(s.host)
    prefix = command_prefix(drop_root=False, die_with_parent=signal.SIGTERM)
    return Component(
        name=f"gateway-{proc.subset}",
        argv=lambda: [*prefix, plan.python, "-m", GATEWAY.package],
        log_path=plan.logs_dir / f"gateway-{proc.subset}.log",
        address=f"{s.host}:{proc.port}",
        ready=all_of(grpc_health(f"{host}:{proc.port}", settings=s), http_ok(host, proc.metrics_port, "/metrics")),
        env=lambda: {**plan.service_env(GATEWAY.name), **_overrides(proc)},
        stop_timeout=s.shutdown_grace_seconds + 5.0,
    )


def _rewrite_after(
    prepare: Callable[[], None] | None, plan: Plan, policy: TrafficPolicy, procs: list[CanaryProcess]
) -> Callable[[], None]:
    host = connect_host(plan.settings.host)
    targets = {p.subset: (host, p.port) for p in procs}

    def rewrite() -> None:
        if prepare is not None:
            prepare()
        path = plan.envoy_dir / CONFIG_NAME
        write_config(path, apply_canary(read_config(path), policy, targets))

    return rewrite
