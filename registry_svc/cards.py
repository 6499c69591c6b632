"""An agent's A2A agent card (GET /api/v1/agents/{id}/card): one skill per capability.

What the card says comes from the registration: the name, version and type; `metadata.description`
(else a sentence from the type); optional per-capability detail in `metadata.skills`:
`{"summarize": {"name": "Summarize", "description": "...", "examples": ["..."], "tags": ["..."]}}`;
and `metadata.tags`, added to every skill's tags.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict

from ossa.registry.v1 import card_pb2
from ossa.registry.v1 import registry_pb2 as pb
from ossa_runtime import a2a
from ossa_runtime.settings import Settings


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str | int | float)] if isinstance(value, list) else []


def agent_card(settings: Settings, agent: pb.Agent) -> card_pb2.AgentCard:
    """The A2A card of a registered agent."""
    metadata: dict[str, Any] = MessageToDict(agent.metadata) if agent.HasField("metadata") else {}
    kind = pb.AgentType.Value.Name(agent.type)
    description = metadata.get("description")
    if not isinstance(description, str) or not description.strip():
        description = f"A {kind} agent on the OSSA Platform: {', '.join(agent.capabilities) or 'no capabilities yet'}."
    card = a2a.card(
        settings,
        name=agent.name,
        description=description,
        url=f"{a2a.public_url(settings)}/api/v1/agents/{agent.id}",
        version=agent.version,
    )
    skills = metadata.get("skills")
    details: dict[str, Any] = skills if isinstance(skills, dict) else {}
    common_tags = [kind, *_strings(metadata.get("tags"))]
    for capability in agent.capabilities:
        found = details.get(capability)
        detail: dict[str, Any] = found if isinstance(found, dict) else {}
        card.skills.append(
            card_pb2.AgentSkill(
                id=capability,
                name=str(detail.get("name") or capability),
                description=str(detail.get("description") or f"{capability}, as a task of {agent.name}"),
                tags=list(dict.fromkeys([*common_tags, capability, *_strings(detail.get("tags"))])),
                examples=_strings(detail.get("examples")),
                inputModes=[a2a.JSON],
                outputModes=[a2a.JSON],
            )
        )
    return card
