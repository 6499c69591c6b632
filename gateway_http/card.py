"""The platform's own A2A agent card (GET /.well-known/agent-card.json): one skill per public API
service, described by the service's proto comment, tagged with its REST operations."""

from __future__ import annotations

from google.api import annotations_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

from ossa.registry.v1 import card_pb2
from ossa_runtime import a2a
from ossa_runtime.settings import Settings

# The services a client outside uses, in the order of the card (the gateway's own is health).
PUBLIC_SERVICES = (
    "ossa.orchestrator.v1.OrchestratorService",
    "ossa.registry.v1.AgentRegistryService",
    "ossa.search.v1.SearchService",
    "ossa.monitoring.v1.MonitoringService",
)
_SERVICE = 6  # FileDescriptorProto.service, in source_code_info paths


def _comments(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Full service name -> its leading proto comment."""
    out: dict[str, str] = {}
    for file in fds.file:
        for location in file.source_code_info.location:
            if len(location.path) == 2 and location.path[0] == _SERVICE:
                service = file.service[location.path[1]]
                out[f"{file.package}.{service.name}"] = " ".join(location.leading_comments.split())
    return out


def platform_card(settings: Settings, descriptor: bytes, version: str) -> card_pb2.AgentCard:
    """The card of the platform itself, from the proto descriptor set (gen/ossa/ossa.binpb)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor)
    comments = _comments(fds)
    base = a2a.public_url(settings)
    card = a2a.card(
        settings,
        name="OSSA Platform",
        description="Registers agents, runs workflows of tasks across them with leases and heartbeats, "
        "and watches them. Every skill is a REST API; the OpenAPI document describes each call.",
        url=base,
        version=version,
    )
    services = {f"{f.package}.{s.name}": s for f in fds.file for s in f.service}
    for name in PUBLIC_SERVICES:
        service = services.get(name)
        if service is None:
            continue
        operations = []
        for method in service.method:
            rule = method.options.Extensions[annotations_pb2.http]
            verb = rule.WhichOneof("pattern")
            if verb and verb != "custom":
                operations.append(f"{verb.upper()} {getattr(rule, verb)}")
        card.skills.append(
            card_pb2.AgentSkill(
                id=name.rsplit(".", 1)[1],
                name=name.rsplit(".", 1)[1].removesuffix("Service"),
                description=comments.get(name, ""),
                tags=operations,
                inputModes=[a2a.JSON],
                outputModes=[a2a.JSON],
            )
        )
    return card
