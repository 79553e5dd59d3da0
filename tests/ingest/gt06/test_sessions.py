"""Online commands: 0x80 out, 0x15/0x21 back, timeouts and disconnects on the injected clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from ingest.gt06.framing import Frame, Gt06Framer, build_frame
from ingest.gt06.packet import CommandReply
from ingest.gt06.server import Gt06ServerFactory
from ingest.gt06.sessions import CommandTimeout, Gt06Sessions, TerminalDisconnected, TerminalNotConnected

from .fakes import FakeSink

IMEI = "123456789012345"
LOGIN = bytes.fromhex("78780D01012345678901234500018CDD0D0A")


class Link:
    def __init__(self):
        self.sent: list[bytes] = []
        self.serial = 0

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial


def _start(coro) -> list:
    """Run a coroutine as a Deferred; collect its result or failure."""
    box: list = []
    Deferred.fromCoroutine(coro).addBoth(box.append)
    return box


def test_command_to_an_offline_terminal_fails_clearly():
    box = _start(Gt06Sessions(Clock()).send_command(IMEI, "WHERE#"))
    assert isinstance(box[0], Failure) and box[0].check(TerminalNotConnected)
    assert IMEI in str(box[0].value)


def test_reply_with_the_server_flag_resolves_the_command():
    sessions, link = Gt06Sessions(Clock()), Link()
    sessions.register(IMEI, link)
    box = _start(sessions.send_command(IMEI, "WHERE#"))
    frame = Frame(link.sent[0])
    assert frame.protocol == 0x80 and frame.crc_ok and frame.serial == 1
    flag = int.from_bytes(frame.body[1:5], "big")
    assert frame.body[5:] == b"WHERE#"
    sessions.command_reply(IMEI, CommandReply(flag, "Lat:N23.1,Lon:E114.4"))
    assert box == ["Lat:N23.1,Lon:E114.4"]


def test_reply_with_flag_zero_goes_to_the_oldest_waiting_command():
    sessions, link = Gt06Sessions(Clock()), Link()
    sessions.register(IMEI, link)
    first, second = _start(sessions.send_command(IMEI, "A#")), _start(sessions.send_command(IMEI, "B#"))
    sessions.command_reply(IMEI, CommandReply(0, "ok A"))
    assert first == ["ok A"] and second == []


def test_timeout_on_the_injected_clock():
    clock = Clock()
    sessions = Gt06Sessions(clock)
    sessions.register(IMEI, Link())
    box = _start(sessions.send_command(IMEI, "Relay,1#", timeout=5))
    clock.advance(4.9)
    assert box == []
    clock.advance(0.2)
    assert box[0].check(CommandTimeout)
    sessions.command_reply(IMEI, CommandReply(1, "late"))  # ignored, no error


def test_disconnect_fails_waiting_commands():
    sessions, link = Gt06Sessions(Clock()), Link()
    sessions.register(IMEI, link)
    box = _start(sessions.send_command(IMEI, "WHERE#"))
    sessions.unregister(IMEI, link)
    assert box[0].check(TerminalDisconnected) and not sessions.is_online(IMEI)


def test_command_round_trip_through_the_server():
    clock = Clock()
    factory = Gt06ServerFactory(FakeSink(), clock)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(LOGIN)
    transport.clear()
    assert factory.sessions.online() == [IMEI]
    box = _start(factory.sessions.send_command(IMEI, "Relay,1#"))
    command = Gt06Framer().feed(transport.value())[0]
    assert command.protocol == 0x80 and command.body[5:] == b"Relay,1#"
    flag = command.body[1:5]
    text = b"Cut off the fuel supply: Success!"
    proto.dataReceived(build_frame(0x15, bytes((len(text) + 4,)) + flag + text + b"\x00\x02", 0x0D44))
    assert box == [text.decode()]
    proto.connectionLost(Failure(ConnectionError("gone")))
    assert factory.sessions.online() == []
