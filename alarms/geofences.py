"""Server-side geofence crossings: every report's position against every fence, alarms once per crossing.

Owns the alarm engine's geofence stage: the fence index in use (loaded from ``db.fences`` and swapped
whole when fences change — a ``fences.changed`` bus message reloads at once, a poll of the store's
version every few seconds catches anything missed) and each vehicle's inside-set, the fences it is
counted inside, kept in live state (``geofence:inside:<plate>``) so that it survives a restart and is
shared by every worker.

Per report with a valid fix: one index query (an STRtree: 10,000 fences cost about what 3 do) and the
new inside-set, with hysteresis on exit (``geo.fences.FenceTracker``). When nothing changed — nearly
always — that is all in one process, whose local copy *is* the state; with several workers it costs one
live-state read, because another worker may have handled this vehicle's previous report (with no fences
at all, nothing is read). A change is applied under the vehicle's geofence lock, re-read first, and each
crossing is raised (through the engine: a ``geofence_enter``/``geofence_exit`` event alarm with
``fence_id``/``fence_name`` in its extras, so rules can classify by fence, and a ``geofence`` timeline
entry linking the incident to the fence) before the new set is written: a failure leaves the old set,
and the next report finds the crossing again — raised at least once, never lost. Crossings also go on
the live stream as ``fleet.geofence_enter`` / ``fleet.geofence_exit``.

A vehicle with no stored set (new, or live state lost) takes its first position as a baseline without
events: after a restart of the embedded in-memory live state, thousands of cars parked inside their
owners' fences must not all "enter" them at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from alarms.report import Report, iso_utc
from alarms.vehicle_lock import wait_for_lock
from geo.fence_shapes import Fence, FenceId
from geo.fences import FenceIndex, FenceTracker, GeofenceEvent
from geo.geodesy import check_position

log = logging.getLogger(__name__)

CHANGED = "fences.changed"  # published by whoever writes fences (the API); every worker reloads
POLL_INTERVAL = 5.0  # seconds between checks of the store's version (a missed bus message, a script)
SCOPE_REFRESH = 60.0  # seconds between reloads of every vehicle's owner (its fence scope)
HYSTERESIS_M = 15.0  # an exit needs the position this far outside: GPS jitter on an edge does not flap
LOCK_TTL = 10.0  # seconds; applying a crossing takes milliseconds

# Raises one alarm for a report (the engine's ``_raise``); returns the incident (opened or joined, with an
# ``id``), or None when the rules ignore the alarm.
RaiseAlarm = Callable[[Report, str], Awaitable[Any]]


def inside_key(plate: str) -> str:
    return f"geofence:inside:{plate}"


@dataclass(frozen=True)
class Crossing:
    plate: str
    alarm: GeofenceEvent  # geofence_enter | geofence_exit
    fence_id: FenceId
    fence_name: str
    time: datetime
    lat: float
    lon: float

    def report(self, report: Report) -> Report:
        """The report as the alarm raised for this crossing: the crossing its only alarm, the fence in
        its extras, no terminal alarm serial (there is nothing to confirm on the terminal)."""
        return replace(report, alarms=(self.alarm,), raw_alarms={},
                       extras={**report.extras, "fence_id": self.fence_id, "fence_name": self.fence_name})

    def to_message(self, incident_id: int | None) -> dict[str, Any]:
        return {"event": self.alarm, "plate": self.plate, "fence": {"id": self.fence_id, "name": self.fence_name},
                "time": iso_utc(self.time), "lat": self.lat, "lon": self.lon, "incident_id": incident_id}


def _ids(value: Any) -> frozenset[FenceId] | None:
    if not isinstance(value, list) or any(isinstance(i, bool) or not isinstance(i, int | str) for i in value):
        return None
    return frozenset(value)


def _bad_fence(fence: Fence, error: ValueError) -> None:
    log.error("fence %r (%s) left out of the index: %s", fence.id, fence.name, error)


class GeofenceWatch:
    """The geofence stage. ``start`` loads the fences (before the engine consumes reports), ``check`` runs
    once per report in the engine's per-vehicle order, ``reload`` swaps in changed fences."""

    def __init__(self, db, bus, live, clock, raise_alarm: RaiseAlarm, desk=None,
                 hysteresis_m: float = HYSTERESIS_M, poll_interval: float = POLL_INTERVAL) -> None:
        self.db = db
        self.bus = bus
        self.live = live
        self.clock = clock
        self.raise_alarm = raise_alarm
        self.desk = desk  # publishes incident.updated for the fence link (optional)
        self.poll_interval = poll_interval
        self._index: FenceIndex | None = None  # None until the first load: no checks without fences
        self._version = None
        self._scratch = FenceTracker(FenceIndex(), hysteresis_m)  # the crossing rules, one vehicle at a time
        self._local: dict[str, frozenset[FenceId]] = {}  # one process (memory live state): the sets themselves
        self._scopes: dict[str, tuple[int, ...]] = {}  # plate -> (owner id,) or () — whose fences apply
        self._reloading = False
        self._again = False
        self._waiting: list[Deferred[bool]] = []
        self._consumer = None
        self._loops: list[task.LoopingCall] = []
        self.stats = {"checked": 0, "crossings": 0, "reloads": 0, "failed": 0}

    @property
    def index(self) -> FenceIndex | None:
        return self._index

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self._refresh_scopes()
        await self._reload_logged()  # a database down now: the poll loads the fences when it is back
        self._consumer = await self.bus.start_consuming(lambda _key, _msg: self._reload_logged(), CHANGED)
        for interval, work in ((self.poll_interval, self._reload_logged), (SCOPE_REFRESH, self._refresh_scopes)):
            loop = task.LoopingCall(lambda work=work: Deferred.fromCoroutine(work()))
            loop.clock = self.clock
            loop.start(interval, now=False)
            self._loops.append(loop)

    async def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop_consuming()

    async def reload(self) -> bool:
        """Load the fences again if the store's version moved; True when a new index was swapped in.
        A call made while a load runs asks for one more pass and waits for it: a burst of edits costs two
        loads. Unchanged fences keep their compiled form; the index is built off the reactor thread."""
        if self._reloading:
            self._again = True
            waiter: Deferred[bool] = Deferred()
            self._waiting.append(waiter)
            return await waiter
        self._reloading = True
        swapped = False
        outcome: bool | Failure = False
        try:
            while True:
                self._again = False
                version = await self.db.fences.version()  # read first: a write after it is seen next time
                if version != self._version:
                    fences = []
                    for stored in await self.db.fences.active():
                        try:
                            fences.append(stored.fence)
                        except ValueError as e:
                            log.error("fence %s not usable: %s", stored.id, e)
                    self._index = await self._build(self._index or FenceIndex(), fences)
                    self._version = version
                    self.stats["reloads"] += 1
                    swapped = True
                if not self._again:
                    outcome = swapped
                    return swapped
        except Exception:
            outcome = Failure()
            raise
        finally:
            self._reloading = False
            waiting, self._waiting = self._waiting, []
            for waiter in waiting:  # their pass was part of this one
                if isinstance(outcome, Failure):
                    waiter.errback(outcome)
                else:
                    waiter.callback(outcome)

    async def _reload_logged(self) -> None:
        try:
            if await self.reload():
                log.info("geofences reloaded: %d in force", len(self._index or ()))
        except Exception as e:  # the fences in force stay; the next poll tries again
            log.error("geofences not reloaded: %s", e)

    async def _build(self, base: FenceIndex, fences: list[Fence]) -> FenceIndex:
        pool = getattr(self.clock, "getThreadPool", None)  # a reactor; a test clock builds in place
        if pool is None:
            return base.reload(fences, on_error=_bad_fence)
        # ``base`` is immutable and only its compiled parts are reused, so reading it from a thread
        # while the reactor keeps querying it is safe.
        return await deferToThreadPool(self.clock, pool(), base.reload, fences, _bad_fence)

    async def _refresh_scopes(self) -> None:
        try:
            owners = await self.db.fences.vehicle_scopes()
        except Exception as e:  # keep the scopes we have
            log.error("vehicle fence scopes not refreshed: %s", e)
            return
        self._scopes = {plate: () if owner is None else (owner,) for plate, owner in owners.items()}

    async def _scope(self, plate: str) -> Collection[int]:
        scope = self._scopes.get(plate)
        if scope is None:  # a vehicle added since the last refresh
            owner = await self.db.fences.vehicle_scope(plate)
            scope = self._scopes[plate] = () if owner is None else (owner,)
        return scope

    # -- reports ------------------------------------------------------------------------------
    async def check(self, report: Report) -> list[Crossing]:
        """The crossings ``report`` makes, each raised. Never raises: a failure is logged, the vehicle's
        set stays as it was, and its next report finds the crossing again."""
        fix = report.fix
        if not self._index or report.plate is None or fix is None or not fix.valid:
            return []  # no fences (or not loaded yet): nothing to cross, and no live-state round trip
        try:
            lat, lon = check_position(fix.lat, fix.lon)
        except ValueError:
            return []
        self.stats["checked"] += 1
        try:
            return await self._check(report, report.plate, lat, lon)
        except Exception:
            self.stats["failed"] += 1
            log.exception("vehicle %s: geofence check failed", report.plate)
            return []

    async def _check(self, report: Report, plate: str, lat: float, lon: float) -> list[Crossing]:
        scope = await self._scope(plate)
        if self.live.shared:
            before = await self._read(plate)
        else:
            before = self._local.get(plate)
            if before is None:  # first report since this process started: what live state kept, if any
                before = await self._read(plate)
                if before is not None:
                    self._local[plate] = before
        crossings, after = self._step(report, plate, before, lat, lon, scope)
        if after == before:
            return []
        if not self.live.shared:  # the engine's per-vehicle chain already orders this vehicle's reports
            return await self._apply(report, plate, crossings, after)
        lock = await self._lock(plate)
        try:
            before = await self._read(plate)  # another worker may have moved it since
            crossings, after = self._step(report, plate, before, lat, lon, scope)
            return [] if after == before else await self._apply(report, plate, crossings, after)
        finally:
            if not await self.live.release_lock(lock):
                log.warning("vehicle %s: the geofence lock expired while a crossing was applied", plate)

    def _step(self, report: Report, plate: str, before: frozenset[FenceId] | None, lat: float, lon: float,
              scope: Collection[int]) -> tuple[list[Crossing], frozenset[FenceId]]:
        index = self._index
        if before is None:  # no state: a baseline, no events
            return [], index.containing(lat, lon, scope)
        tracker = self._scratch
        tracker.swap(index)
        tracker.restore(plate, before)
        try:
            events = tracker.update(plate, lat, lon, scope)
            after = tracker.inside(plate)
        finally:
            tracker.forget(plate)
        crossings = []
        for fence_id, alarm in events:
            fence = index.get(fence_id)
            crossings.append(Crossing(plate, alarm, fence_id, fence.name if fence else str(fence_id), report.time,
                                      lat, lon))
        return crossings, after

    async def _apply(self, report: Report, plate: str, crossings: list[Crossing],
                     after: frozenset[FenceId]) -> list[Crossing]:
        raised = []
        for crossing in crossings:
            incident = await self.raise_alarm(crossing.report(report), crossing.alarm)
            if incident is not None:
                await self._link(incident.id, crossing)
            raised.append((crossing, None if incident is None else incident.id))
        await self.live.set(inside_key(plate), sorted(after, key=lambda i: (isinstance(i, str), i)))
        if not self.live.shared:
            self._local[plate] = after
        self.stats["crossings"] += len(crossings)
        for crossing, incident_id in raised:
            try:  # the live stream (dispatcher map): a missed event must not undo the crossing
                await self.bus.produce(f"fleet.{crossing.alarm}", crossing.to_message(incident_id))
            except Exception as e:
                log.warning("vehicle %s: %s not published: %s", plate, crossing.alarm, e)
        return crossings

    async def _link(self, incident_id: int, crossing: Crossing) -> None:
        verb = "entered" if crossing.alarm == "geofence_enter" else "left"
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        incident = await self.db.incidents.update(
            incident_id, "engine", "geofence", f"{verb} fence {crossing.fence_name} (#{crossing.fence_id})", now,
            {"fence_id": crossing.fence_id, "fence_name": crossing.fence_name, "event": crossing.alarm,
             "time": iso_utc(crossing.time), "lat": crossing.lat, "lon": crossing.lon})
        if self.desk is not None:
            await self.desk.publish("updated", incident)

    async def _read(self, plate: str) -> frozenset[FenceId] | None:
        value = await self.live.get(inside_key(plate))
        if value is None:
            return None
        ids = _ids(value)
        if ids is None:
            log.warning("vehicle %s: unreadable geofence state %r; taking a new baseline", plate, value)
        return ids

    async def _lock(self, plate: str):
        return await wait_for_lock(self.live, self.clock, f"geofence:vehicle:{plate}", LOCK_TTL,
                                   f"vehicle {plate}: geofence lock")
