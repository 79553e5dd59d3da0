"""The incident desk: every action on an incident, by the engine, the notifier or an agent.

Each action is one state transition (or timeline entry) in storage, then one bus event carrying the
incident — ``incident.<new state>`` (opened, notifying, verified, escalated, acknowledged, resolved) or
``incident.updated`` for a comment, call attempt or reassignment — so agent desks and wallboards
update live. Acknowledging sets a persisted deadline (``due_at``); the engine's sweep re-escalates an
incident still acknowledged when it passes. Resolving a JT/T 808 alarm that the terminal lets the
platform confirm sends 0x8203 and records the terminal's answer — directly when the terminal is
connected to this process, else through the bus (``terminal.jt808.confirm_alarm``) to the ingest
process that holds its session. Actions return the incident without its timeline.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from twisted.application import service
from twisted.internet.defer import Deferred

from alarms.incident import OUTCOMES, Incident, IncidentStateError
from alarms.names import JT808_ALARM_BITS, JT808_CONFIRMABLE_BITS
from alarms.report import iso_utc
from crm.incidents import Step

log = logging.getLogger(__name__)

_CONFIRM_BITS = {JT808_ALARM_BITS[bit]: 1 << bit for bit in JT808_CONFIRMABLE_BITS}


CONFIRM_ROUTING_KEY = "terminal.jt808.confirm_alarm"


class TerminalFeedback(Protocol):
    def is_connected(self, terminal_id: str) -> bool: ...

    async def confirm_alarm(self, terminal_id: str, alarm_serial: int, bits: int) -> int: ...


def event_message(event: str, incident: Incident) -> dict[str, Any]:
    body = incident.to_json(with_timeline=False)
    for key, value in body.items():
        if isinstance(value, datetime):
            body[key] = iso_utc(value)
    return {"event": event, "incident": body}


class IncidentDesk:
    def __init__(self, db, bus, clock, ack_timeout: float = 900.0, feedback: TerminalFeedback | None = None) -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.ack_timeout = ack_timeout
        self.feedback = feedback

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    async def publish(self, event: str, incident: Incident) -> None:
        try:
            await self.bus.produce(f"incident.{event}", event_message(event, incident))
        except Exception as e:  # the change is committed; a missed live event must not undo it
            log.warning("incident %s %s not published: %s", incident.id, event, e)

    async def _apply(self, incident_id: int, event: str, actor: str, text: str, data=None,
                     expect: tuple[str, ...] | None = None, due_by: datetime | None = None, then: Step | None = None,
                     **changes) -> Incident:
        incident = await self.db.incidents.transition(incident_id, event, actor, text, self.now(), data,
                                                      with_timeline=False, expect=expect, due_by=due_by,
                                                      then=then, **changes)
        await self.publish(incident.state, incident)  # incident.escalated, incident.acknowledged, ...
        return incident

    # -- engine and notifier ------------------------------------------------------------------
    async def notify(self, incident_id: int, step: int, text: str, data=None, timeout: float | None = None) -> Incident:
        """Policy step ``step`` starts; if it has not concluded ``timeout`` seconds from now (a hung call,
        a worker that died), the sweep escalates the incident — the deadline is in the database."""
        due = self.now() + timedelta(seconds=timeout) if timeout else None
        return await self._apply(incident_id, "notify", "engine", text, data, expect=("open", "notifying"), step=step,
                                 due_at=due)

    async def escalate(self, incident_id: int, text: str, actor: str = "engine", priority: int | None = None,
                       data=None, expect: tuple[str, ...] | None = None, due_by: datetime | None = None) -> Incident:
        """To the agent queue. ``expect``: only from these states (a policy must not take back an
        incident an agent has taken); ``due_by``: only if its deadline is still passed (the sweep)."""
        changes: dict[str, Any] = {"due_at": None, "assignee": None}
        if priority is not None:
            changes["priority"] = priority
        return await self._apply(incident_id, "escalate", actor, text, data, expect=expect, due_by=due_by, **changes)

    async def verified(self, incident_id: int, text: str, data=None) -> Incident:
        """The owner's PIN was right: verified and resolved as owner_handled, in one transaction."""
        note = "the owner confirmed with the PIN"
        incident = await self._apply(incident_id, "verify", "owner", text, data, expect=("notifying",),
                                     then=Step("resolve", "engine", f"resolved: owner_handled — {note}",
                                                    {"outcome": "owner_handled", "note": note}))
        await self._confirm_on_terminal(incident)
        return incident

    async def attempt(self, incident_id: int, text: str, data: dict[str, Any], kind: str = "call",
                      next_within: float | None = None) -> Incident:
        """A notification attempt on the timeline: a ``call``, or a ``message`` (SMS notice) with its delivery.
        ``next_within``: the policy goes on (a pause, a line, the next call) and must be heard from again
        within that many seconds, or the sweep escalates — applied only while the incident is notifying."""
        now = self.now()
        due = now + timedelta(seconds=next_within) if next_within is not None else None
        incident = await self.db.incidents.update(incident_id, "engine", kind, text, now, data, due_if_notifying=due)
        await self.publish("updated", incident)
        return incident

    # -- agents -------------------------------------------------------------------------------
    async def acknowledge(self, incident_id: int, user: str) -> Incident:
        due = self.now() + timedelta(seconds=self.ack_timeout)
        return await self._apply(incident_id, "acknowledge", user, f"taken by {user}", assignee=user, due_at=due)

    async def resolve(self, incident_id: int, user: str, outcome: str, note: str | None = None) -> Incident:
        if outcome not in OUTCOMES:
            raise IncidentStateError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if outcome == "other" and not (note or "").strip():
            raise IncidentStateError("a note is required when the outcome is other")
        incident = await self._apply(incident_id, "resolve", user, f"resolved: {outcome}" + (f" — {note}" if note else ""),
                                     {"outcome": outcome}, outcome=outcome, note=note)
        await self._confirm_on_terminal(incident)
        return incident

    async def comment(self, incident_id: int, user: str, text: str) -> Incident:
        incident = await self.db.incidents.update(incident_id, user, "comment", text, self.now())
        await self.publish("updated", incident)
        return incident

    async def reassign(self, incident_id: int, user: str, to: str) -> Incident:
        incident = await self.db.incidents.update(incident_id, user, "reassigned", f"reassigned to {to}", self.now(),
                                                  {"to": to}, assignee=to)
        await self.publish("updated", incident)
        return incident

    async def sweep(self) -> int:
        """Escalate incidents whose deadline passed — taken but not resolved, or a policy step that
        never concluded; returns how many."""
        count = 0
        now = self.now()
        for incident in await self.db.incidents.due(now):
            if incident.state == "acknowledged":
                why = f"not resolved within {self.ack_timeout:g} s of being taken; back to the queue"
            elif incident.state == "notifying":
                why = f"policy step {incident.step} did not conclude in time; to the agent queue"
            elif incident.state == "open":
                why = "the notification policy did not start in time; to the agent queue"
            else:
                continue
            try:  # re-checked on the locked row: another worker's sweep or an agent may have been first
                await self.escalate(incident.id, why, priority=max(0, incident.priority - 10),
                                    expect=(incident.state,), due_by=now)
                count += 1
            except IncidentStateError:
                pass
        return count

    async def _confirm_on_terminal(self, incident: Incident) -> None:
        bits = _CONFIRM_BITS.get(incident.alarm)
        if incident.terminal_protocol != "jt808" or bits is None:
            return
        if self.feedback is None or not self.feedback.is_connected(incident.terminal_id):
            # The terminal's session may live in another (ingest) process: ask over the bus; the
            # process holding it sends 0x8203 and records the answer (confirm_from_bus).
            try:
                await self.bus.produce(CONFIRM_ROUTING_KEY, {
                    "incident_id": incident.id, "terminal_id": incident.terminal_id,
                    "alarm_serial": incident.alarm_serial or 0, "bits": bits})
                text, data = "0x8203 asked of the ingest process holding the terminal (not connected here)", {
                    "requested": True}
            except Exception as e:  # the resolution is committed and stands; say what did not happen
                text, data = f"0x8203 not requested: {e}", {"error": str(e)}
            await self.db.incidents.update(incident.id, "engine", "terminal_feedback", text, self.now(), data)
            return
        await self.confirm_alarm(incident.id, incident.terminal_id, incident.alarm_serial or 0, bits)

    async def confirm_alarm(self, incident_id: int, terminal_id: str, alarm_serial: int, bits: int) -> None:
        """Send 0x8203 through this process's terminal sessions and record the terminal's answer."""
        try:
            result = await self.feedback.confirm_alarm(terminal_id, alarm_serial, bits)
            text, data = f"terminal confirmed the alarm (0x8203 → 0x0001 result {result})", {"result": result}
        except Exception as e:  # not connected, timeout: recorded, the resolution stands
            text, data = f"0x8203 not confirmed by the terminal: {e}", {"error": str(e)}
        await self.db.incidents.update(incident_id, "engine", "terminal_feedback", text, self.now(), data)

    async def confirm_from_bus(self, _routing_key: str, message: dict[str, Any]) -> None:
        """A resolution in another process asks for 0x8203: act if the terminal is connected here."""
        if self.feedback is None or not self.feedback.is_connected(message["terminal_id"]):
            return  # another ingest process holds it (or none: the terminal is offline)
        await self.confirm_alarm(int(message["incident_id"]), message["terminal_id"], int(message["alarm_serial"]),
                                 int(message["bits"]))


class TerminalConfirmations(service.Service):
    """In a process with terminal sessions: carry out 0x8203 requests resolved elsewhere."""

    name = "terminal-confirmations"

    def __init__(self, desk: IncidentDesk) -> None:
        self.desk = desk
        self._consumer = None

    def startService(self):
        super().startService()
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self._consumer = await self.desk.bus.start_consuming(self.desk.confirm_from_bus, CONFIRM_ROUTING_KEY)

    def stopService(self):
        super().stopService()
        if self._consumer is not None:
            return Deferred.fromCoroutine(self._consumer.stop_consuming())
        return None
