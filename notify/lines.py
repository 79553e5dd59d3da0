"""Trunk lines: one global cap on concurrent outbound calls, shared by incidents and campaigns.

``async with lines.line(priority):`` waits for a free line; waiting dials are served by priority
(lower number first: emergencies before routine incidents before campaign notices), then in order of
arrival. The cap is never exceeded; a cancelled wait gives up its place without taking a line.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from twisted.internet.defer import CancelledError, Deferred

EMERGENCY, INCIDENT, CAMPAIGN = 0, 10, 20


class TrunkLines:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._waiting: list[tuple[int, int, Deferred]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, d in self._waiting if not d.called)

    @asynccontextmanager
    async def line(self, priority: int = INCIDENT) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self.in_use < self.capacity and not self.waiting:
            self._take()
            return
        d: Deferred = Deferred()
        heapq.heappush(self._waiting, (priority, next(self._order), d))
        try:
            await d  # _release hands the line over: in_use already counts us
        except CancelledError:
            if d.called and not isinstance(d.result, BaseException):  # pragma: no cover - raced
                self._release()
            raise

    def _take(self) -> None:
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def _release(self) -> None:
        self.in_use -= 1
        while self._waiting:
            _, _, d = heapq.heappop(self._waiting)
            if not d.called:  # skip waits that were cancelled
                self._take()
                d.callback(None)
                return
