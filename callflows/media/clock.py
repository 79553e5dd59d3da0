"""The media clock: one timer that ticks every stream each 20 ms, scheduled against absolute time.

One timer for all calls keeps per-call cost to a method call per tick. Ticks are counted from the
start time, so lateness in one wake-up is caught up on the next (a few ticks at most, then skipped)
and the packet count never drifts from wall-clock time, however long the call.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger()
PTIME = 0.020


class Ticking(Protocol):
    def tick(self) -> None: ...


class MediaClock:
    def __init__(self, clock: IReactorTime, interval: float = PTIME, max_catch_up: int = 5):
        self._clock = clock
        self.interval = interval
        self.max_catch_up = max_catch_up
        self._streams: dict[Ticking, None] = {}
        self._call: IDelayedCall | None = None
        self._start = 0.0
        self.ticks = 0  # since the clock last (re)started
        self.total_ticks = 0
        self.skipped = 0
        self.max_lateness = 0.0  # seconds the worst wake-up came after its tick was due

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: Ticking) -> None:
        self._streams[stream] = None
        if self._call is None:
            self._start = self._clock.seconds()
            self.ticks = 0
            self._schedule()

    def remove(self, stream: Ticking) -> None:
        self._streams.pop(stream, None)
        if not self._streams and self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _schedule(self) -> None:
        due_at = self._start + (self.ticks + 1) * self.interval
        self._call = self._clock.callLater(max(0.0, due_at - self._clock.seconds()), self._run)

    def _run(self) -> None:
        self._call = None
        now = self._clock.seconds()
        lateness = now - (self._start + (self.ticks + 1) * self.interval)
        if lateness > self.max_lateness:
            self.max_lateness = lateness
        due = int((now - self._start) / self.interval + 1e-9) - self.ticks
        if due > self.max_catch_up:
            # Far behind (a blocked reactor): sending a long burst would not help anyone listening.
            self.skipped += due - self.max_catch_up
            self.ticks += due - self.max_catch_up
            due = self.max_catch_up
        for _ in range(due):
            self.ticks += 1
            self.total_ticks += 1
            for stream in tuple(self._streams):
                try:
                    stream.tick()
                except Exception:
                    log.failure("media tick failed; stream removed")
                    self._streams.pop(stream, None)
        if self._streams:
            self._schedule()
