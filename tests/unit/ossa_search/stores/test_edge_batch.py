"""SearchBatcher (qdrant-edge searches merged into query_batch calls) with a fake shard call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from ossa_search.stores.edge_batch import Results, SearchBatcher


class FakeShard:
    """Answers each request with [request]; a batch containing "bad" fails; calls take 10 ms."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    async def run(self, requests: Sequence[Any]) -> Results:
        self.calls.append(list(requests))
        await asyncio.sleep(0.01)
        if "bad" in requests:
            raise RuntimeError("bad request (test)")
        return [[r] for r in requests]


async def test_searches_arriving_together_share_a_call_and_get_their_own_answers() -> None:
    shard = FakeShard()
    batcher = SearchBatcher(shard.run, max_batch=4)  # type: ignore[arg-type]
    answers = await asyncio.gather(*(batcher.search(f"q{i}") for i in range(10)))  # type: ignore[arg-type]
    assert answers == [[f"q{i}"] for i in range(10)]
    assert [len(c) for c in shard.calls] == [4, 4, 2]  # queued before the first call: batches of <= 4


async def test_a_failing_search_fails_only_its_own_caller() -> None:
    shard = FakeShard()
    batcher = SearchBatcher(shard.run)  # type: ignore[arg-type]
    first = asyncio.create_task(batcher.search("first"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.search(q)) for q in ("a", "bad", "b")]  # type: ignore[arg-type]
    assert await first == ["first"]
    assert await rest[0] == ["a"] and await rest[2] == ["b"]
    with pytest.raises(RuntimeError, match="bad request"):
        await rest[1]
