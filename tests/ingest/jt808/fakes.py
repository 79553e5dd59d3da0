"""A recording fake of ``ingest.sink.IngestSink`` for the JT/T 808 server tests."""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.defer import Deferred

from alarms.report import Report
from ingest.sink import TerminalInfo


class FakeSink:
    """Knows the terminals in ``fleet``; records auth codes and submitted reports.

    ``fail_submits`` makes the next N submits raise; ``hold_submits`` makes submits wait on a
    Deferred the test fires (``release``), to observe that nothing is acked before that.
    """

    def __init__(self, fleet: dict[str, TerminalInfo] | None = None) -> None:
        self.fleet = dict(fleet or {})
        self.submitted: list[list[Report]] = []
        self.lookups: list[str] = []
        self.fail_submits = 0
        self.hold_submits = False
        self.held: list[Deferred] = []

    @property
    def reports(self) -> list[Report]:
        return [report for batch in self.submitted for report in batch]

    async def lookup_terminal(self, protocol: str, terminal_id: str) -> TerminalInfo | None:
        self.lookups.append(terminal_id)
        return self.fleet.get(terminal_id)

    async def set_auth_code(self, protocol: str, terminal_id: str, auth_code: str) -> None:
        self.fleet[terminal_id] = replace(self.fleet[terminal_id], auth_code=auth_code)

    async def submit(self, reports: list[Report]) -> None:
        if self.hold_submits:
            waiting: Deferred = Deferred()
            self.held.append(waiting)
            await waiting
        if self.fail_submits:
            self.fail_submits -= 1
            raise ConnectionError("bus did not confirm")
        self.submitted.append(list(reports))

    def release(self) -> None:
        held, self.held = self.held, []
        for waiting in held:
            waiting.callback(None)


def known(terminal_id: str, auth_code: str | None = None, lenient: bool = False,
          model: str | None = None) -> TerminalInfo:
    return TerminalInfo("jt808", terminal_id, f"PLATE-{terminal_id[-4:]}", auth_code, lenient, model)
