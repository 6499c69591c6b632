"""Filtered searches: post-filter the nearest points, filtered HNSW only when that comes up short.

The fake shard ranks ids 0, 1, 2, ... nearest first; `passing` are the ids the filter lets through; the
filtered graph walk answers `graph` (what a real walk reaching only part of the passing points
would find)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import qdrant_edge as qe

from ossa_search.stores.edge_filtered import MAX_LIMIT, WIDE, filtered_search, merge

CONDITION = qe.Filter(must=[qe.FieldCondition("source", match=qe.MatchValue("wiki"))])
VECTOR = [1.0, 0.0]


@dataclass
class Scored:
    id: int  # qdrant point ids are UUIDs or unsigned integers
    score: float


class FakeShard:
    def __init__(self, points: int, passing: set[int], graph: list[int]) -> None:
        self.points = [Scored(i, 1.0 - i / 1000) for i in range(points)]  # 0 nearest
        self.passing = passing
        self.graph = graph
        self.calls: list[str] = []

    async def search(self, request: qe.QueryRequest) -> list[Scored]:
        conditions = list(request.filter.must or []) if request.filter is not None else []
        among = [c for c in conditions if isinstance(c, qe.HasIdCondition)]
        if not conditions:
            self.calls.append("nearest")
            assert request.with_payload is False  # only ids are needed from the wide step
            return self.points[: request.limit]
        if among:
            self.calls.append("among")
            ids = {int(i) for i in among[0].point_ids}
            return [p for p in self.points if p.id in ids and p.id in self.passing][: request.limit]
        self.calls.append("graph")
        return [p for p in self.points if p.id in self.graph][: request.limit]


async def test_enough_passing_points_among_the_nearest_answer_without_the_filtered_walk() -> None:
    shard = FakeShard(1000, passing=set(range(0, 1000, 2)), graph=[])
    found = await filtered_search(shard.search, VECTOR, 10, CONDITION)
    assert [p.id for p in found] == list(range(0, 20, 2))
    assert shard.calls == ["nearest", "among"]


async def test_too_few_passing_points_nearby_falls_back_to_the_filtered_walk_and_merges() -> None:
    # 1 and 3 pass near the query; the rest of the passing points are far (500 on).
    passing = {1, 3} | set(range(500, 1000))
    shard = FakeShard(1000, passing=passing, graph=[3, *range(500, 520)])
    found = await filtered_search(shard.search, VECTOR, 5, CONDITION)
    # 1 was missed by the walk (an island) but found among the nearest; 3 found by both, once.
    assert [p.id for p in found] == [1, 3, 500, 501, 502]
    assert shard.calls == ["nearest", "among", "graph"]


async def test_a_collection_smaller_than_the_wide_step_is_answered_by_it_alone() -> None:
    shard = FakeShard(12, passing={2, 7}, graph=[2])
    found = await filtered_search(shard.search, VECTOR, 10, CONDITION)
    assert [p.id for p in found] == [2, 7]  # every point was looked at: nothing else passes
    assert shard.calls == ["nearest", "among"]


async def test_an_empty_collection_is_answered_after_one_look() -> None:
    shard = FakeShard(0, passing=set(), graph=[])
    assert await filtered_search(shard.search, VECTOR, 10, CONDITION) == []
    assert shard.calls == ["nearest"]


async def test_a_large_limit_goes_straight_to_the_filtered_walk() -> None:
    shard = FakeShard(1000, passing=set(range(1000)), graph=list(range(1000)))
    found = await filtered_search(shard.search, VECTOR, MAX_LIMIT + 1, CONDITION)
    assert len(found) == MAX_LIMIT + 1
    assert shard.calls == ["graph"]


async def test_the_wide_step_asks_for_wide_times_the_limit() -> None:
    seen: list[int] = []
    shard = FakeShard(1000, passing=set(range(1000)), graph=[])

    async def search(request: qe.QueryRequest) -> list[Scored]:
        seen.append(request.limit)
        return await shard.search(request)

    await filtered_search(search, VECTOR, 7, CONDITION)
    assert seen == [7 * WIDE, 7]


@pytest.mark.parametrize("wanted", [True, False])
async def test_payloads_are_asked_for_only_when_the_caller_wants_them(wanted: bool) -> None:
    asked: list[bool] = []
    shard = FakeShard(1000, passing={1, 3} | set(range(500, 1000)), graph=list(range(500, 520)))

    async def search(request: qe.QueryRequest) -> list[Scored]:
        asked.append(request.with_payload)
        return await shard.search(request)

    await filtered_search(search, VECTOR, 5, CONDITION, with_payload=wanted)
    assert shard.calls == ["nearest", "among", "graph"]
    assert asked == [False, wanted, wanted]  # the wide step never needs them


def test_merge_keeps_each_point_once_with_its_best_score_best_first() -> None:
    first = [Scored(1, 0.9), Scored(2, 0.5)]
    second = [Scored(2, 0.6), Scored(3, 0.7), Scored(1, 0.8)]
    assert [(p.id, p.score) for p in merge(first, second, 3)] == [(1, 0.9), (3, 0.7), (2, 0.6)]
    assert [p.id for p in merge(first, second, 1)] == [1]
