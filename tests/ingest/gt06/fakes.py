"""A recording IngestSink for the GT06 tests (checked against ingest.sink.IngestSink in test_server)."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from alarms.report import Report
from ingest.sink import TerminalInfo


class FakeSink:
    def __init__(self, known: tuple[str, ...] = ("123456789012345",), lenient: tuple[str, ...] = ()):
        self.known = set(known)
        self.lenient = set(lenient)
        self.reports: list[Report] = []
        self.lookups: list[str] = []
        self.fail_submit = False
        self.fail_lookup = False
        self.gates: list[Deferred] = []  # when hold is set, each submit waits on its own Deferred
        self.hold = False

    async def lookup_terminal(self, protocol: str, terminal_id: str) -> TerminalInfo | None:
        self.lookups.append(terminal_id)
        if self.fail_lookup:
            raise RuntimeError("fleet database down")
        if terminal_id not in self.known:
            return None
        return TerminalInfo(protocol, terminal_id, f"PLATE-{terminal_id[-4:]}",
                            lenient_checksum=terminal_id in self.lenient)

    async def set_auth_code(self, protocol: str, terminal_id: str, auth_code: str) -> None:
        raise AssertionError("GT06 has no auth codes")

    async def submit(self, reports: list[Report]) -> None:
        if self.hold:
            gate: Deferred = Deferred()
            self.gates.append(gate)
            await gate
        if self.fail_submit:
            raise RuntimeError("bus did not confirm")
        self.reports.extend(reports)
