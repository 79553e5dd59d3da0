"""The values of the campaign aggregate (``db.campaigns``): campaigns, their numbers and attempts, progress,
and the retry rule every recorded attempt goes through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATES = ("draft", "running", "paused", "completed", "cancelled")
SUCCESS = ("answered", "confirmed")
OUTCOMES = ("answered", "confirmed", "busy", "no_answer", "invalid_number", "failed")
# action -> (states it is allowed from, state it leads to)
ACTIONS = {
    "start": (("draft",), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "cancel": (("draft", "running", "paused"), "cancelled"),
}


class CampaignStateError(ValueError):
    """The action is not allowed in the campaign's current state."""


@dataclass(frozen=True)
class NewCampaign:
    name: str
    template: str
    lines: int
    schedule: dict[str, Any]
    retry: dict[str, dict[str, float]]  # outcome -> {"after_s": seconds, "max": retries}
    language: str = "zh"
    confirm: bool = False
    caller_id: str | None = None


@dataclass(frozen=True)
class NewNumber:
    phone: str  # E.164
    plate: str | None = None
    name: str | None = None
    variables: dict[str, str] | None = None


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    status: str
    template: str
    language: str
    confirm: bool
    lines: int
    schedule: dict[str, Any]
    retry: dict[str, dict[str, float]]
    caller_id: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Attempt:
    at: str  # ISO-8601 UTC
    outcome: str
    duration_s: float
    call_id: str | None


@dataclass(frozen=True)
class CampaignNumber:
    id: int
    campaign_id: int
    phone: str
    plate: str | None
    name: str | None
    variables: dict[str, str]
    status: str  # pending | calling | done | skipped
    outcome: str | None
    attempts: int
    history: tuple[Attempt, ...]
    confirmed: bool | None
    next_attempt_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Claim:
    numbers: list[CampaignNumber]
    next_due: datetime | None  # the earliest pending number not yet due, when nothing more is
    completed: bool = False  # nothing is left to call: the campaign was completed by this claim


@dataclass(frozen=True)
class Recorded:
    number: CampaignNumber
    campaign_status: str
    completed: bool  # this attempt was the campaign's last


@dataclass(frozen=True)
class Progress:
    total: int
    pending: int
    calling: int
    done: int
    skipped: int
    outcomes: dict[str, int] = field(default_factory=dict)  # final or last outcome -> numbers
    confirmed: int = 0
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Recipient:
    """A vehicle's owner as a campaign target (fleet filter)."""

    plate: str
    name: str | None
    phone: str | None  # the owner's first phone, E.164
    language: str


@dataclass(frozen=True)
class DncEntry:
    phone: str
    reason: str | None
    added_at: datetime


def retries_left(retry: dict[str, dict[str, float]], outcome: str, history: list[dict]) -> float | None:
    """Seconds until the next attempt after ``outcome`` (already in ``history``), or None when final.
    ``max`` counts retries per outcome: busy ``{after_s: 600, max: 3}`` dials at most 3 more times
    after busy calls."""
    if outcome in SUCCESS:
        return None
    rule = retry.get(outcome)
    if not rule:
        return None
    if sum(1 for h in history if h["outcome"] == outcome) > int(rule.get("max", 0)):
        return None
    return float(rule.get("after_s", 0))
