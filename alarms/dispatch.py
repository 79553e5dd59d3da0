"""The dispatch desk: work orders that send a rescue truck to a site, and their life cycle.

``WorkOrderDesk.create`` takes an incident (site = where the alarm was raised, customer = its
vehicle and owner) or a standalone roadside-assistance call (site, kind, contact phone), assigns the
given truck or the nearest available one with the capability, and the truck's availability follows
the order: dispatched → en_route → on_site → available again when completed or cancelled.

Each change publishes ``dispatch.work_order.<status>`` and ``fleet.truck.<availability>``; an order
for an incident is linked on its timeline (created, on site, completed, cancelled), and the owner gets
the truck's plate and ETA through ``notices``. In processes that watch sites, a report of the
assigned truck within ``on_site_radius_m`` (geodesic) of the site sets ``on_site`` by itself: every
such process sees the report, and the storage's guarded transition lets exactly one of them do it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList

from alarms.desk import event_message
from alarms.report import iso_utc
from alarms.rescue_fleet import RescueFleet
from crm.fleet import masked_phone
from crm.rescue import RescueTruck, TruckBusyError
from crm.workorders import KINDS, NewWorkOrder, WorkOrder, WorkOrderStateError
from geo.geodesy import check_position, distance_m

log = logging.getLogger(__name__)

CANDIDATES = 5  # nearest trucks tried in turn when another desk takes one first
NOTICE_STOP_WAIT = 10.0  # seconds shutdown waits for customer notices still being sent
# A fix older than its order by more than this is no arrival (a blind-zone upload of yesterday's
# route); the slack forgives terminal clocks a little behind the server's.
ARRIVAL_CLOCK_SLACK = 600.0
_TRUCK_AVAILABILITY = {"dispatched": "dispatched", "en_route": "en_route", "on_site": "on_site",
                       "completed": "available", "cancelled": "available"}
# The kind of job an incident's alarm most likely needs; a dispatcher may say otherwise.
_KIND_OF_ALARM = {"collision": "accident", "rollover": "accident", "accident": "accident",
                  "low_voltage": "battery", "power_cut": "battery", "tyre_pressure": "tyre",
                  "fuel_abnormal": "fuel"}


class NoTruckError(TruckBusyError):
    """No available rescue truck fits the order."""


class SiteMissingError(ValueError):
    """The order has no site: an incident without a position and no site given."""


class WorkOrderNotices(Protocol):
    """Tells the customer a truck is on its way and puts the text, and whether it went, on the order's
    incident (``notify.notices.Notices`` in a serving process; ``TimelineNotices`` otherwise)."""

    async def work_order_dispatched(self, order: WorkOrder, truck_plate: str, eta_s: float | None,
                                    phone: str | None) -> Any: ...


def notice_text(truck_plate: str, eta_s: float | None) -> str:
    eta = f"; it should arrive in about {max(1, round(eta_s / 60))} min" if eta_s is not None else ""
    return f"Rescue truck {truck_plate} is on its way to you{eta}."


class TimelineNotices:
    """The fallback for a desk given no notices hook (a process that creates no orders, tests): the text
    the customer would get, on the incident's timeline as not sent — there is no channel to send it."""

    def __init__(self, db, clock) -> None:
        self.db = db
        self.clock = clock

    async def work_order_dispatched(self, order: WorkOrder, truck_plate: str, eta_s: float | None,
                                    phone: str | None) -> None:
        text = notice_text(truck_plate, eta_s)
        if order.incident_id is None:
            log.info("work order %d: notice not sent (no notice channel): %s", order.id, text)
            return
        await self.db.incidents.update(
            order.incident_id, "engine", "message",
            f"work order {order.id}: notice to the customer {masked_phone(phone) if phone else '(no phone number)'} — not sent (no notice channel): {text}",
            datetime.fromtimestamp(self.clock.seconds(), timezone.utc),
            {"work_order_id": order.id, "delivery_ids": [], "truck": truck_plate, "eta_s": eta_s, "sent": False})


