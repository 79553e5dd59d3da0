"""The live rescue fleet of one process: where each rescue truck is and whether it can be dispatched.

``RescueFleet`` keeps a ``geo.nearest.RescueFleetIndex`` of the ``kind=rescue`` vehicles. Every
process that answers "nearest free truck" or watches work-order sites needs the whole fleet, so it
consumes ``report.#`` on a transient queue of its own (not the workers' competing queue) and updates
the index on every report of a rescue truck. At start it loads the trucks, their availability and
last positions (the newest of the database's and the live state's). Availability lives in the
database (``db.rescue``); every change is published as ``fleet.truck.<availability>`` and every
process applies those events, so their indexes follow each other; a refresh every ``refresh``
seconds also picks up new trucks and changed skills and repairs a missed event.

A truck enters service (``available``) on its first position, as the fleet-import contract says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from twisted.application import service
from twisted.internet import task
from twisted.internet.defer import Deferred

from alarms.report import iso_utc
from crm.rescue import LastFix, RescueTruck
from geo.geodesy import distance_m
from geo.nearest import Availability, NearbyTruck, RescueFleetIndex, TruckPosition

log = logging.getLogger(__name__)

# The report subscription's prefetch. Every report reaches every such process and nearly all are
# dropped at once (not a truck), so one unacknowledged report at a time would make RabbitMQ wait a
# round trip per report: ~275-330 us each against ~75 us with 256 (10k reports, RabbitMQ on
# 127.0.0.1). The callback is synchronous, so reports are still handled in order, and ``_place``
# drops an older fix anyway.
REPORT_PREFETCH = 256
# Called with (plate, lat, lon, fix time in POSIX seconds) on every accepted truck position.
PositionListener = Callable[[str, float, float, float], None]


@dataclass(frozen=True)
class TruckState:
    """A truck as the dispatch desk shows it: stored availability and live position."""

    truck: RescueTruck
    position: TruckPosition | None
    age_s: float | None
    stale: bool

    def to_json(self) -> dict[str, Any]:
        t, p = self.truck, self.position
        return {
            "plate": t.plate, "skills": list(t.skills), "availability": t.availability,
            "work_order_id": t.work_order_id, "changed_at": t.changed_at, "changed_by": t.changed_by,
            "last_position": None if p is None else {
                "lat": p.lat, "lon": p.lon, "time": datetime.fromtimestamp(p.time, timezone.utc),
                "age_s": self.age_s, "stale": self.stale}}


def truck_message(truck: RescueTruck) -> dict[str, Any]:
    """The ``fleet.truck.<availability>`` event body."""
    return {"event": truck.availability, "truck": {
        "plate": truck.plate, "availability": truck.availability, "work_order_id": truck.work_order_id,
        "skills": list(truck.skills), "changed_by": truck.changed_by,
        "changed_at": iso_utc(truck.changed_at) if truck.changed_at else None}}


def _posix(text: str) -> float:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


class RescueFleet(service.Service):
    name = "rescue-fleet"

    def __init__(self, db, bus, live, clock, average_speed_kmh: float = 40.0, max_position_age: float = 900.0,
                 refresh: float = 60.0) -> None:
        self.db = db
        self.bus = bus
        self.live = live
        self.clock = clock
        self.speed_ms = average_speed_kmh / 3.6
        self.max_position_age = max_position_age
        self.refresh_interval = refresh
        self.index = RescueFleetIndex(average_speed_kmh)
        self._trucks: dict[str, RescueTruck] = {}
        self._entering: set[str] = set()  # plates whose first position is being put in service
        self._listeners: list[PositionListener] = []
        self._consumers: list[Any] = []
        self._refresher: task.LoopingCall | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def startService(self):
        super().startService()
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        await self.refresh(with_positions=True)
        self._consumers.append(await self.bus.start_consuming(self._on_report, "report.#", prefetch=REPORT_PREFETCH))
        self._consumers.append(await self.bus.start_consuming(self._on_truck_event, "fleet.truck.#"))
        self._refresher = task.LoopingCall(lambda: Deferred.fromCoroutine(self._refresh_logged()))
        self._refresher.clock = self.clock
        self._refresher.start(self.refresh_interval, now=False)
        log.info("rescue fleet ready: %d trucks, %d with a position; following their reports", len(self._trucks),
                 len(self.index))

    def stopService(self):
        super().stopService()
        if self._refresher is not None and self._refresher.running:
            self._refresher.stop()
        consumers, self._consumers = self._consumers, []
        return Deferred.fromCoroutine(self._stop(consumers))

    @staticmethod
    async def _stop(consumers) -> None:
        for consumer in consumers:
            await consumer.stop_consuming()

    def add_listener(self, listener: PositionListener) -> None:
        self._listeners.append(listener)

    # -- queries ------------------------------------------------------------------------------
    def nearest(self, lat: float, lon: float, k: int = 5, max_km: float | None = None,
                capability: str | None = None, include_stale: bool = False) -> list[NearbyTruck]:
        """The k nearest available trucks (exact geodesic distance); positions older than
        ``max_position_age`` are left out, or flagged ``stale`` with ``include_stale``."""
        return self.index.nearest(lat, lon, k, now=self.clock.seconds(), max_km=max_km, capability=capability,
                                  max_age_s=self.max_position_age, include_stale=include_stale)

    def position(self, plate: str) -> TruckPosition | None:
        return self.index.get(plate)

    def distance_eta(self, plate: str, lat: float, lon: float) -> tuple[float | None, float | None]:
        """Geodesic distance from the truck's last position to (lat, lon) and the ETA at the average speed."""
        p = self.index.get(plate)
        if p is None:
            return None, None
        d = distance_m(p.lat, p.lon, lat, lon)
        return d, d / self.speed_ms

    def truck(self, plate: str) -> RescueTruck | None:
        return self._trucks.get(plate)

    async def state(self) -> list[TruckState]:
        """Every rescue truck: availability as stored now, position as this process last heard it."""
        now = self.clock.seconds()
        out = []
        for truck in await self.db.rescue.trucks():
            p = self.index.get(truck.plate)
            age = None if p is None else max(0.0, now - p.time)
            out.append(TruckState(truck, p, age, age is not None and age > self.max_position_age))
        return out

    # -- changes ------------------------------------------------------------------------------
    async def set_availability(self, plate: str, availability: str, actor: str) -> RescueTruck:
        """A dispatcher's change (see ``db.rescue.set_availability`` for what is refused)."""
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        truck = await self.db.rescue.set_availability(plate, availability, actor, now)
        await self.changed(truck)
        return truck

    async def changed(self, truck: RescueTruck) -> None:
        """Apply a committed availability change here and tell every other process."""
        self.apply(truck)
        try:
            await self.bus.produce(f"fleet.truck.{truck.availability}", truck_message(truck))
        except Exception as e:  # committed; the others catch up at their next refresh
            log.warning("truck %s %s not published: %s", truck.plate, truck.availability, e)

    def apply(self, truck: RescueTruck) -> None:
        """Take ``truck``'s availability unless what is known here was changed later."""
        known = self._trucks.get(truck.plate)
        if known is not None and known.changed_at and truck.changed_at and known.changed_at > truck.changed_at:
            return
        self._trucks[truck.plate] = replace(truck, last_fix=None)
        if truck.availability is None:
            self.index.remove(truck.plate)
            return
        current = self.index.get(truck.plate)
        if current is not None:
            self.index.upsert(replace(current, availability=Availability(truck.availability),
                                      capabilities=frozenset(truck.skills)))

    async def refresh(self, with_positions: bool = False) -> None:
        """Reload the trucks (new ones, skills, availability); at start also their last positions."""
        trucks = await self.db.rescue.trucks(with_positions=with_positions)
        fixes: dict[str, LastFix] = {t.plate: t.last_fix for t in trucks if t.last_fix is not None}
        if with_positions and trucks:
            for plate, p in (await self.live.get_positions([t.plate for t in trucks])).items():
                if p.get("valid") and p.get("lat") is not None and p.get("lon") is not None:
                    t = datetime.fromisoformat(p["time"].replace("Z", "+00:00"))
                    if plate not in fixes or t > fixes[plate].time:
                        fixes[plate] = LastFix(t, p["lat"], p["lon"])
        for gone in set(self._trucks) - {t.plate for t in trucks}:  # no longer a rescue vehicle
            del self._trucks[gone]
            self.index.remove(gone)
        for truck in trucks:
            self.apply(truck)
            fix = fixes.get(truck.plate)
            if fix is not None:
                self._place(truck.plate, fix.lat, fix.lon, fix.time.timestamp())

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as e:  # keep what we have; the next refresh tries again
            log.error("rescue fleet not refreshed: %s", e)

    # -- bus ----------------------------------------------------------------------------------
    def _on_report(self, _routing_key: str, message: dict[str, Any]) -> None:
        # The first thing done with every report, so one dict look-up. (The routing key names the
        # terminal, not the plate, and the bus has decoded the body before this is called.)
        plate = message.get("plate")
        if plate not in self._trucks:
            return  # a customer's vehicle (nearly every report): nothing to do
        fix = message.get("fix")
        if not fix or not fix.get("valid"):
            return  # no usable position: the truck stays where it was last seen
        try:
            self._place(plate, fix["lat"], fix["lon"], _posix(message["time"]))
        except (KeyError, TypeError, ValueError) as e:
            log.warning("rescue truck %s: position not used: %s", plate, e)

    def _on_truck_event(self, _routing_key: str, message: dict[str, Any]) -> None:
        body = message.get("truck") or {}
        known = self._trucks.get(body.get("plate"))
        if known is None:
            return  # a truck this process does not know yet: the next refresh brings it
        changed_at = body.get("changed_at")
        self.apply(replace(known, availability=body.get("availability"), work_order_id=body.get("work_order_id"),
                           changed_by=body.get("changed_by"),
                           changed_at=datetime.fromisoformat(changed_at.replace("Z", "+00:00")) if changed_at else None))

    def _place(self, plate: str, lat: float, lon: float, time: float) -> None:
        """A truck's position, unless older than the one known (late or replayed reports)."""
        truck = self._trucks[plate]
        current = self.index.get(plate)
        if current is not None and current.time > time:
            return
        if truck.availability is None:
            if plate not in self._entering:
                self._entering.add(plate)
                Deferred.fromCoroutine(self._enter_service(plate, lat, lon, time))
            return
        self.index.upsert(TruckPosition(plate, lat, lon, time, Availability(truck.availability),
                                        frozenset(truck.skills)))
        for listener in self._listeners:
            try:
                listener(plate, lat, lon, time)
            except Exception:
                log.exception("position listener failed for truck %s", plate)

    async def _enter_service(self, plate: str, lat: float, lon: float, time: float) -> None:
        try:
            truck, entered = await self.db.rescue.enter_service(plate, datetime.fromtimestamp(
                self.clock.seconds(), timezone.utc))
            if truck is None:
                return
            if entered:
                await self.changed(truck)
            else:
                self.apply(truck)  # another process put it in service, or a dispatcher set it
            if plate in self._trucks and self._trucks[plate].availability is not None:
                self._place(plate, lat, lon, time)
        except Exception as e:  # the truck's next report tries again
            log.error("rescue truck %s not put in service: %s", plate, e)
        finally:
            self._entering.discard(plate)
