"""Black box: the whole service tree on loopback — terminals over TCP in, positions out of the API.

Frames come from the protocol briefs' worked examples (shared/protocols) where they exist, and are
sent the hard way: split across TCP segments, several in one segment, with a bad check code between.
"""

from __future__ import annotations

import json
import struct

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from crm.fleet import validate
from crm.migrate import upgrade
from ingest.jt808 import messages as m
from ingest.jt808.codec import parse_packet
from ingest.jt808.framing import Jt808Framer
from ingest.jt808.terminal import TerminalIdentity, authentication_body, registration_body
from tests.conftest import free_port
from watchline.config import load_config
from watchline.service import Watchline

# jt808.md §9 Example A (2013, SOS, escaped bytes in serial and fuel item) and Example B (2019, area alarm).
EXAMPLE_A = bytes.fromhex(
    "7E0200002612345678901200 7D02 00000001 00000002 00BA7F0E 07E4F11C 0028 003C 0000 181015101010"
    " 010400000064 0202007D01 13 7E".replace(" ", ""))
EXAMPLE_B = bytes.fromhex(
    "7E02004030010000000001391234567800230010000000 0C000301 57FAF8 06CC6289 0019 020B 005A 240315143045"
    " 01040001E240 1206010000000700 30011A 31010C B07E".replace(" ", ""))


class Terminal(protocol.Protocol):
    """A raw TCP terminal that collects the platform's JT/T 808 replies."""

    def __init__(self) -> None:
        self.framer = Jt808Framer()
        self.replies: list = []
        self._waiting: list[tuple[int, defer.Deferred]] = []

    def dataReceived(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            self.replies.append(parse_packet(frame))
        for n, d in list(self._waiting):
            if len(self.replies) >= n:
                self._waiting.remove((n, d))
                d.callback(self.replies[:n])

    def replies_count(self, n: int, timeout: float = 5.0) -> defer.Deferred:
        d = defer.Deferred()
        self._waiting.append((n, d))
        self.dataReceived(b"")
        return d.addTimeout(timeout, reactor)


def reply(packet) -> tuple[int, int, int, int]:
    """(message id, reply serial, reply id, result) of a 0x8001/0x8100 reply."""
    if packet.header.msg_id == m.REGISTER_RESPONSE:
        serial, result = struct.unpack(">HB", packet.body[:3])
        return packet.header.msg_id, serial, m.REGISTER, result
    return (packet.header.msg_id, *struct.unpack(">HHB", packet.body[:5]))


@pytest.fixture
def system(tmp_path):
    api_port, jt808_port, gt06_port = free_port(), free_port(), free_port()
    config = load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "WATCHLINE_API_LISTEN": f"tcp:{api_port}:interface=127.0.0.1",
        "WATCHLINE_INGEST_JT808": f"tcp:{jt808_port}:interface=127.0.0.1",
        "WATCHLINE_INGEST_GT06": f"tcp:{gt06_port}:interface=127.0.0.1",
        "WATCHLINE_INGEST_POSITION_FLUSH_INTERVAL": "0.05",
        "WATCHLINE_SIP_LISTEN": "",
    })
    app = Watchline(config, reactor)
    upgrade(app.db.engine)
    rows, errors = validate(iter([
        (2, {"plate": "粤B0001", "terminal_id": "123456789012", "protocol": "jt808", "owner_name": "A",
             "owner_phone": "13800138000", "tier": "gold", "pin": "1234"}),
        (4, {"plate": "粤B0003", "terminal_id": "123456789012345", "protocol": "gt06", "owner_name": "C",
             "owner_phone": "13800138002", "tier": "normal", "pin": "1234"}),
        (3, {"plate": "粤B0002", "terminal_id": "13912345678", "protocol": "jt808", "owner_name": "B",
             "owner_phone": "13800138001", "tier": "normal", "pin": "1234"}),
    ]), "CN")
    assert not errors
    app.db.vehicles.import_rows_blocking(rows)
    token = app.db.users.issue_token_blocking("agent", "agent-1")
    app.startService()
    app.gt06_port = gt06_port
    yield app, f"http://127.0.0.1:{api_port}", jt808_port, token
    pytest_twisted.blockon(defer.maybeDeferred(app.stopService))


