"""A2A agent cards (https://a2a-protocol.org): the parts every card of this platform shares.

The registry serves each agent's card (GET /api/v1/agents/{id}/card, registry_svc/cards.py) and the
gateway the platform's own (GET /.well-known/agent-card.json, gateway_http/card.py); both are the
proto message ossa.registry.v1.AgentCard, whose field names are A2A's JSON names.
"""

from __future__ import annotations

from ossa.registry.v1 import card_pb2 as pb
from ossa_runtime.settings import Settings

PROTOCOL_VERSION = "0.3.0"
JSON = "application/json"
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
BEARER = pb.SecurityScheme(
    type="http",
    scheme="bearer",
    bearerFormat="JWT",
    description="A platform JWT: `ossa token create`, or POST /api/v1/auth/login with an API key.",
)


def public_url(settings: Settings) -> str:
    """Where clients reach the gateway: OSSA_PUBLIC_URL, else the gateway's own address."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.gateway_host in WILDCARD_HOSTS else settings.gateway_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert_file else "http"
    return f"{scheme}://{host}:{settings.gateway_port}"


def card(settings: Settings, *, name: str, description: str, url: str, version: str) -> pb.AgentCard:
    """A card with this platform's provider, modes, security and documentation filled in (no skills)."""
    base = public_url(settings)
    out = pb.AgentCard(
        protocolVersion=PROTOCOL_VERSION,
        name=name,
        description=description,
        url=url,
        version=version,
        provider=pb.AgentProvider(organization="OSSA Platform", url=base),
        capabilities=pb.AgentCapabilities(streaming=True, pushNotifications=False, stateTransitionHistory=True),
        defaultInputModes=[JSON],
        defaultOutputModes=[JSON],
        documentationUrl=f"{base}/api/v1/openapi.json",
    )
    out.securitySchemes["bearer"].CopyFrom(BEARER)
    return out
