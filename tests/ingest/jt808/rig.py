"""A JT/T 808 server connection over StringTransport, driven by a task.Clock, for tests."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingest.jt808 import messages as m
from ingest.jt808.codec import Packet, parse_packet
from ingest.jt808.framing import Jt808Framer
from ingest.jt808.protocol import Jt808ServerFactory
from ingest.jt808.sessions import Jt808Sessions
from ingest.jt808.terminal import TerminalIdentity, authentication_body, location_body, registration_body
from ingest.limits import ConnectionLimits
from tests.ingest.jt808.fakes import FakeSink

WHEN = datetime(2024, 3, 15, 6, 30, 45, tzinfo=timezone.utc)


class ServerRig:
    def __init__(self, sink: FakeSink | None = None, limits: ConnectionLimits | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.sink = sink or FakeSink()
        self.registry = Jt808Sessions(self.clock, command_timeout=30)
        self.factory = Jt808ServerFactory(self.sink, self.clock, limits or ConnectionLimits(), self.registry)

    def connect(self) -> Connection:
        return Connection(self)


class Connection:
    def __init__(self, rig: ServerRig) -> None:
        self.rig = rig
        self.protocol = rig.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self._framer = Jt808Framer()

    def send(self, wire: bytes) -> None:
        self.protocol.dataReceived(wire)

    def replies(self) -> list[Packet]:
        data = self.transport.value()
        self.transport.clear()
        return [parse_packet(frame) for frame in self._framer.feed(data)]

    def reply(self) -> Packet:
        (packet,) = self.replies()
        return packet

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting

    def login(self, terminal: TerminalIdentity) -> str:
        """Register and authenticate; returns the auth code."""
        self.send(terminal.packet(m.REGISTER, registration_body(is_2019=terminal.is_2019, plate="粤B12345")))
        answer = self.reply()
        assert answer.header.msg_id == m.REGISTER_RESPONSE and answer.body[2] == m.REGISTER_OK, answer
        code = answer.body[3:].decode("gbk")
        self.send(terminal.packet(m.AUTHENTICATE, authentication_body(code, is_2019=terminal.is_2019)))
        ack = m.decode_terminal_response(self.reply().body)
        assert ack.result == m.RESULT_OK, ack
        return code


def location(terminal: TerminalIdentity, alarm: int = 0, serial: int | None = None, **fields) -> bytes:
    fields.setdefault("lat", 22.5)
    fields.setdefault("lon", 114.0)
    return terminal.packet(m.LOCATION, location_body(time=WHEN, alarm=alarm, **fields), serial=serial)


def ack_of(packet: Packet) -> m.TerminalResponse:
    assert packet.header.msg_id == m.PLATFORM_RESPONSE, hex(packet.header.msg_id)
    return m.decode_terminal_response(packet.body)
