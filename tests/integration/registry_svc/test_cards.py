"""A2A agent cards from the real registry (gRPC on loopback, real PostgreSQL and Redis)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_runtime.settings import Settings
from registry_svc.server import build_server
from tests import auth

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stub(settings: Settings) -> AsyncIterator[registry_pb2_grpc.AgentRegistryServiceStub]:
    host, port = await build_server(settings.replace(public_url="https://agents.example.org/"), port=0)
    await host.start()
    async with auth.channel(f"127.0.0.1:{port}") as channel:
        yield registry_pb2_grpc.AgentRegistryServiceStub(channel)
    await host.stop()


async def test_a_card_lists_one_skill_per_capability_with_the_metadata(
    stub: registry_pb2_grpc.AgentRegistryServiceStub,
) -> None:
    metadata = struct_pb2.Struct()
    metadata.update(
        {
            "description": "Reviews drafts for length and tone.",
            "tags": ["writing"],
            "skills": {"review.text": {"name": "Review text", "examples": ["Is this long enough?"]}},
        }
    )
    created = await stub.CreateAgent(
        pb.CreateAgentRequest(
            name=f"critic-{secrets.token_hex(3)}",
            type=pb.AgentType.critic,
            version="2.1.0",
            capabilities=["review.text", "score"],
            metadata=metadata,
        )
    )
    card = MessageToDict((await stub.GetAgentCard(pb.GetAgentCardRequest(agent_id=created.agent.id))).card)
    agent = created.agent
    assert card["protocolVersion"] == "0.3.0" and card["name"] == agent.name and card["version"] == "2.1.0"
    assert card["description"] == "Reviews drafts for length and tone."
    assert card["url"] == f"https://agents.example.org/api/v1/agents/{agent.id}"
    assert card["documentationUrl"] == "https://agents.example.org/api/v1/openapi.json"
    assert card["defaultInputModes"] == card["defaultOutputModes"] == ["application/json"]
    assert card["securitySchemes"]["bearer"]["scheme"] == "bearer"
    first, second = card["skills"]
    assert first == {
        "id": "review.text",
        "name": "Review text",
        "description": f"review.text, as a task of {agent.name}",
        "tags": ["critic", "writing", "review.text"],
        "examples": ["Is this long enough?"],
        "inputModes": ["application/json"],
        "outputModes": ["application/json"],
    }
    assert second["id"] == second["name"] == "score"


async def test_cards_of_unknown_or_bad_ids_name_the_problem(stub: registry_pb2_grpc.AgentRegistryServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAgentCard(pb.GetAgentCardRequest(agent_id="00000000-0000-4000-8000-000000000000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAgentCard(pb.GetAgentCardRequest(agent_id="nope"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "agent_id" in (err.value.details() or "")
