"""The platform's A2A agent card, built from the real descriptor set."""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict

from gateway_http.card import PUBLIC_SERVICES, platform_card
from gateway_http.envoy_config.descriptor import descriptor_bytes
from ossa_runtime import a2a
from ossa_runtime.settings import Settings


def test_one_skill_per_public_service_tagged_with_its_operations() -> None:
    card = MessageToDict(platform_card(Settings.from_env({}), descriptor_bytes(), "1.2.3"))
    assert card["name"] == "OSSA Platform" and card["version"] == "1.2.3"
    assert card["url"] == "http://127.0.0.1:3100"
    assert [s["id"] for s in card["skills"]] == [name.rsplit(".", 1)[1] for name in PUBLIC_SERVICES]
    orchestrator = card["skills"][0]
    assert orchestrator["name"] == "Orchestrator"
    assert "POST /api/v1/orchestrate" in orchestrator["tags"] and orchestrator["description"]


def test_public_url_follows_the_gateway_settings() -> None:
    assert a2a.public_url(Settings.from_env({}, gateway_host="::1", gateway_port=8443)) == "http://[::1]:8443"
    assert a2a.public_url(Settings.from_env({}, public_url="https://x.example/")) == "https://x.example"
