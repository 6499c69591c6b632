"""gRPC servicer of ossa.registry.v1.AgentRegistryService: translate, validate, delegate."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc

from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_runtime import logging as ossa_logging
from ossa_runtime.auth.principal import can_act_as_agent, current_principal, require_agent
from ossa_runtime.errors import NotFound
from ossa_runtime.messages import agent_from_row, timestamp
from ossa_runtime.settings import Settings
from registry_svc import validation
from registry_svc.cards import agent_card
from registry_svc.heartbeats import HeartbeatWriter
from registry_svc.presence import Presence
from registry_svc.store import AgentStore, row_to_dict

log = logging.getLogger("ossa.registry")
Context = grpc.aio.ServicerContext[Any, Any]


class AgentRegistryServicer(registry_pb2_grpc.AgentRegistryServiceServicer):
    def __init__(self, settings: Settings, store: AgentStore, presence: Presence, beats: HeartbeatWriter) -> None:
        self.settings = settings
        self.store = store
        self.presence = presence
        self.beats = beats

    async def _publish(self, row: Any) -> None:
        try:
            await self.presence.register(row_to_dict(row))
        except Exception as err:  # PostgreSQL has the row; the Redis view heals on the next beat
            log.warning("could not publish agent to Redis", extra={"metadata": {"error": str(err)}})

    async def CreateAgent(self, request: pb.CreateAgentRequest, context: Context) -> pb.CreateAgentResponse:
        new = validation.parse_new_agent(request)
        require_agent("", new.name)  # an agent token registers only the agent its `sub` names
        row = await self.store.create(new)
        await self._publish(row)
        log.info("agent registered", extra={"metadata": {"agent_id": row["id"], "name": new.name}})
        return pb.CreateAgentResponse(agent=agent_from_row(row))

    async def ListAgents(self, request: pb.ListAgentsRequest, context: Context) -> pb.ListAgentsResponse:
        rows = await self.store.find(validation.parse_filter(request))
        return pb.ListAgentsResponse(agents=[agent_from_row(r) for r in rows])

    async def GetAgent(self, request: pb.GetAgentRequest, context: Context) -> pb.GetAgentResponse:
        row = await self.store.get(validation.parse_agent_id(request.agent_id))
        return pb.GetAgentResponse(agent=agent_from_row(row))

    async def GetAgentCard(self, request: pb.GetAgentCardRequest, context: Context) -> pb.GetAgentCardResponse:
        row = await self.store.get(validation.parse_agent_id(request.agent_id))
        return pb.GetAgentCardResponse(card=agent_card(self.settings, agent_from_row(row)))

    async def DeleteAgent(self, request: pb.DeleteAgentRequest, context: Context) -> pb.DeleteAgentResponse:
        agent_id = validation.parse_agent_id(request.agent_id)
        await self.store.delete(agent_id)
        self.beats.discard(agent_id)
        try:
            await self.presence.unregister(agent_id)
        except Exception as err:  # a stale Redis entry is caught by the PostgreSQL check on its next beat
            log.warning("could not remove agent from Redis", extra={"metadata": {"error": str(err)}})
        log.info("agent unregistered", extra={"metadata": {"agent_id": agent_id}})
        return pb.DeleteAgentResponse()

    async def Heartbeat(
        self, request_iterator: AsyncIterator[pb.HeartbeatRequest], context: Context
    ) -> AsyncIterator[pb.HeartbeatResponse]:
        allowed: set[str] = set()  # agents this stream's caller was checked for
        async for beat in request_iterator:
            agent_id = validation.parse_agent_id(beat.agent_id)
            if agent_id not in allowed:
                await self._check_agent_access(agent_id)
                allowed.add(agent_id)
                ossa_logging.annotate(agent_id=agent_id)
            status = validation.parse_beat_status(beat.status)
            load = validation.check_load(beat)
            now = datetime.now(UTC)
            if not await self.presence.beat(agent_id, now, status, load):
                await self._heal(agent_id)
                await self.presence.beat(agent_id, now, status, load)
            self.beats.add(agent_id, status, now)
            yield pb.HeartbeatResponse(
                agent_id=agent_id,
                received_at=timestamp(now),
                interval_seconds=self.settings.heartbeat_interval_seconds,
                ttl_seconds=self.settings.heartbeat_ttl_seconds,
            )

    async def _check_agent_access(self, agent_id: str) -> None:
        """An agent token beats only as the agent its `sub` names (by id, else by name)."""
        principal = current_principal()
        if can_act_as_agent(principal, agent_id):
            return
        try:
            name = (await self.store.get(agent_id))["name"]
        except NotFound:
            name = None
        require_agent(agent_id, name)

    async def _heal(self, agent_id: str) -> None:
        """Redis doesn't know the agent: ask PostgreSQL, and re-publish it if it exists."""
        try:
            row = await self.store.get(agent_id)
        except NotFound:
            raise NotFound(f"agent {agent_id} is not registered (deleted or never created)") from None
        await self.presence.register(row_to_dict(row))
