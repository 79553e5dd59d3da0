"""A fleet of simulated JT/T 808 terminals over real TCP, for demos, load tests and benchmarks.

``run_fleet(reactor, host, port, count, rate, alarm_ratio, version=2013|2019, duration=...)``
connects ``count`` terminals (ramped at ``connect_rate`` per second), each registers (0x0100),
authenticates with the code it was given (0x0102), then the fleet sends location reports at
``rate`` reports per second *in total* (spread round-robin over the authenticated terminals),
a share ``alarm_ratio`` of them carrying an alarm. Every report's 0x8001 is matched to it by
serial; the returned ``FleetStats`` has frames sent, acks, ack latency p50/p99 and errors.
Terminals also answer platform commands (0x8203, 0x8300 with 0x0001; 0x8201 with 0x0201).

For benchmarks, ``connect_fleet`` (same arguments, without the reporting ones) returns a connected
``Fleet`` that runs several phases, each with its own FleetStats: ``report(rate, duration)`` is the
open loop above, ``saturate(duration, window)`` a closed loop where each terminal sends its next
report as soon as one of its ``window`` outstanding reports is answered; ``close()`` disconnects.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ingest.jt808 import messages as m
from ingest.jt808.codec import PacketError, parse_packet
from ingest.jt808.framing import Jt808Framer
from ingest.jt808.terminal import TerminalIdentity, authentication_body, location_body, registration_body
from ingest.write_through import immediate_writer

log = Logger()

# Alarms a simulated terminal raises: (alarm DWORD, extra items). Bit 20 carries item 0x12.
_ALARMS = (
    (1 << 0, ()),  # sos
    (1 << 1, ((0x11, b"\x00"),)),  # overspeed
    (1 << 8, ()),  # power cut
    (1 << 20, ((0x12, b"\x01\x00\x00\x00\x07\x01"),)),  # geofence exit, area 7
    (1 << 29, ()),  # collision
)
_LATENCY_SAMPLES = 200_000
_ITEMS = ((0x01, b"\x00\x01\xe2\x40"), (0x30, b"\x1a"), (0x31, b"\x0c"))  # mileage, signal, satellites


@dataclass
class FleetStats:
    terminals: int = 0
    connected: int = 0
    authenticated: int = 0
    frames_sent: int = 0  # every frame, registration and authentication included
    reports_sent: int = 0
    alarms_sent: int = 0
    acked: int = 0  # 0x8001 result 0 for a report
    nacked: int = 0  # 0x8001 with a non-zero result for a report
    unacked: int = 0  # reports still waiting for their ack at the end
    errors: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    reports_per_s: float = 0.0
    acked_per_s: float = 0.0  # acks received while the phase was sending (saturate: after its warm-up)
    ack_latency_p50_ms: float | None = None
    ack_latency_p99_ms: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class SimulatedTerminal(Protocol):
    def __init__(self, fleet: Fleet, identity: TerminalIdentity) -> None:
        self.fleet = fleet
        self.identity = identity
        self.framer = Jt808Framer()
        self.authenticated = False
        self.in_flight: dict[int, float] = {}  # report serial -> send time
        self._auth_serial = -1
        self.closed: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.fleet.stats.connected += 1
        self.transport.setTcpNoDelay(True)
        # Sent at once, not on the next reactor turn: a load generator sharing the cores with the
        # server under test should spend as little as it can on each frame.
        self._write = immediate_writer(self.transport)
        self.fleet.live.add(self)
        plate = f"SIM{self.identity.phone[-5:]}"
        self._send(
            m.REGISTER, registration_body(is_2019=self.identity.is_2019, plate=plate)
        )

    def connectionLost(self, reason=None) -> None:
        self.fleet.live.discard(self)
        if self.authenticated:
            self.authenticated = False
            self.fleet.ready.remove(self)
        if not self.fleet.stopping:  # once stopping, finish() has counted what was in flight
            self.fleet.error("connection_lost")
            self.fleet.stats.unacked += len(self.in_flight)
        self.in_flight.clear()
        self.closed.callback(None)

    def _send(self, msg_id: int, body: bytes) -> int:
        serial = self.identity.serial
        self._write(self.identity.packet(msg_id, body))
        self.fleet.stats.frames_sent += 1
        return serial

    def send_report(self, now: float, with_alarm: bool) -> None:
        fleet = self.fleet
        rnd = fleet.random
        alarm, items = rnd.choice(_ALARMS) if with_alarm else (0, ())
        body = location_body(
            lat=fleet.base_lat + rnd.uniform(-0.2, 0.2),
            lon=fleet.base_lon + rnd.uniform(-0.2, 0.2),
            time=fleet.wall_clock(),
            alarm=alarm,
            speed_kmh=rnd.uniform(0, 90),
            course=rnd.randrange(360),
            items=_ITEMS + items if items else _ITEMS,
        )
        self.in_flight[self._send(m.LOCATION, body)] = now
        fleet.stats.reports_sent += 1
        if alarm:
            fleet.stats.alarms_sent += 1

    def dataReceived(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            if not isinstance(frame, bytes):
                self.fleet.error("bad_frame_from_server")
                continue
            try:
                packet = parse_packet(frame)
                self._answer(packet.header, packet.body)
            except (PacketError, m.BodyError) as exc:
                self.fleet.error(f"bad_packet_from_server: {type(exc).__name__}")

    def _answer(self, header, body: bytes) -> None:
        msg_id = header.msg_id
        if msg_id == m.PLATFORM_RESPONSE:
            answer = m.decode_terminal_response(body)
            reply_serial, reply_id, result = answer.reply_serial, answer.reply_id, answer.result
            if reply_id == m.LOCATION:
                sent = self.in_flight.pop(reply_serial, None)
                if sent is None:
                    self.fleet.error("ack_for_unknown_serial")
                    return
                if result == m.RESULT_OK:
                    self.fleet.acked(self.fleet.clock.seconds() - sent)
                else:
                    self.fleet.stats.nacked += 1
                self.fleet.report_answered(self)
            elif reply_id == m.AUTHENTICATE and reply_serial == self._auth_serial:
                if result == m.RESULT_OK:
                    self.authenticated = True
                    self.fleet.stats.authenticated += 1
                    self.fleet.ready.append(self)
                else:
                    self.fleet.error("authentication_refused")
            elif result != m.RESULT_OK:
                self.fleet.error(f"result_{result}_for_0x{reply_id:04X}")
        elif msg_id == m.REGISTER_RESPONSE and len(body) >= 3:
            if body[2] == m.REGISTER_OK:
                code = body[3:].decode("gbk", errors="replace")
                self._auth_serial = self._send(
                    m.AUTHENTICATE,
                    authentication_body(code, is_2019=self.identity.is_2019, imei="860000000000000"),
                )
            else:
                self.fleet.error(f"registration_result_{body[2]}")
        elif msg_id in (m.ALARM_CONFIRMATION, m.TEXT_MESSAGE):
            self._send(m.TERMINAL_RESPONSE, m.platform_response(header.serial, msg_id, m.RESULT_OK))
        elif msg_id == m.POSITION_QUERY:
            fleet = self.fleet
            answer = location_body(lat=fleet.base_lat, lon=fleet.base_lon, time=fleet.wall_clock())
            self._send(m.POSITION_ANSWER, header.serial.to_bytes(2, "big") + answer)


class _TerminalFactory(ClientFactory):
    def __init__(self, fleet: Fleet, identity: TerminalIdentity) -> None:
        self.fleet = fleet
        self.identity = identity

    def buildProtocol(self, addr) -> SimulatedTerminal:
        return SimulatedTerminal(self.fleet, self.identity)

    def clientConnectionFailed(self, connector, reason) -> None:
        self.fleet.error(f"connect_failed: {reason.getErrorMessage()}")


class Fleet:
    """Connected simulated terminals; each ``report``/``saturate`` phase returns its own FleetStats."""

    def __init__(self, clock, seed: int | None = None) -> None:
        self.clock = clock
        self.stats = FleetStats()
        self.ready: list[SimulatedTerminal] = []
        self.live: set[SimulatedTerminal] = set()
        self.stopping = False
        self.saturating = False  # closed loop: every answered report is followed by the next one
        self.latencies: list[float] = []
        self._errors: Counter[str] = Counter()
        self._connectors: list = []
        self.base_lat, self.base_lon = 22.543, 114.058  # Shenzhen
        self.random = random.Random(seed)
        self._chooser = random.Random(None if seed is None else seed + 1)
        self.alarm_ratio = 0.0
        self._second, self._now = -1, datetime.fromtimestamp(0, timezone.utc)

    def wall_clock(self) -> datetime:
        # Whole seconds: that is the BCD time's resolution, and it lets bcd_time cache.
        second = int(self.clock.seconds())
        if second != self._second:
            self._second, self._now = second, datetime.fromtimestamp(second, timezone.utc)
        return self._now

    def error(self, kind: str) -> None:
        self._errors[kind] += 1

    def errors_so_far(self) -> dict[str, int]:
        return dict(self._errors)

    def acked(self, latency: float) -> None:
        self.stats.acked += 1
        # Reservoir sampling keeps the percentiles honest without unbounded memory.
        if len(self.latencies) < _LATENCY_SAMPLES:
            self.latencies.append(latency)
        else:
            slot = self.random.randrange(self.stats.acked)
            if slot < _LATENCY_SAMPLES:
                self.latencies[slot] = latency

    def report_answered(self, terminal: SimulatedTerminal) -> None:
        if self.saturating and terminal.authenticated:
            terminal.send_report(self.clock.seconds(), self.with_alarm())

    def with_alarm(self) -> bool:
        return self.alarm_ratio > 0 and self._chooser.random() < self.alarm_ratio

    # --- phases ------------------------------------------------------------------------------

    async def connect(self, host: str, port: int, count: int, version: int, first_phone: int,
                      connect_rate: float, ready_timeout: float, tick: float) -> None:
        reactor = self.clock
        self.stats.terminals += count
        for n in range(count):
            identity = TerminalIdentity(str(first_phone + n), is_2019=version == 2019)
            self._connectors.append(reactor.connectTCP(host, port, _TerminalFactory(self, identity), timeout=10))
            if (n + 1) % max(1, int(connect_rate * tick)) == 0:
                await _sleep(reactor, tick)
        deadline = reactor.seconds() + ready_timeout
        while len(self.ready) + sum(self._errors.values()) < count and reactor.seconds() < deadline:
            await _sleep(reactor, tick)

    def _begin_phase(self, alarm_ratio: float) -> None:
        """Counters start again at zero; who is connected and authenticated carries over."""
        old = self.stats
        self.stats = FleetStats(terminals=old.terminals, connected=old.connected, authenticated=old.authenticated)
        self._errors.clear()
        self.latencies = []
        self.alarm_ratio = alarm_ratio

    async def report(self, rate: float, duration: float, alarm_ratio: float = 0.0, *, drain_timeout: float = 5.0,
                     tick: float = 0.01, new_phase: bool = True) -> FleetStats:
        """Open loop: ``rate`` reports per second in total, round-robin over the authenticated terminals."""
        if rate <= 0 or duration <= 0 or not 0 <= alarm_ratio <= 1:
            raise ValueError("rate > 0, duration > 0 and 0 <= alarm_ratio <= 1 are required")
        if new_phase:
            self._begin_phase(alarm_ratio)
        self.alarm_ratio = alarm_ratio
        reactor = self.clock
        start = reactor.seconds()
        sent = 0
        turn = 0
        while (now := reactor.seconds()) - start < duration:
            due = int((now - start) * rate) - sent
            ready = self.ready
            if ready:
                for _ in range(due):
                    terminal = ready[turn % len(ready)]
                    turn += 1
                    terminal.send_report(now, self.with_alarm())
                sent += max(due, 0)
            await _sleep(reactor, tick)
        elapsed = reactor.seconds() - start
        acked_while_sending = self.stats.acked
        await self._drain(drain_timeout, tick)
        return self.finish(elapsed, acked_while_sending)

    async def saturate(self, duration: float, window: int = 1, alarm_ratio: float = 0.0, *, warmup: float = 1.0,
                       drain_timeout: float = 5.0, tick: float = 0.01) -> FleetStats:
        """Closed loop: every authenticated terminal keeps ``window`` reports awaiting their ack, so the
        fleet offers as much as the server answers. ``acked_per_s`` counts the acks after ``warmup``."""
        if duration <= 0 or window < 1 or warmup < 0 or not 0 <= alarm_ratio <= 1:
            raise ValueError("duration > 0, window >= 1, warmup >= 0 and 0 <= alarm_ratio <= 1 are required")
        self._begin_phase(alarm_ratio)
        reactor = self.clock
        self.saturating = True
        start = reactor.seconds()
        for terminal in list(self.ready):
            for _ in range(window):
                terminal.send_report(start, self.with_alarm())
        await _sleep(reactor, warmup)
        measured_from, acked_before = reactor.seconds(), self.stats.acked
        await _sleep(reactor, duration)
        self.saturating = False
        measured = reactor.seconds() - measured_from
        acked_while_sending = self.stats.acked
        await self._drain(drain_timeout, tick)
        stats = self.finish(reactor.seconds() - start, acked_while_sending)
        stats.acked_per_s = round((acked_while_sending - acked_before) / measured, 1) if measured > 0 else 0.0
        return stats

    async def _drain(self, timeout: float, tick: float) -> None:
        reactor = self.clock
        drain_until = reactor.seconds() + timeout
        while any(t.in_flight for t in self.live) and reactor.seconds() < drain_until:
            await _sleep(reactor, tick)

    def finish(self, duration: float, acked_while_sending: int | None = None) -> FleetStats:
        stats = self.stats
        for terminal in self.live:  # what is still unanswered now is counted once, here
            stats.unacked += len(terminal.in_flight)
            terminal.in_flight.clear()
        stats.errors = dict(self._errors)
        stats.duration_s = round(duration, 3)
        stats.reports_per_s = round(stats.reports_sent / duration, 1) if duration > 0 else 0.0
        if acked_while_sending is not None and duration > 0:
            stats.acked_per_s = round(acked_while_sending / duration, 1)
        if self.latencies:
            ordered = sorted(self.latencies)
            stats.ack_latency_p50_ms = round(_percentile(ordered, 0.50) * 1000, 3)
            stats.ack_latency_p99_ms = round(_percentile(ordered, 0.99) * 1000, 3)
        return stats

    async def close(self) -> None:
        self.stopping = True
        self.saturating = False
        closed = [t.closed for t in self.live]
        for connector in self._connectors:
            connector.disconnect()
        for waiting in closed:
            await waiting


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _sleep(reactor, seconds: float) -> Deferred:
    return deferLater(reactor, seconds, lambda: None)


def _check(version: int, count: int) -> None:
    if version not in (2013, 2019):
        raise ValueError(f"version must be 2013 or 2019, not {version}")
    if count < 1:
        raise ValueError("count >= 1 is required")


async def connect_fleet(
    reactor,
    host: str,
    port: int,
    count: int,
    version: int = 2013,
    *,
    first_phone: int = 13800000000,
    connect_rate: float = 1000.0,
    ready_timeout: float = 30.0,
    tick: float = 0.01,
    seed: int | None = None,
) -> Fleet:
    """Connect ``count`` terminals and wait until they are authenticated (or ``ready_timeout``)."""
    _check(version, count)
    fleet = Fleet(reactor, seed)
    await fleet.connect(host, port, count, version, first_phone, connect_rate, ready_timeout, tick)
    return fleet


async def run_fleet(
    reactor,
    host: str,
    port: int,
    count: int,
    rate: float,
    alarm_ratio: float = 0.0,
    version: int = 2013,
    duration: float = 10.0,
    *,
    first_phone: int = 13800000000,
    connect_rate: float = 1000.0,
    ready_timeout: float = 30.0,
    drain_timeout: float = 5.0,
    tick: float = 0.01,
    seed: int | None = None,
) -> FleetStats:
    """Run the fleet and return its statistics (see the module docstring).

    ``rate`` is reports per second for the whole fleet. Reporting starts once every terminal
    is authenticated (or ``ready_timeout`` passed) and lasts ``duration`` seconds; acks still
    outstanding after a further ``drain_timeout`` count as ``unacked``.
    """
    _check(version, count)
    if rate <= 0 or duration <= 0 or not 0 <= alarm_ratio <= 1:
        raise ValueError("count >= 1, rate > 0, duration > 0 and 0 <= alarm_ratio <= 1 are required")
    fleet = Fleet(reactor, seed)
    try:
        await fleet.connect(host, port, count, version, first_phone, connect_rate, ready_timeout, tick)
        # One phase from the first connection on: registration frames count in frames_sent.
        return await fleet.report(rate, duration, alarm_ratio, drain_timeout=drain_timeout, tick=tick,
                                  new_phase=False)
    finally:
        await fleet.close()
