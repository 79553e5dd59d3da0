"""The ingest pipeline: the real ``IngestSink`` behind every terminal server and platform feed.

It knows terminals through a short-lived cache over ``db.vehicles`` (a terminal's plate is looked up
about once a minute, not once per frame), stamps each Report with its plate and hands it to the bus.
``submit`` returns only when the bus has accepted every report, so the caller may ack its source.

A report never waits for the database once its terminal is known: when the cached entry is past its
time, the report gets it as it is and the terminal is looked up again in the background, together
with the others that came due within ``refresh_delay`` (one database call for hundreds of terminals,
not one each: the database thread's Python work competes with the reactor for the GIL, and one
lookup per terminal as a fleet's entries expire stalled the reactor for whole seconds). Entries live
a random 75-100 % of the TTL, so a fleet that connected together is not due all at once either.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from alarms.report import Report, iso_utc
from ingest.sink import TerminalInfo, normalise_terminal_id

log = Logger()

_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z_\-]")


def report_routing_key(report: Report) -> str:
    """``report.<protocol>.<terminal>``: terminal ids may hold dots, which are topic separators."""
    return _routing_key(report.protocol, report.terminal_id)


@lru_cache(maxsize=65536)  # one key per terminal, asked for on every report
def _routing_key(protocol: str, terminal_id: str) -> str:
    return f"report.{protocol}.{_KEY_UNSAFE.sub('_', terminal_id) or '_'}"


def report_message(report: Report, plate: str | None) -> dict[str, Any]:
    """``report.with_plate(plate).to_message()``, built directly: the generic ``dataclasses.asdict``
    behind ``to_message`` deep-copies every value and cost ~190 us per report, most of the ingest hot
    path. Its dicts are the report's own: the bus encodes the message at once. A test keeps
    it equal to ``to_message`` for every kind of report."""
    fix = report.fix
    return {
        "protocol": report.protocol,
        "terminal_id": report.terminal_id,
        "time": _report_time(report.time),
        "fix": None if fix is None else {
            "lat": fix.lat, "lon": fix.lon, "altitude": fix.altitude, "speed_kmh": fix.speed_kmh,
            "course": fix.course, "valid": fix.valid, "satellites": fix.satellites,
        },
        "status": report.status,
        "raw_alarms": report.raw_alarms,
        "alarms": list(report.alarms),
        "extras": report.extras,
        "report_id": report.report_id,
        "received_at": _iso(report.received_at),
        "plate": plate,
    }


def _iso(t: datetime) -> str:
    """``iso_utc``, twice as fast for a UTC time (as received times are): the date and time of day are
    formatted once per second, the microseconds (which isoformat leaves out when zero) each time."""
    if t.tzinfo is not timezone.utc:
        return iso_utc(t)
    second = _second(t.year, t.month, t.day, t.hour, t.minute, t.second)
    micro = t.microsecond
    return f"{second}.{micro:06d}Z" if micro else second + "Z"


@lru_cache(maxsize=256)
def _second(year: int, month: int, day: int, hour: int, minute: int, second: int) -> str:
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


# Report times repeat: decoders share one datetime per BCD second (jt808 location.bcd_time).
_report_time = lru_cache(maxsize=4096)(_iso)


class IngestPipeline:
    refresh_delay = 1.0  # seconds a due entry waits to be looked up with others
    refresh_batch = 2000  # terminals per background lookup

    def __init__(self, vehicles, bus, clock: Any, cache_ttl: float = 60.0, rng: random.Random | None = None) -> None:
        self._vehicles = vehicles
        self._bus = bus
        self._clock = clock
        self._ttl = cache_ttl
        self._random = rng or random.Random()
        self._cache: dict[tuple[str, str], tuple[float, TerminalInfo | None]] = {}
        self._due: dict[tuple[str, str], TerminalInfo | None] = {}  # stale entries waiting for their batch
        # Due (None) or in the lookup of this batch; a batch answers only for the keys still its own.
        self._refreshing: dict[tuple[str, str], dict | None] = {}
        self._refresh_call = None

    async def lookup_terminal(self, protocol: str, terminal_id: str) -> TerminalInfo | None:
        key = (protocol, normalise_terminal_id(protocol, terminal_id))
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock.seconds():
            return hit[1]
        info = await self._vehicles.lookup_terminal(*key)
        self._store(key, info)
        return info

    def _store(self, key: tuple[str, str], info: TerminalInfo | None) -> None:
        if len(self._cache) > 200_000:  # bound memory: drop everything rather than track recency
            self._cache.clear()
        self._cache[key] = (self._clock.seconds() + self._ttl * (1 - 0.25 * self._random.random()), info)

    def _refresh(self, key: tuple[str, str], stale: TerminalInfo | None) -> None:
        """Have a terminal looked up again with the next batch; until then its stale entry serves."""
        if key in self._refreshing:
            return
        self._refreshing[key] = None
        self._due[key] = stale
        if self._refresh_call is None:
            self._refresh_call = self._clock.callLater(self.refresh_delay, self._refresh_due)

    def _refresh_due(self) -> None:
        self._refresh_call = None
        batch: dict[str, dict[tuple[str, str], TerminalInfo | None]] = {}  # by protocol
        for _ in range(min(len(self._due), self.refresh_batch)):
            key, stale = self._due.popitem()
            keys = self._refreshing[key] = batch.setdefault(key[0], {})
            keys[key] = stale
        for protocol, keys in batch.items():
            looking = ensureDeferred(self._vehicles.lookup_terminals(protocol, [key[1] for key in keys]))
            looking.addCallbacks(self._refreshed, self._refresh_failed, callbackArgs=(keys,), errbackArgs=(keys,))
        if self._due:
            self._refresh_call = self._clock.callLater(self.refresh_delay, self._refresh_due)

    def _refreshed(self, found: dict[str, TerminalInfo], keys: dict[tuple[str, str], TerminalInfo | None]) -> None:
        for key in keys:
            if self._refreshing.get(key) is keys:
                del self._refreshing[key]
                self._store(key, found.get(key[1]))

    def _refresh_failed(self, failure, keys: dict[tuple[str, str], TerminalInfo | None]) -> None:
        # Keep serving the stale entries; try again after a quarter of the TTL, not at every report.
        log.failure("ingest: looking up {count} terminals again failed; their cached entries stay", failure,
                    count=len(keys))
        retry_at = self._clock.seconds() + self._ttl / 4
        for key, stale in keys.items():
            if self._refreshing.get(key) is keys:
                del self._refreshing[key]
                self._cache[key] = (retry_at, stale)

    async def set_auth_code(self, protocol: str, terminal_id: str, auth_code: str) -> None:
        await self._vehicles.set_auth_code(protocol, terminal_id, auth_code)
        key = (protocol, normalise_terminal_id(protocol, terminal_id))
        # Whatever was read before this write is out of date, including a refresh under way.
        self._cache.pop(key, None)
        self._due.pop(key, None)
        self._refreshing.pop(key, None)

    async def submit(self, reports: list[Report]) -> None:
        now = self._clock.seconds()
        cache, produce = self._cache, self._bus.produce
        for report in reports:
            plate = report.plate
            if plate is None:
                protocol, terminal_id = report.protocol, report.terminal_id
                # Terminal servers hand over normalised ids, and a normalised id normalises to itself.
                key = (protocol, terminal_id)
                hit = cache.get(key)
                if hit is None:
                    key = (protocol, normalise_terminal_id(protocol, terminal_id))
                    hit = cache.get(key)
                if hit is None:
                    info = await self.lookup_terminal(protocol, terminal_id)
                else:  # read here, sparing lookup_terminal's coroutine on the hot path
                    if hit[0] <= now:
                        self._refresh(key, hit[1])
                    info = hit[1]
                if info is not None:
                    plate = info.plate
            await produce(_routing_key(report.protocol, report.terminal_id), report_message(report, plate))
