"""The ingest pipeline: the real ``IngestSink`` behind every terminal server and platform feed.

It knows terminals through a short-lived cache over ``db.vehicles`` (a terminal's plate is looked up
once a minute, not once per frame), stamps each Report with its plate and hands it to the bus.
``submit`` returns only when the bus has accepted every report, so the caller may ack its source.
"""

from __future__ import annotations

import re
from typing import Any

from alarms.report import Report
from ingest.sink import TerminalInfo, normalise_terminal_id

_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z_\-]")


def report_routing_key(report: Report) -> str:
    """``report.<protocol>.<terminal>``: terminal ids may hold dots, which are topic separators."""
    return f"report.{report.protocol}.{_KEY_UNSAFE.sub('_', report.terminal_id) or '_'}"


class IngestPipeline:
    def __init__(self, vehicles, bus, clock: Any, cache_ttl: float = 60.0) -> None:
        self._vehicles = vehicles
        self._bus = bus
        self._clock = clock
        self._ttl = cache_ttl
        self._cache: dict[tuple[str, str], tuple[float, TerminalInfo | None]] = {}

    async def lookup_terminal(self, protocol: str, terminal_id: str) -> TerminalInfo | None:
        key = (protocol, normalise_terminal_id(protocol, terminal_id))
        hit = self._cache.get(key)
        now = self._clock.seconds()
        if hit is not None and hit[0] > now:
            return hit[1]
        info = await self._vehicles.lookup_terminal(*key)
        if len(self._cache) > 200_000:  # bound memory: drop everything rather than track recency
            self._cache.clear()
        self._cache[key] = (now + self._ttl, info)
        return info

    async def set_auth_code(self, protocol: str, terminal_id: str, auth_code: str) -> None:
        await self._vehicles.set_auth_code(protocol, terminal_id, auth_code)
        self._cache.pop((protocol, normalise_terminal_id(protocol, terminal_id)), None)

    async def submit(self, reports: list[Report]) -> None:
        for report in reports:
            if report.plate is None:
                info = await self.lookup_terminal(report.protocol, report.terminal_id)
                if info is not None:
                    report = report.with_plate(info.plate)
            await self._bus.produce(report_routing_key(report), report.to_message())
