"""The position recorder: bus consumer that keeps last positions live and writes history in batches.

Each report message is acknowledged only after the batch holding it is committed, so a crash loses
nothing (the bus redelivers; duplicate report ids are ignored on insert). Batches close at
``batch_size`` reports or after ``flush_interval`` seconds, whichever comes first.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred

from alarms.report import Report, iso_utc

log = logging.getLogger(__name__)

QUEUE = "watchline.positions"


def live_position(report: Report) -> dict[str, Any]:
    fix = report.fix
    return {
        "time": iso_utc(report.time), "lat": fix.lat if fix else None, "lon": fix.lon if fix else None,
        "speed_kmh": fix.speed_kmh if fix else None, "course": fix.course if fix else None,
        "altitude": fix.altitude if fix else None, "valid": bool(fix and fix.valid),
        "alarms": list(report.alarms), "protocol": report.protocol, "terminal_id": report.terminal_id,
    }


class PositionRecorder(service.Service):
    name = "position-recorder"

    def __init__(self, db, bus, live, clock: Any, batch_size: int = 500, flush_interval: float = 0.5) -> None:
        self.db = db
        self.bus = bus
        self.live = live
        self.clock = clock
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._batch: list[tuple[Report, Deferred]] = []
        self._timer = None
        self._consumer = None

    def startService(self):
        super().startService()
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self._consumer = await self.bus.start_consuming(
            self._on_report, "report.#", queue=QUEUE, prefetch=self.batch_size * 2)

    def stopService(self):
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop_consuming()
        await self._flush()

    def _on_report(self, routing_key: str, message: dict[str, Any]) -> Deferred:
        report = Report.from_message(message)
        done: Deferred = Deferred()
        self._batch.append((report, done))
        if len(self._batch) >= self.batch_size:
            self._flush_soon(0)
        elif self._timer is None:
            self._timer = self.clock.callLater(self.flush_interval, self._flush_soon, None)
        return done

    def _flush_soon(self, _delay) -> None:
        Deferred.fromCoroutine(self._flush())

    async def _flush(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        reports = [r for r, _ in batch]
        try:
            await self.db.positions.add_many(reports)
            newest: dict[str, Report] = {}
            for r in reports:
                if r.plate and r.fix is not None and (r.plate not in newest or r.time >= newest[r.plate].time):
                    newest[r.plate] = r
            for plate, r in newest.items():
                await self.live.set_position(plate, live_position(r))
        except Exception as e:
            log.error("position batch of %d failed; the bus will redeliver: %s", len(batch), e)
            for _, d in batch:
                d.errback(e)
            return
        for _, d in batch:
            d.callback(None)
