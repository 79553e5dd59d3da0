"""A fleet of simulated GT06 terminals over real TCP, for load tests and demos.

``run_fleet`` connects ``count`` terminals, logs each in (0x01, waits for the ack), then sends
``rate`` messages per second in total for ``duration`` seconds: 0x22 locations, and with
probability ``alarm_ratio`` an alarm (0x16 or 0x26, alternating). Alarms and logins must be acked
with the echoed protocol and serial (gt06.md §6); locations need no ack. Returns ``FleetStats``
(sent, acked, p50/p99 ack latency, errors). Uses only the reactor it is given.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ingest.gt06.framing import Gt06Framer, build_frame

log = Logger()

ACKED = frozenset({0x01, 0x16, 0x26})


@dataclass
class FleetStats:
    terminals: int = 0
    connected: int = 0
    logged_in: int = 0
    sent: int = 0  # data messages (locations + alarms), logins not counted
    alarms_sent: int = 0
    acked: int = 0  # acks received for alarms
    unacked: int = 0  # alarms still without an ack when the run ended
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # alarm ack latency, seconds

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000, 3)

    def as_dict(self) -> dict[str, Any]:
        return {"terminals": self.terminals, "connected": self.connected, "logged_in": self.logged_in,
                "sent": self.sent, "alarms_sent": self.alarms_sent, "acked": self.acked,
                "unacked": self.unacked,
                "p50_ms": self.percentile_ms(0.50), "p99_ms": self.percentile_ms(0.99),
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors)}


def luhn_imei(body14: str) -> str:
    """Complete 14 digits with the Luhn check digit, as real IMEIs are."""
    total = 0
    for i, ch in enumerate(reversed(body14)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return body14 + str((10 - total % 10) % 10)


def fleet_imeis(count: int, prefix: str = "35900000") -> list[str]:
    width = 14 - len(prefix)
    return [luhn_imei(prefix + str(i).zfill(width)) for i in range(count)]


def gps_block(time: datetime, lat: float, lon: float, speed_kmh: float, course: float,
              *, valid: bool = True, satellites: int = 9) -> bytes:
    t = time.astimezone(timezone.utc)
    word = int(course) % 360 | (0x1000 if valid else 0)
    word |= (0x0400 if lat >= 0 else 0) | (0x0800 if lon < 0 else 0)
    return (bytes((t.year - 2000, t.month, t.day, t.hour, t.minute, t.second, 0xC0 | (satellites & 0x0F)))
            + round(abs(lat) * 1_800_000).to_bytes(4, "big") + round(abs(lon) * 1_800_000).to_bytes(4, "big")
            + bytes((min(255, int(speed_kmh)),)) + word.to_bytes(2, "big"))


LBS = bytes.fromhex("01CC00287D001FB8")  # MCC 460, MNC 0, LAC 10365, cell 8120


class SimulatedTerminal(protocol.Protocol):
    def __init__(self, imei: str, fleet: _Fleet):
        self.imei = imei
        self.fleet = fleet
        self.framer = Gt06Framer()
        self.serial = 0
        self.pending: dict[tuple[int, int], float] = {}  # (protocol, serial) -> time sent
        self.logged_in = False
        self.lat = 52.52 + fleet.rnd.uniform(-0.2, 0.2)
        self.lon = 13.40 + fleet.rnd.uniform(-0.3, 0.3)
        self.course = fleet.rnd.uniform(0, 360)
        self.alarm_kind = 0x16

    def connectionMade(self) -> None:
        self.fleet.stats.connected += 1
        self._send(0x01, bytes.fromhex("0" + self.imei), expect_ack=True)

    def dataReceived(self, data: bytes) -> None:
        now = self.fleet.reactor.seconds()
        for frame in self.framer.feed(data):
            if frame.protocol in (0x12, 0x22):
                continue  # an optional location echo (gt06.md §6): tolerated, not required
            sent = self.pending.pop((frame.protocol, frame.serial), None)
            if sent is None or not frame.crc_ok:
                self.fleet.stats.errors["unexpected_reply"] += 1
                continue
            if frame.protocol == 0x01:
                self.logged_in = True
                self.fleet.stats.logged_in += 1
            else:
                self.fleet.stats.acked += 1
                self.fleet.stats.latencies.append(now - sent)

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        if not self.fleet.stopping:
            self.fleet.stats.errors["connection_lost"] += 1

    def send_message(self, alarm: bool) -> None:
        rnd = self.fleet.rnd
        self.course = (self.course + rnd.uniform(-20, 20)) % 360
        speed = rnd.uniform(0, 90)
        self.lat += math.cos(math.radians(self.course)) * speed / 3600 / 111
        self.lon += math.sin(math.radians(self.course)) * speed / 3600 / 68
        now = datetime.fromtimestamp(self.fleet.reactor.seconds(), timezone.utc)
        gps = gps_block(now, self.lat, self.lon, speed, self.course)
        stats = self.fleet.stats
        stats.sent += 1
        if alarm:
            stats.alarms_sent += 1
            proto, self.alarm_kind = self.alarm_kind, 0x26 if self.alarm_kind == 0x16 else 0x16
            code = rnd.choice((0x01, 0x02, 0x03, 0x06))
            self._send(proto, gps + b"\x09" + LBS + bytes((0x46, 0x05, 0x04, code, 0x02)), expect_ack=True)
        else:
            self._send(0x22, gps + LBS + b"\x01\x00\x00", expect_ack=False)

    def _send(self, proto: int, content: bytes, *, expect_ack: bool) -> None:
        self.serial = (self.serial + 1) & 0xFFFF
        if expect_ack:
            self.pending[(proto, self.serial)] = self.fleet.reactor.seconds()
        self.transport.write(build_frame(proto, content, self.serial))


class _Fleet:
    def __init__(self, reactor, seed: int | None):
        self.reactor = reactor
        self.rnd = random.Random(seed)
        self.stats = FleetStats()
        self.stopping = False


async def run_fleet(reactor, host: str, port: int, count: int, rate: float, alarm_ratio: float = 0.05,
                    duration: float = 10.0, *, imeis: list[str] | None = None, login_timeout: float = 5.0,
                    ack_timeout: float = 5.0, seed: int | None = None) -> FleetStats:
    """Run the fleet against ``host:port``; ``rate`` is messages per second for the whole fleet."""
    if count < 1 or rate <= 0 or not 0 <= alarm_ratio <= 1 or duration <= 0:
        raise ValueError("count >= 1, rate > 0, 0 <= alarm_ratio <= 1 and duration > 0 are required")
    fleet = _Fleet(reactor, seed)
    stats = fleet.stats
    imeis = (imeis or fleet_imeis(count))[:count]
    stats.terminals = len(imeis)
    terminals: list[SimulatedTerminal] = []

    async def connect(imei: str) -> None:
        terminal = SimulatedTerminal(imei, fleet)
        try:
            await connectProtocol(TCP4ClientEndpoint(reactor, host, port, timeout=login_timeout), terminal)
            terminals.append(terminal)
        except Exception as exc:
            stats.errors[f"connect: {type(exc).__name__}"] += 1

    await gatherResults([Deferred.fromCoroutine(connect(imei)) for imei in imeis])
    waited = 0.0
    while waited < login_timeout and any(not t.logged_in for t in terminals):
        await deferLater(reactor, 0.05, lambda: None)
        waited += 0.05
    live = [t for t in terminals if t.logged_in]
    if len(live) < len(terminals):
        stats.errors["login_not_acked"] += len(terminals) - len(live)
    # Paced on elapsed time, not on ticks, so a slow loop sends in bursts instead of sending less.
    tick, index, start = 0.01, 0, reactor.seconds()
    while live and (elapsed := reactor.seconds() - start) < duration:
        due = int(rate * elapsed) - index
        for _ in range(max(0, due)):
            terminal = live[index % len(live)]
            index += 1
            if terminal.transport is not None and terminal.transport.connected:
                terminal.send_message(fleet.rnd.random() < alarm_ratio)
        await deferLater(reactor, tick, lambda: None)
    waited = 0.0
    while waited < ack_timeout and any(t.pending for t in live):
        await deferLater(reactor, 0.02, lambda: None)
        waited += 0.02
    stats.unacked = sum(len(t.pending) for t in live)
    fleet.stopping = True
    for terminal in terminals:
        if terminal.transport is not None:
            terminal.transport.loseConnection()
    await deferLater(reactor, 0, lambda: None)
    log.info("GT06 fleet: {stats}", stats=stats.as_dict())
    return stats