async def positions(base: str, token: str, plate: str) -> list[dict]:
    resp = await treq.get(f"{base}/api/v1/vehicles/{plate}/positions?limit=10".encode(),
                          headers={"Authorization": f"Bearer {token}"})
    assert resp.code == 200
    return json.loads(await resp.content())["positions"]


async def eventually(check, timeout: float = 15.0):
    for _ in range(int(timeout / 0.05)):
        result = await check()
        if result:
            return result
        await _sleep(0.05)
    raise AssertionError("condition not met in time")


def _sleep(seconds: float) -> defer.Deferred:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


async def register_and_authenticate(term: Terminal, ident: TerminalIdentity, seen: int) -> int:
    term.transport.write(ident.packet(m.REGISTER, registration_body(is_2019=ident.is_2019)))
    packet = (await term.replies_count(seen + 1))[seen]
    assert reply(packet)[0::3] == (m.REGISTER_RESPONSE, 0)
    code = packet.body[3:].decode("gbk")
    assert len(code) >= 8
    term.transport.write(ident.packet(m.AUTHENTICATE, authentication_body(code, is_2019=ident.is_2019)))
    assert reply((await term.replies_count(seen + 2))[seen + 1]) [2:] == (m.AUTHENTICATE, 0)
    return seen + 2


@pytest_twisted.ensureDeferred
async def test_jt808_2013_and_2019_over_tcp(system):
    app, base, port, token = system
    term = Terminal()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), term)
    # Before authentication a location report is refused (result 1) and not accepted.
    term.transport.write(EXAMPLE_A)
    assert reply((await term.replies_count(1))[0])[1:] == (0x007E, m.LOCATION, 1)
    seen = await register_and_authenticate(term, TerminalIdentity("123456789012"), 1)

    bad = bytearray(EXAMPLE_A)
    bad[-2] ^= 0x01  # wrong check code
    stream = EXAMPLE_A + bytes(bad) + EXAMPLE_A
    for i in range(0, len(stream), 9):  # 9-byte TCP segments: frames split and joined at random places
        term.transport.write(stream[i:i + 9])
        await _sleep(0.001)
    got = [reply(p) for p in (await term.replies_count(seen + 3))[seen:]]
    assert got == [(m.PLATFORM_RESPONSE, 0x007E, m.LOCATION, 0), (m.PLATFORM_RESPONSE, 0x007E, m.LOCATION, 2),
                   (m.PLATFORM_RESPONSE, 0x007E, m.LOCATION, 0)]
    found = await eventually(lambda: positions(base, token, "%E7%B2%A4B0001"))
    assert found[0]["time"] == "2018-10-15T02:10:10Z"
    assert (found[0]["lat"], found[0]["lon"], found[0]["speed_kmh"], found[0]["altitude"]) == (
        12.222222, 132.444444, 6.0, 40.0)
    assert found[0]["alarms"] == ["sos"]
    # The same report id twice on the wire is two frames with their own acks; both are stored.
    assert len(found) == 2
    term.transport.loseConnection()

    t2019 = Terminal()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), t2019)
    seen = await register_and_authenticate(t2019, TerminalIdentity("13912345678", is_2019=True), 0)
    # Two frames in one segment; the second is Example B with serial 36 (check code 0xB0 ^ 0x23 ^ 0x24).
    second = EXAMPLE_B.replace(b"\x00\x23\x00\x10", b"\x00\x24\x00\x10")[:-2] + b"\xb7\x7e"
    t2019.transport.write(EXAMPLE_B + second)
    got = [reply(p) for p in (await t2019.replies_count(seen + 2))[seen:]]
    assert got == [(m.PLATFORM_RESPONSE, 35, m.LOCATION, 0), (m.PLATFORM_RESPONSE, 36, m.LOCATION, 0)]
    assert t2019.replies[seen].header.is_2019  # the reply copies the terminal's header flavour
    found = await eventually(lambda: positions(base, token, "%E7%B2%A4B0002"))
    assert found[0]["alarms"] == ["geofence"] and found[0]["lat"] == pytest.approx(22.543096)
    t2019.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_unknown_terminal_is_refused_registration(system):
    _, _, port, _ = system
    term = Terminal()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), term)
    term.transport.write(TerminalIdentity("18800000000").packet(m.REGISTER, registration_body(is_2019=False)))
    assert reply((await term.replies_count(1))[0])[0::3] == (m.REGISTER_RESPONSE, 4)
    term.transport.loseConnection()


