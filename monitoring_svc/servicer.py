"""gRPC servicer of ossa.monitoring.v1.MonitoringService: translate, validate, delegate."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from monitoring_svc import validation
from monitoring_svc.buckets import Bucket
from monitoring_svc.flush import now_micros
from monitoring_svc.ingest import Ingest, Tally
from monitoring_svc.query import MetricsQuery
from ossa.monitoring.v1 import monitoring_pb2 as pb
from ossa.monitoring.v1 import monitoring_pb2_grpc
from ossa_runtime.errors import InvalidArgument

log = logging.getLogger("ossa.monitoring")
Context = grpc.aio.ServicerContext[Any, Any]


def _bucket(bucket: Bucket) -> pb.MetricBucket:
    out = pb.MetricBucket(value=bucket.value, count=bucket.count)
    out.start.FromMicroseconds(bucket.start)
    return out


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(self, ingest: Ingest, query: MetricsQuery) -> None:
        self.ingest = ingest
        self.query = query

    async def PushMetrics(
        self, request_iterator: AsyncIterator[pb.PushMetricsRequest], context: Context
    ) -> pb.PushMetricsResponse:
        tally = Tally()
        messages = 0
        async for message in request_iterator:
            messages += 1
            if message.metrics:
                earlier = "; the earlier ones were accepted" if messages > 1 else ""
                where = f" (message {messages} of the stream{earlier})"
                await self.ingest.accept(message.metrics, tally, where)
        if tally.rejected:
            log.info(
                "metrics rejected",
                extra={"metadata": {"accepted": tally.accepted, "rejected": tally.rejected, "messages": messages}},
            )
        return pb.PushMetricsResponse(accepted=tally.accepted, rejected=tally.rejected, rejections=tally.messages())

    async def IngestMetrics(self, request: pb.IngestMetricsRequest, context: Context) -> pb.IngestMetricsResponse:
        if not request.metrics:
            raise InvalidArgument("metrics", "at least one point is required")
        tally = Tally()
        await self.ingest.accept(request.metrics, tally)
        return pb.IngestMetricsResponse(accepted=tally.accepted, rejected=tally.rejected, rejections=tally.messages())

    async def QueryMetrics(self, request: pb.QueryMetricsRequest, context: Context) -> pb.QueryMetricsResponse:
        now = now_micros()
        found = await self.query.run(validation.parse_query(request, now), now)
        return pb.QueryMetricsResponse(buckets=[_bucket(b) for b in found])
