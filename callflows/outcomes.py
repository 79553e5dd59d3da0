"""How a call ended, from SIP final responses and timers, and the errors the call-flow API raises."""

from __future__ import annotations

from enum import StrEnum


class CallOutcome(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    INVALID_NUMBER = "invalid_number"
    UNAVAILABLE = "unavailable"
    REJECTED = "rejected"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"  # hung up before the answer by the caller (inbound) or by our flow (outbound)
    FAILED = "failed"


_BY_STATUS = {
    486: CallOutcome.BUSY, 600: CallOutcome.BUSY,
    404: CallOutcome.INVALID_NUMBER, 484: CallOutcome.INVALID_NUMBER, 604: CallOutcome.INVALID_NUMBER,
    480: CallOutcome.UNAVAILABLE,
    603: CallOutcome.REJECTED,
}


def outcome_for_status(status: int) -> CallOutcome:
    """The outcome of an INVITE that ended with this final failure response."""
    return _BY_STATUS.get(status, CallOutcome.FAILED)


class CallNotConnected(Exception):
    """``dial``/``transfer`` did not get an answer; ``outcome`` says why."""

    def __init__(self, outcome: CallOutcome, reason: str = ""):
        super().__init__(f"{outcome.value}{': ' + reason if reason else ''}")
        self.outcome = outcome
        self.reason = reason


class CallEnded(Exception):
    """The call hung up (or was hung up) while a flow was playing, collecting or bridging on it."""


class NotAllowed(CallNotConnected):
    """A dial refused before any SIP was sent: dial plan, concurrent-call cap, no trunk, no RTP port."""

    def __init__(self, reason: str):
        super().__init__(CallOutcome.FAILED, reason)