# gt06.md §8.1 login (IMEI 123456789012345) and its reply; §8.5(a) alarm 0x16 with its CRC.
GT06_LOGIN = bytes.fromhex("78780D01012345678901234500018CDD0D0A")
GT06_LOGIN_ACK = bytes.fromhex("7878050100 01D9DC0D0A".replace(" ", ""))
GT06_ALARM = bytes.fromhex("787825160B051B093523CF027AC8360C4657B30014000901CC00266A001E17400504000200"
                           "08D7B10D0A")


class RawGt06(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


@pytest_twisted.ensureDeferred
async def test_gt06_over_tcp(system):
    app, base, _, token = system
    term = RawGt06()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", app.gt06_port), term)
    bad = bytearray(GT06_ALARM)
    bad[-4] ^= 0xFF  # a bad CRC: dropped without an ack
    stream = b"\x00garbage" + GT06_LOGIN + bytes(bad) + GT06_ALARM
    for i in range(0, len(stream), 7):
        term.transport.write(stream[i:i + 7])
        await _sleep(0.001)
    want = GT06_LOGIN_ACK + bytes.fromhex("78780516") + b"\x00\x08"
    for _ in range(100):
        if len(term.received) >= len(want) + 4:
            break
        await _sleep(0.02)
    assert term.received[:len(GT06_LOGIN_ACK)] == GT06_LOGIN_ACK
    assert term.received[len(GT06_LOGIN_ACK):len(want)] == want[len(GT06_LOGIN_ACK):]  # one alarm ack, serial 8
    assert len(term.received) == len(want) + 4  # CRC + stop bits; nothing for the bad frame
    found = await eventually(lambda: positions(base, token, "%E7%B2%A4B0003"))
    assert len(found) == 1 and found[0]["time"] == "2011-05-27T09:53:35Z"
    assert (found[0]["lat"], found[0]["lon"]) == (pytest.approx(23.111710), pytest.approx(114.409202))
    term.transport.loseConnection()


async def incidents(base: str, token: str, plate: str) -> list[dict]:
    resp = await treq.get(f"{base}/api/v1/incidents?plate={plate}".encode(),
                          headers={"Authorization": f"Bearer {token}"})
    assert resp.code == 200
    return json.loads(await resp.content())["incidents"]


@pytest_twisted.ensureDeferred
async def test_alarms_over_tcp_become_incidents(system):
    from datetime import datetime, timedelta, timezone

    from ingest.gt06.framing import build_frame
    from ingest.jt808.terminal import location_body

    app, base, port, token = system
    sos_car, door_car, gt06_car = "%E7%B2%A4B0001", "%E7%B2%A4B0002", "%E7%B2%A4B0003"
    t_sos, t_other = Terminal(), Terminal()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), t_sos)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), t_other)
    seen = await register_and_authenticate(t_sos, TerminalIdentity("123456789012"), 0)
    t_sos.transport.write(EXAMPLE_A * 3)  # SOS held over three reports: one emergency incident
    await t_sos.replies_count(seen + 3)
    async def escalated(plate):
        found = await incidents(base, token, plate)
        return found if found and all(i["state"] == "escalated" for i in found) else None

    (sos,) = await eventually(lambda: escalated(sos_car))
    assert (sos["alarm"], sos["severity"], sos["state"], sos["priority"]) == ("sos", "emergency", "escalated", 0)

    ident = TerminalIdentity("13912345678")
    seen = await register_and_authenticate(t_other, ident, 0)
    t0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)

    def location(i: int, alarm: int) -> bytes:
        return ident.packet(m.LOCATION, location_body(lat=22.5, lon=114.0, time=t0 + timedelta(seconds=i),
                                                      alarm=alarm))

    t_other.transport.write(location(0, 1 << 31))  # illegal door open: routine
    t_other.transport.write(b"".join(location(1 + i, 1 << 8) for i in range(50)))  # power cut held in 50 reports
    seen += 51
    await t_other.replies_count(seen, timeout=10)

    async def both_escalated():
        found = await incidents(base, token, door_car)
        return found if len(found) == 2 and all(i["state"] == "escalated" for i in found) else None

    found = {i["alarm"]: i for i in await eventually(both_escalated)}
    assert found["illegal_door_open"]["severity"] == found["power_cut"]["severity"] == "routine"
    assert found["power_cut"]["count"] == 1  # a held level alarm is raised once, not fifty times

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    power_cut = found["power_cut"]["id"]
    for action, body in (("acknowledge", b""), ("resolve", b'{"outcome": "owner_handled"}')):
        resp = await treq.post(f"{base}/api/v1/incidents/{power_cut}/{action}".encode(), body, headers=headers)
        assert resp.code == 200, await resp.content()
    t_other.transport.write(location(60, 0) + location(61, 1 << 8))  # cleared, then raised again
    await t_other.replies_count(seen + 2)

    async def reopened():
        found = [i for i in await incidents(base, token, door_car) if i["alarm"] == "power_cut"]
        return found if len(found) == 2 and {i["state"] for i in found} == {"resolved", "escalated"} else None

    await eventually(reopened)

    gt06 = RawGt06()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", app.gt06_port), gt06)
    content = bytearray(GT06_ALARM[4:-6])  # the §8.5(a) alarm with its alarm byte set to 0x01 (SOS)
    content[-2] = 0x01
    gt06.transport.write(GT06_LOGIN + build_frame(0x16, bytes(content), 9))
    (gt06_sos,) = await eventually(lambda: escalated(gt06_car))
    assert (gt06_sos["alarm"], gt06_sos["severity"]) == ("sos", "emergency")
    for term in (t_sos, t_other, gt06):
        term.transport.loseConnection()


def test_a_process_with_a_trunk_gets_the_notices_and_quiet_hours(tmp_path):
    """Wiring only (nothing started): [notify] builds the channel registry the notifier sends SMS through."""
    config = load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "WATCHLINE_API_LISTEN": "",
        "WATCHLINE_INGEST_JT808": "", "WATCHLINE_INGEST_GT06": "",
        "WATCHLINE_SIP_LISTEN": f"udp:{free_port()}:interface=127.0.0.1", "WATCHLINE_SIP_TRUNK": "127.0.0.1:5999",
        "WATCHLINE_NOTIFY_SMPP_URL": "smpp://watchline:pw@127.0.0.1:2775", "WATCHLINE_NOTIFY_QUIET_HOURS": "23:00-06:30",
        "WATCHLINE_NOTIFY_HOTLINE": "400-800-1234"})
    app = Watchline(config, reactor)
    notifier = app.engine.notifier
    assert notifier.quiet_hours == "23:00-06:30" and notifier.notices is app.notices()
    assert notifier.notices.channels.names == ["sms", "voice"]
    assert notifier.notices.channels.parent is app and notifier.lines is app.trunk_lines()
    assert notifier.notices.renderer.hotline == "400-800-1234"
