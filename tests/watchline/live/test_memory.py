"""In-memory live state: the shared contract on a task.Clock, plus what only it promises."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.watchline.live import contract
from tests.watchline.mq.contract import drive
from watchline.live.base import LiveUnavailable
from watchline.live.memory import MemoryLiveState


def started(clock: Clock) -> MemoryLiveState:
    live = MemoryLiveState(clock)
    live.startService()
    return live


@pytest.mark.parametrize("check", contract.ALL, ids=lambda check: check.__name__)
def test_contract(check) -> None:
    clock = Clock()
    live = started(clock)
    drive(clock, check(contract.LiveHarness(live=live, other=live, clock=clock)))


def test_expiry_follows_the_injected_clock_exactly() -> None:
    clock = Clock()
    live = started(clock)
    drive(clock, live.set("k", 1, ttl=10))
    clock.advance(9.999)
    assert drive(clock, live.get("k")) == 1
    clock.advance(0.001)
    assert drive(clock, live.get("k")) is None


def test_expired_keys_do_not_pile_up() -> None:
    clock = Clock()
    live = started(clock)
    for n in range(1000):
        drive(clock, live.set(f"once-{n}", n, ttl=1))
    clock.advance(2)
    drive(clock, live.set("trigger", 0))  # writes purge what has expired
    assert len(live._values) == 1


def test_refuses_calls_before_start_and_after_stop() -> None:
    clock = Clock()
    live = MemoryLiveState(clock)
    with pytest.raises(LiveUnavailable):
        drive(clock, live.get("k"))
    live.startService()
    drive(clock, live.set("k", 1))
    live.stopService()
    with pytest.raises(LiveUnavailable):
        drive(clock, live.get("k"))