def _log_stop_failures(results) -> None:
    for ok, result in results:
        if not ok:  # a notice still going (timed out), or the bus refusing to cancel the consumer
            log.warning("work-order desk: stopping: %s", result.getErrorMessage() or type(result.value).__name__)


def order_message(order: WorkOrder) -> dict[str, Any]:
    """The ``dispatch.work_order.<status>`` event body."""
    body = order.to_json()
    for key, value in body.items():
        if isinstance(value, datetime):
            body[key] = iso_utc(value)
    return {"event": order.status, "work_order": body}


@dataclass(frozen=True)
class _Site:
    order_id: int
    lat: float
    lon: float
    since: float  # the order's creation (POSIX s): an older fix (a blind-zone upload) is no arrival


class WorkOrderDesk(service.Service):
    name = "work-order-desk"

    def __init__(self, db, bus, clock, fleet: RescueFleet, notices: WorkOrderNotices | None = None,
                 on_site_radius_m: float = 200.0, watch_sites: bool = True) -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.fleet = fleet
        self.notices = notices or TimelineNotices(db, clock)
        self.on_site_radius_m = on_site_radius_m
        self.watch_sites = watch_sites
        self._sites: dict[str, _Site] = {}  # truck plate -> the site of the order it drives to
        self._arriving: set[int] = set()
        self._telling: set[Deferred] = set()  # customer notices being sent
        self._consumer = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    # -- life cycle ---------------------------------------------------------------------------
    def startService(self):
        super().startService()
        if self.watch_sites:
            return Deferred.fromCoroutine(self._start())
        return None

    async def _start(self) -> None:
        # Subscribe first, then load: an order created in between is in one or the other.
        self._consumer = await self.bus.start_consuming(self._on_order_event, "dispatch.work_order.#")
        for order in await self.db.work_orders.search(statuses=("dispatched", "en_route"), limit=100_000):
            self._follow(order)
        self.fleet.add_listener(self._on_position)

    def stopService(self):
        super().stopService()
        # Notices under way get a little time (a webhook retrying with backoff must not hold up the
        # rest of the shutdown); what has not gone by then is in its deliveries as pending.
        stopping = [self.notices_sent().addTimeout(NOTICE_STOP_WAIT, self.clock)]
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            stopping.append(Deferred.fromCoroutine(consumer.stop_consuming()))
        return DeferredList(stopping, consumeErrors=True).addCallback(_log_stop_failures)

    # -- orders -------------------------------------------------------------------------------
    async def create(self, actor: str, *, incident_id: int | None = None, site: tuple[float, float] | None = None,
                     kind: str | None = None, contact_phone: str | None = None, address: str | None = None,
                     truck_plate: str | None = None, capability: str | None = None,
                     note: str | None = None) -> WorkOrder:
        """Dispatch a truck. LookupError: no such incident or rescue truck; SiteMissingError: no site;
        ValueError: a bad kind or position; TruckBusyError (NoTruckError): no truck available."""
        customer_plate = None
        if incident_id is not None:
            incident = await self.db.incidents.get(incident_id)
            if incident is None:
                raise LookupError(f"no incident {incident_id}")
            customer_plate = incident.plate
            if site is None and incident.lat is not None and incident.lon is not None:
                site = (incident.lat, incident.lon)
            kind = kind or _KIND_OF_ALARM.get(incident.alarm, "tow")
            contact_phone = contact_phone or await self._owner_phone(incident.plate)
        if site is None:
            raise SiteMissingError("the order needs a site (the incident has no position)" if incident_id
                                   else "the order needs a site")
        lat, lon = check_position(*site)
        if -180.0 <= float(site[1]) < 180.0:
            lon = float(site[1])  # as given: folding it into range can change the last digit
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")

        def new(plate: str, distance: float | None, eta: float | None) -> NewWorkOrder:
            return NewWorkOrder(kind=kind, truck_plate=plate, site_lat=lat, site_lon=lon, created_by=actor,
                                incident_id=incident_id, customer_plate=customer_plate, contact_phone=contact_phone,
                                address=address, distance_m=distance, eta_s=eta, note=note)

        if truck_plate is not None:
            order = await self.db.work_orders.create(new(truck_plate, *self.fleet.distance_eta(truck_plate, lat, lon)),
                                                     self.now())
        else:
            order = await self._nearest_order(new, lat, lon, capability)
        await self._after(order, actor)
        self._tell_customer(order, contact_phone)
        return order

    def _tell_customer(self, order: WorkOrder, phone: str | None) -> None:
        """The customer's notice goes out in the background: an SMS, or a webhook retrying with backoff,
        may take many seconds, and the dispatcher's request must not wait for it (nor be retried by an
        impatient client, creating a second order). The timeline says what went."""
        sending = Deferred.fromCoroutine(self.notices.work_order_dispatched(order, order.truck_plate, order.eta_s,
                                                                            phone))
        sending.addErrback(lambda f: log.error("work order %d: customer notice failed: %s", order.id,
                                               f.getErrorMessage()))
        if not sending.called:
            self._telling.add(sending)
            sending.addBoth(lambda _: self._telling.discard(sending))

    def notices_sent(self) -> Deferred:
        """Fires once every customer notice under way has finished (shutdown waits for them; tests too)."""
        return DeferredList(list(self._telling))

    async def _nearest_order(self, new, lat: float, lon: float, capability: str | None) -> WorkOrder:
        for candidate in self.fleet.nearest(lat, lon, CANDIDATES, capability=capability):
            try:
                return await self.db.work_orders.create(new(candidate.truck_id, candidate.distance_m,
                                                            candidate.eta_s), self.now())
            except TruckBusyError:
                continue  # another desk took it since this process last heard: the next one
        raise NoTruckError("no available rescue truck" + (f" with {capability}" if capability else "")
                           + f" has reported a position in the last {self.fleet.max_position_age:g} s")

    async def en_route(self, order_id: int, actor: str) -> WorkOrder:
        return await self.transition(order_id, "en_route", actor)

    async def on_site(self, order_id: int, actor: str) -> WorkOrder:
        return await self.transition(order_id, "on_site", actor)

    async def complete(self, order_id: int, actor: str, note: str | None = None) -> WorkOrder:
        return await self.transition(order_id, "complete", actor, note)

    async def cancel(self, order_id: int, actor: str, note: str | None = None) -> WorkOrder:
        return await self.transition(order_id, "cancel", actor, note)

    async def transition(self, order_id: int, event: str, actor: str, note: str | None = None,
                         why: str = "") -> WorkOrder:
        """LookupError: no such order; WorkOrderStateError: not allowed now (or another process was first)."""
        order = await self.db.work_orders.transition(order_id, event, actor, self.now(), note)
        await self._after(order, actor, why)
        return order

    async def _after(self, order: WorkOrder, actor: str, why: str = "") -> None:
        """A committed change: this process's view, the events, the incident's timeline."""
        self._follow(order)
        over = order.status in ("completed", "cancelled")
        known = self.fleet.truck(order.truck_plate)
        await self.fleet.changed(RescueTruck(
            order.truck_id, order.truck_plate, known.skills if known else (), _TRUCK_AVAILABILITY[order.status],
            None if over else order.id, order.updated_at, actor))
        try:
            await self.bus.produce(f"dispatch.work_order.{order.status}", order_message(order))
        except Exception as e:  # committed; the desks see it on their next read
            log.warning("work order %d %s not published: %s", order.id, order.status, e)
        if order.incident_id is not None:
            await self._on_timeline(order, actor, why)

    async def _on_timeline(self, order: WorkOrder, actor: str, why: str) -> None:
        text = {
            "dispatched": f"work order {order.id} ({order.kind}): rescue truck {order.truck_plate} dispatched"
                          + (f", {order.distance_m / 1000:.1f} km away, ETA about {max(1, round(order.eta_s / 60))} "
                             "min" if order.distance_m is not None and order.eta_s is not None else ""),
            "on_site": f"work order {order.id}: rescue truck {order.truck_plate} on site{why}",
            "completed": f"work order {order.id}: completed" + (f" — {order.note}" if order.note else ""),
            "cancelled": f"work order {order.id}: cancelled" + (f" — {order.note}" if order.note else ""),
        }.get(order.status)
        if text is None:
            return  # en_route: the dispatch desk shows it; the incident's story does not need it
        try:
            incident = await self.db.incidents.update(order.incident_id, actor, "work_order", text, self.now(),
                                                      {"work_order_id": order.id, "status": order.status,
                                                       "truck": order.truck_plate})
            await self.bus.produce("incident.updated", event_message("updated", incident))
        except Exception as e:  # the incident may be gone (SET NULL is not immediate here); the order stands
            log.warning("work order %d: incident %s timeline not updated: %s", order.id, order.incident_id, e)

    async def _owner_phone(self, plate: str) -> str | None:
        vehicle = await self.db.vehicles.get_by_plate(plate)
        if vehicle is None or vehicle.owner is None:
            return None
        return next((c.value for c in vehicle.owner.contacts if c.kind == "phone"), None)

    # -- automatic on_site --------------------------------------------------------------------
    def _follow(self, order: WorkOrder) -> None:
        """Watch the site of an order still on its way; forget it once the truck is there or it is over."""
        current = self._sites.get(order.truck_plate)
        if order.status in ("dispatched", "en_route"):
            self._sites[order.truck_plate] = _Site(order.id, order.site_lat, order.site_lon,
                                                   order.created_at.timestamp())
        elif current is not None and current.order_id == order.id:
            del self._sites[order.truck_plate]

    def _on_order_event(self, _routing_key: str, message: dict[str, Any]) -> None:
        body = message.get("work_order") or {}
        plate, status, site = body.get("truck_plate"), body.get("status"), body.get("site") or {}
        if not isinstance(plate, str) or not isinstance(body.get("id"), int):
            return
        current = self._sites.get(plate)
        if status in ("dispatched", "en_route"):
            created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
            self._sites[plate] = _Site(body["id"], float(site["lat"]), float(site["lon"]), created.timestamp())
        elif current is not None and current.order_id == body["id"]:
            del self._sites[plate]

    def _on_position(self, plate: str, lat: float, lon: float, time: float) -> None:
        site = self._sites.get(plate)
        if site is None or site.order_id in self._arriving or time < site.since - ARRIVAL_CLOCK_SLACK:
            return
        gap = distance_m(lat, lon, site.lat, site.lon)
        if gap <= self.on_site_radius_m:
            self._arriving.add(site.order_id)
            Deferred.fromCoroutine(self._arrive(plate, site, gap))

    async def _arrive(self, plate: str, site: _Site, gap: float) -> None:
        try:
            await self.transition(site.order_id, "on_site", "engine",
                                  why=f" (its position entered the {self.on_site_radius_m:g} m circle, "
                                      f"{gap:.0f} m from the site)")
        except (WorkOrderStateError, LookupError) as e:
            # Another process was first, or a dispatcher moved the order: nothing to do here.
            log.info("work order %d: arrival not recorded here: %s", site.order_id, e)
            current = self._sites.get(plate)
            if current is not None and current.order_id == site.order_id:
                del self._sites[plate]
        except Exception as e:  # the truck's next report tries again
            log.error("work order %d: on_site not recorded: %s", site.order_id, e)
        finally:
            self._arriving.discard(site.order_id)
