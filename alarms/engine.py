"""The alarm engine: reports from the bus → edges → classification → incidents.

Workers consume ``report.#`` from one durable queue (competing consumers scale it out). Per vehicle, a
live-state lock keeps two workers from interleaving one vehicle's reports, and the incidents table's
unique open key makes a second incident for the same vehicle and alarm impossible even if they did.
The level alarms each vehicle holds are kept in live state, so a restart neither loses a held alarm
nor raises it again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Protocol

from twisted.application import service
from twisted.internet import task
from twisted.internet.defer import Deferred, gatherResults

from alarms.desk import IncidentDesk
from alarms.edges import edges
from alarms.geofences import GeofenceWatch
from alarms.incident import Incident
from alarms.policies import snapshot
from alarms.report import Report
from alarms.rules import Rules, RulesError, load_rules
from alarms.vehicle_lock import wait_for_lock
from crm.incidents import NewIncident, Repeat, Step

log = logging.getLogger(__name__)

QUEUE = "watchline.alarms"
EMERGENCY_TEXT = "emergency: straight to the agent queue"
NO_TELEPHONY_TEXT = "no telephony configured: to the agent queue instead of calling the owner"
START_DEADLINE = 60.0  # seconds for a routine incident's policy to start before the agents get it
LOCK_TTL = 10.0  # seconds; handling one report takes milliseconds
TIER_REFRESH = 60.0  # seconds between reloads of every vehicle's tier
PREFETCH = 64  # reports in hand at once (different vehicles' run concurrently)


class Notifier(Protocol):
    """Runs a routine incident's policy (dialling the owner...) and reports back through the desk.
    Without one (no telephony), a routine incident is escalated in the transaction that opens it."""

    def start(self, incident: Incident) -> None: ...


class AlarmEngine(service.Service):
    name = "alarm-engine"

    def __init__(self, db, bus, live, clock, desk: IncidentDesk, rules: Rules | None = None,
                 notifier: Notifier | None = None, rules_path: str = "", sweep_interval: float = 1.0,
                 queue: str = QUEUE) -> None:
        self.db = db
        self.bus = bus
        self.live = live
        self.clock = clock
        self.desk = desk
        self.rules = rules or Rules()
        self.rules_path = rules_path
        self.notifier = notifier
        self.sweep_interval = sweep_interval
        self.queue = queue
        self._tails: dict[str, Deferred[None]] = {}  # per vehicle: the last report being handled
        self._tiers: dict[str, str] = {}  # plate -> tier, all vehicles, refreshed every TIER_REFRESH s
        self._consumer = None
        self._sweeper: task.LoopingCall | None = None
        self._tier_refresh: task.LoopingCall | None = None
        self.stats = {"reports": 0, "raised": 0, "opened": 0, "joined": 0, "cleared": 0, "unknown_vehicle": 0}
        # Server-side geofences: every report's position, crossings raised as event alarms through _raise.
        self.geofences = GeofenceWatch(db, bus, live, clock, self._raise, desk)

    # -- life cycle ---------------------------------------------------------------------------
    def startService(self):
        super().startService()
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        await self._refresh_tiers()
        await self.geofences.start()  # fences loaded before the first report
        # No policy is resumed here: another worker may be running it. Every open or notifying
        # incident has a deadline in the database, and the sweep hands the ones whose worker died to
        # the agents.
        self._consumer = await self.bus.start_consuming(self._on_report, "report.#", queue=self.queue,
                                                       prefetch=PREFETCH)
        self._tier_refresh = task.LoopingCall(lambda: Deferred.fromCoroutine(self._refresh_tiers()))
        self._tier_refresh.clock = self.clock
        self._tier_refresh.start(TIER_REFRESH, now=False)
        self._sweeper = task.LoopingCall(lambda: Deferred.fromCoroutine(self._sweep()))
        self._sweeper.clock = self.clock
        self._sweeper.start(self.sweep_interval, now=True)

    def stopService(self):
        super().stopService()
        for loop in (self._sweeper, self._tier_refresh):
            if loop is not None and loop.running:
                loop.stop()
        stopping = [Deferred.fromCoroutine(self.geofences.stop())]
        if self._consumer is not None:
            stopping.append(Deferred.fromCoroutine(self._consumer.stop_consuming()))
        return gatherResults(stopping)

    def reload_rules(self) -> Rules:
        """Reload the rules file (SIGHUP, API); a bad file raises RulesError and the old rules stay."""
        rules = load_rules(self.rules_path)
        self.rules = rules
        log.info("alarm rules reloaded from %s: %d rules", rules.source, len(rules.rules))
        return rules

    async def _sweep(self) -> None:
        try:
            await self.desk.sweep()
        except Exception as e:
            log.error("incident timer sweep failed: %s", e)

    # -- reports ------------------------------------------------------------------------------
    async def _on_report(self, routing_key: str, message: dict[str, Any]) -> None:
        report = Report.from_message(message)
        self.stats["reports"] += 1
        plate = report.plate
        if plate is None:
            if report.alarms:
                self.stats["unknown_vehicle"] += 1
                log.warning("alarms %s from unknown terminal %s/%s not handled", report.alarms, report.protocol,
                            report.terminal_id)
            return
        # Up to PREFETCH reports are handled at once, but one vehicle's strictly in delivery order:
        # each waits for the one before it of the same vehicle.
        previous = self._tails.get(plate)
        mine: Deferred[None] = Deferred()
        self._tails[plate] = mine
        try:
            if previous is not None:
                await previous
            await self._handle(report, plate)
        finally:
            if self._tails.get(plate) is mine:
                del self._tails[plate]
            mine.callback(None)

    async def _handle(self, report: Report, plate: str) -> None:
        await self.geofences.check(report)  # every protocol; isolated: a failure there never stops the rest
        if report.protocol != "jt808":  # only JT/T 808 terminals hold level alarms to clear
            for alarm in report.alarms:
                await self._raise(report, alarm)
            return
        if not self.live.shared:  # one process: the per-vehicle chain already orders this vehicle
            await self._edges(report, plate)
            return
        # Several workers: any report may clear what another worker is raising right now, so each
        # JT/T 808 report takes the vehicle's lock and reads the held alarms under it.
        lock = await self._lock(plate)
        try:
            await self._edges(report, plate)
        finally:
            if not await self.live.release_lock(lock):
                log.warning("vehicle %s: the alarm lock expired while a report was handled", plate)

    async def _edges(self, report: Report, plate: str) -> None:
        held_key = f"alarms:held:{plate}"
        held = frozenset(await self.live.get(held_key) or ())
        if not report.alarms and not held:
            return  # nothing raised, nothing held that this report could clear
        found, now_held = edges(report, held)
        for edge in found:
            if edge.raised:
                await self._raise(report, edge.alarm)
            else:
                self.stats["cleared"] += 1
        if now_held != held:
            await self.live.set(held_key, sorted(now_held))

    async def _lock(self, plate: str):
        """The vehicle's lock, waited for: another worker holds it for milliseconds, or a dead worker
        until it expires (LOCK_TTL). Waiting keeps this vehicle's reports in order here."""
        return await wait_for_lock(self.live, self.clock, f"alarms:vehicle:{plate}", LOCK_TTL, f"vehicle {plate}: lock")

    async def _tier(self, plate: str) -> str:
        tier = self._tiers.get(plate)
        if tier is None:  # a vehicle added since the last refresh
            tier = self._tiers[plate] = await self.db.vehicles.tier_of(plate) or "normal"
        return tier

    async def _refresh_tiers(self) -> None:
        try:
            self._tiers = await self.db.vehicles.tiers()
        except Exception as e:  # keep the tiers we have; the next refresh tries again
            log.error("vehicle tiers not refreshed: %s", e)

    async def _raise(self, report: Report, alarm: str) -> Incident | Repeat | None:
        """The incident the alarm opened or joined; None when the rules ignore it."""
        self.stats["raised"] += 1
        tier = await self._tier(report.plate)
        fix = report.fix
        cls = self.rules.classify(alarm, tier, report.time, fence=report.extras.get("fence_id"),
                                  speed=fix.speed_kmh if fix else None)
        if cls.severity == "ignore":
            return None
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        serial = report.raw_alarms.get("jt808_serial")
        if cls.severity == "emergency":
            first = Step("escalate", "engine", EMERGENCY_TEXT, {"priority": 0})
        elif self.notifier is None:
            first = Step("escalate", "engine", NO_TELEPHONY_TEXT)
        else:
            first = None
        incident, created = await self.db.incidents.open_or_join(NewIncident(
            plate=report.plate, alarm=alarm, severity=cls.severity, priority=cls.priority, tier=tier,
            policy=dict(snapshot(cls.policy, cls.quiet_hours, self.rules.policies), rule=cls.rule), time=report.time,
            terminal_protocol=report.protocol,
            terminal_id=report.terminal_id, alarm_serial=serial if isinstance(serial, int) else None,
            lat=fix.lat if fix else None, lon=fix.lon if fix else None,
            start_deadline=None if first is not None else START_DEADLINE), now, first)
        if not created:
            self.stats["joined"] += 1
            return incident
        self.stats["opened"] += 1
        await self.desk.publish("opened", incident)
        if first is not None:
            await self.desk.publish(incident.state, incident)
        else:
            self.notifier.start(incident)
        return incident


__all__ = ["AlarmEngine", "Notifier", "RulesError"]
