"""Trunk lines: the cap is never exceeded, priority first, cancelled waits give their place up."""

import random

from twisted.internet import task
from twisted.internet.defer import Deferred, ensureDeferred

from notify.lines import CAMPAIGN, EMERGENCY, INCIDENT, TrunkLines


def test_cap_holds_under_random_load_and_priority_wins():
    clock = task.Clock()
    lines = TrunkLines(10)
    rng = random.Random(1)
    started: list[tuple[int, int]] = []
    over = []

    async def call(n: int, priority: int) -> None:
        async with lines.line(priority):
            started.append((n, priority))
            if lines.in_use > lines.capacity:
                over.append(lines.in_use)
            await task.deferLater(clock, rng.uniform(1, 5), lambda: None)

    calls = [ensureDeferred(call(n, rng.choice((EMERGENCY, INCIDENT, CAMPAIGN)))) for n in range(200)]
    assert lines.in_use == 10 and lines.waiting == 190 and len(started) == 10
    clock.pump([0.5] * 2000)
    assert all(d.called for d in calls) and over == [] and lines.peak == 10 and lines.in_use == 0
    later = started[10:]
    assert len(later) == 190
    # Among the queued calls, every emergency started before any campaign call.
    order = [p for _, p in later]
    assert max(i for i, p in enumerate(order) if p == EMERGENCY) < min(i for i, p in enumerate(order) if p == CAMPAIGN)


def test_cancelled_wait_gives_up_its_place():
    lines = TrunkLines(1)
    hold = Deferred()

    async def holder():
        async with lines.line():
            await hold

    async def waiter(log, name):
        async with lines.line():
            log.append(name)

    log: list[str] = []
    ensureDeferred(holder())
    first = ensureDeferred(waiter(log, "first"))
    ensureDeferred(waiter(log, "second"))
    first.cancel()
    first.addErrback(lambda f: None)
    hold.callback(None)
    assert log == ["second"] and lines.in_use == 0
