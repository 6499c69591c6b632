"""The router's matcher: the search service's SearchAgents, called through its generated stub."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from orchestrator_svc.router import Candidate, Matcher, MatcherUnavailable
from ossa.search.v1 import search_pb2, search_pb2_grpc

TIMEOUT_SECONDS = 5.0
_RETRY_LATER = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def search_matcher(stub: search_pb2_grpc.SearchServiceStub) -> Matcher:
    async def match(query: str, agent_type: str | None, limit: int) -> Sequence[Candidate]:
        # enum fields take their value names (agent types are stored as those names)
        request = search_pb2.SearchAgentsRequest(query=query, limit=limit, type=agent_type or None)
        try:
            reply = await stub.SearchAgents(request, timeout=TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as err:
            if err.code() in _RETRY_LATER:
                raise MatcherUnavailable(f"{err.code().name}: {err.details()}") from err
            raise
        return [Candidate(m.agent.id, m.agent.name, m.score) for m in reply.results]

    return match
