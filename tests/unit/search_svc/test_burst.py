"""When the indexer holds for a burst of writes (search_svc/burst.py), on a clock of the test's own."""

from __future__ import annotations

from search_svc.burst import Burst


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def writes(burst: Burst, clock: Clock, per_second: int, seconds: float) -> None:
    for _ in range(int(per_second * seconds)):
        clock.now += 1.0 / per_second
        burst.note()


def test_a_few_writes_are_no_burst() -> None:
    clock = Clock()
    burst = Burst(rate=20, window=1.0, longest=30.0, clock=clock)
    assert not burst.holding()
    writes(burst, clock, per_second=5, seconds=3)
    assert not burst.holding()


def test_a_burst_is_held_while_it_lasts_then_released() -> None:
    clock = Clock()
    burst = Burst(rate=20, window=1.0, longest=30.0, clock=clock)
    writes(burst, clock, per_second=200, seconds=2)
    assert burst.holding()
    clock.now += 1.01  # a second without writes: the burst is over
    assert not burst.holding()


def test_a_burst_that_never_ends_is_held_no_longer_than_longest() -> None:
    clock = Clock()
    burst = Burst(rate=20, window=1.0, longest=30.0, clock=clock)
    writes(burst, clock, per_second=100, seconds=1)
    assert burst.holding()
    writes(burst, clock, per_second=100, seconds=29.5)
    assert burst.holding()
    writes(burst, clock, per_second=100, seconds=1)
    assert not burst.holding()  # 30 s held: indexing goes on beside the writes
    writes(burst, clock, per_second=100, seconds=10)
    assert not burst.holding()  # still the same burst
    clock.now += 2.0
    writes(burst, clock, per_second=100, seconds=1)
    assert burst.holding()  # a new burst after a pause is held again
