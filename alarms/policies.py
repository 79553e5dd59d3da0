"""Escalation policies (the PagerDuty model): ordered steps, a timeout per step, loops.

A policy is snapshotted onto the incident when it opens, so editing a policy never changes how an
incident already in flight is handled. Steps: ``dial_owner``, ``dial_backup`` (the notification engine
places verification calls) and ``agent_queue`` (to the agents; the last word). A policy may carry
``quiet_hours`` ("HH:MM-HH:MM" or "" for never) from the rule that chose it.
"""

from __future__ import annotations

from typing import Any

STEP_KINDS = ("dial_owner", "dial_backup", "agent_queue")

POLICIES: dict[str, dict[str, Any]] = {
    # Routine alarms: ask the owner, then the backup contact, twice; then an agent.
    "verify_owner": {"name": "verify_owner", "loops": 2, "steps": [
        {"kind": "dial_owner", "timeout": 120, "retry_after": 60},
        {"kind": "dial_backup", "timeout": 120, "retry_after": 60},
        {"kind": "agent_queue"},
    ]},
    # Emergencies: straight to an agent.
    "agent_only": {"name": "agent_only", "loops": 1, "steps": [{"kind": "agent_queue"}]},
}


def snapshot(name: str, quiet_hours: str | None = None) -> dict[str, Any]:
    """A copy of the named policy (unknown names fall back to verify_owner, noted in the copy).
    ``quiet_hours`` (the deciding rule's, "" = never quiet) goes into the copy when given; without it
    the notifier uses the configured default."""
    policy = POLICIES.get(name)
    copy = dict(POLICIES["verify_owner"], requested=name) if policy is None else dict(policy)
    copy["steps"] = [dict(s) for s in copy["steps"]]
    if quiet_hours is not None:
        copy["quiet_hours"] = quiet_hours
    return copy


def dial_steps(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The dialling steps in the order they run, loops unrolled."""
    steps = [s for s in policy["steps"] if s["kind"] in ("dial_owner", "dial_backup")]
    return steps * max(1, int(policy.get("loops", 1)))
