"""What a terminal server needs from the rest of Watchline, as one small interface.

Terminal protocol servers (jt808, gt06) are edges: they frame and decode bytes, then ask the
sink who a terminal is and hand it Reports. ``submit`` resolves only once the report is durably
accepted by the bus (RabbitMQ: publisher confirm); the server acks the terminal only then, so a
report the terminal saw acked is never lost. If ``submit`` fails, the server sends no ack and the
terminal resends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from alarms.report import Report


@dataclass(frozen=True)
class TerminalInfo:
    protocol: str
    terminal_id: str  # normalised: JT808 phone without leading zeros, GT06 15-digit IMEI
    plate: str | None
    auth_code: str | None = None
    lenient_checksum: bool = False  # firmware known to send bad CRCs
    model: str | None = None  # the vehicle's device model (vehicles.model): vendor conventions depend on it


class IngestSink(Protocol):
    async def lookup_terminal(self, protocol: str, terminal_id: str) -> TerminalInfo | None:
        """The fleet's terminal, or None when unknown."""

    async def set_auth_code(self, protocol: str, terminal_id: str, auth_code: str) -> None:
        """Store the auth code handed out in a JT/T 808 0x8100 registration response."""

    async def submit(self, reports: list[Report]) -> None:
        """Durably accept reports (in order); raises if the bus did not accept them."""


def normalise_terminal_id(protocol: str, terminal_id: str) -> str:
    """JT/T 808 phones compare without leading zeros; other ids are kept as given (stripped)."""
    terminal_id = terminal_id.strip()
    if protocol == "jt808":
        return terminal_id.lstrip("0") or "0"
    return terminal_id
