"""The incident life cycle: ``open → notifying → verified | escalated → acknowledged → resolved``.

The whole state machine is the transition table at the bottom of this module; storage applies it
(``crm.incidents``) so a state change and its timeline entry commit together, and any process —
worker or API — can drive an incident forward from what the database says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATES = ("open", "notifying", "verified", "escalated", "acknowledged", "resolved")
OUTCOMES = ("false_alarm", "owner_handled", "rescue_dispatched", "police_notified", "other")


class IncidentStateError(ValueError):
    """The input is not allowed in the incident's current state."""


@dataclass(frozen=True)
class TimelineEntry:
    time: datetime
    actor: str
    kind: str
    text: str
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class Incident:
    id: int
    plate: str
    alarm: str
    severity: str
    priority: int
    tier: str
    state: str
    policy: dict[str, Any]
    step: int
    count: int
    opened_at: datetime
    updated_at: datetime
    last_seen_at: datetime
    due_at: datetime | None
    resolved_at: datetime | None
    assignee: str | None
    outcome: str | None
    note: str | None
    terminal_protocol: str | None
    terminal_id: str | None
    alarm_serial: int | None
    lat: float | None
    lon: float | None
    timeline: tuple[TimelineEntry, ...] = field(default=())

    def to_json(self, with_timeline: bool = True) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "id", "plate", "alarm", "severity", "priority", "tier", "state", "count", "opened_at", "updated_at",
            "last_seen_at", "resolved_at", "assignee", "outcome", "note", "lat", "lon")}
        out["policy"] = self.policy.get("name")
        if with_timeline:
            out["timeline"] = [{"time": e.time, "actor": e.actor, "kind": e.kind, "text": e.text, "data": e.data}
                               for e in self.timeline]
        return out


def next_state(state: str, event: str) -> str:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IncidentStateError(f"cannot {event} an incident that is {state}") from None


_UNRESOLVED = ("open", "notifying", "verified", "escalated", "acknowledged")

# The state machine, in one place. Inputs: notify (a policy step starts), verify (the owner's PIN was
# right), escalate (to the agent queue: emergency, owner said no, retries exhausted, ack timeout),
# acknowledge (an agent takes it), resolve (with an outcome).
TRANSITIONS: dict[tuple[str, str], str] = {
    ("open", "notify"): "notifying",
    ("notifying", "notify"): "notifying",
    ("open", "escalate"): "escalated",
    ("notifying", "escalate"): "escalated",
    ("escalated", "escalate"): "escalated",
    ("acknowledged", "escalate"): "escalated",
    ("notifying", "verify"): "verified",
    ("escalated", "acknowledge"): "acknowledged",
    ("notifying", "acknowledge"): "acknowledged",
    **{(state, "resolve"): "resolved" for state in _UNRESOLVED},
}
